// Package testrepo builds real Debian repositories on disk and serves them from a
// counting, fault-injecting HTTP mirror on loopback, for end-to-end tests that run
// real apt-get.
//
// Build makes .deb files with dpkg-deb (incompressible payloads from a seeded PRNG,
// so file sizes, and therefore piece counts and DHT value forms, are what the test
// asks for), writes Packages, Packages.gz and Packages.xz, a Release file with
// MD5Sum/SHA1/SHA256 sections, optional by-hash copies, and signs it (InRelease and
// Release.gpg) with a throwaway key when gpg is installed. ServeMirror serves such a
// tree over HTTP/1.1 (ServeMirrorTLS: over HTTPS with a self-signed certificate)
// with Range, conditional requests, HEAD and keep-alive, counts requests and
// body bytes per path, notes which requests were pipelined, and can misbehave on
// demand (ignore Range, serve the wrong file, stall, trickle, fail with 500, cut
// the body short).
//
// Packages may go to other components and architectures than the suite's
// main ones (PackageSpec.Component, Arch), each with its own Packages files,
// and carry a priority and a section. A rebuild in the same directory with
// more packages is how a test makes packages appear in the indexes.
//
// It is test infrastructure, not a repository tool: it makes no attempt at
// Contents files, translations, sources or pdiffs, and the mirror is built
// for observability, not speed.
package testrepo
