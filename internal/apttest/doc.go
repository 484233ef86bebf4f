// Package apttest runs the real apt-get against a private apt root in a
// temporary directory, so end-to-end tests can drive apt exactly as a user's
// machine would (update, download, install --download-only) without touching the
// system's apt state, its configuration snippets, or the network beyond the
// addresses a test configures.
//
// Isolation has two halves. APT_CONFIG points at the root's own apt.conf, which
// moves Dir::Etc::Parts into the root before apt reads any snippet, so the
// host's /etc/apt/apt.conf.d (proxies, hooks, DEP-11 targets, docker tweaks)
// never applies; and every directory apt writes or reads state from is set with
// -o Dir::… on the command line. Methods run as root (APT::Sandbox::User), since
// _apt cannot read a test's temporary directory. It is not a chroot: apt still
// runs /usr/lib/apt/methods and gpgv from the host, and it never runs dpkg
// (nothing is installed, only downloaded).
//
// A daemon end-to-end test, with repositories and mirrors from testrepo:
//
//	base := t.TempDir()
//	repo, err := testrepo.Build(filepath.Join(base, "debian"), testrepo.Options{ByHash: true})
//	mirror, err := testrepo.ServeMirror("127.0.0.1:0", base) // the repo is at <mirror>/debian
//	defer mirror.Close()
//	// ... start daemons A, B, C on 127.0.0.2, 127.0.0.3, 127.0.0.4 ...
//	fetch := func(daemon string, proxyMode bool) {
//		root, err := apttest.NewRoot(t.TempDir())
//		if proxyMode { // Acquire::http::Proxy
//			root.SetSources(repo.SourcesLine(mirror.URL() + "/debian"))
//			root.SetProxy("http://" + daemon)
//		} else { // deb http://127.0.0.2:9977/127.0.0.1:<port>/debian stable main
//			root.SetSources(repo.SourcesLine("http://" + daemon + "/" + mirror.Addr() + "/debian"))
//		}
//		if err := root.Update(ctx); err != nil {
//			t.Fatal(err) // the error carries apt's stdout and stderr
//		}
//		work := t.TempDir()
//		if err := root.Download(ctx, work, repo.Names()...); err != nil {
//			t.Fatal(err)
//		}
//		if err := apttest.VerifyFiles(repo, work); err != nil {
//			t.Fatal(err) // missing, extra or differing files
//		}
//	}
//	fetch(a, false)
//	mirror.Reset()
//	fetch(b, false)
//	if n := mirror.BytesUnder("/debian/pool/"); n != 0 {
//		t.Errorf("B took %d package bytes from the mirror, want all from A", n)
//	}
package apttest
