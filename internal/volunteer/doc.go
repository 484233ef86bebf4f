// Package volunteer is the preheat mode: a daemon that holds part of a
// mirror before anyone asks for it (VOLUNTEER_* options), so that the
// swarm's first downloads of a new package come from it rather than from
// the mirror, and other volunteers copy it from the swarm rather than each
// from the mirror.
//
// # One refresh, in order
//
//  1. For each configured mirror and suite, the daemon fetches InRelease
//     (else Release) from the mirror, revalidating its copy, as apt-get
//     update does, and adds it to its index.
//  2. For each component and architecture, the binary-<arch> Packages list
//     the Release names (xz first; by hash when the Release says
//     Acquire-By-Hash) is fetched like any hashed file: from peers that hold
//     it, else from the mirror; it is verified, stored and added to the
//     index, so the daemon can also serve those packages to its own apt.
//  3. The selection: every package of those lists that passes the filters
//     that are set (priorities, sections, names, "new"), newest first, then
//     by priority, then by name, as long as the budget holds.
//  4. Files this volunteer fetched that left the selection are removed from
//     the cache (only when every list could be read: a list that failed
//     says nothing about its files). Files the cache held before the
//     volunteer selected them (the local apt's) are never removed by it.
//  5. What is selected and not stored is fetched through the daemon's
//     normal download path (internal/download): the DHT is looked up first,
//     so a file another volunteer or any peer already holds comes from it;
//     volunteers refreshing at the same moment form a crowd whose leader
//     alone fetches from the mirror. The file is verified against the
//     index, stored and announced as any download is. The downloads run at
//     Config.Rate (a token bucket over the store writes), except while apt
//     streams the same file from the daemon.
//
// Refreshes run every Config.Refresh (default 6 h, ±10% so that volunteers
// spread out), the first within min(Refresh/10, 5 min) of the start.
//
// # What is new
//
// A Packages index carries no dates. A file counts as new from the first
// refresh at which this volunteer finds it in a list it had read before;
// the files of a list's first refresh were there before it looked and count
// as old. So "new in the last 3 days" means first listed, as seen by this
// volunteer, less than 3 days ago: a new version of a package is a new file
// name and is new; a freshly configured volunteer holds what appears from
// then on, not what appeared in the days before it started; a volunteer
// that was stopped for a day dates what appeared meanwhile at its restart.
// The state (per list the 64-bit hashes of the names it listed, and the
// dates of the names that appeared since) survives restarts in the daemon's
// cache directory.
//
// # What it is not
//
// It does not check the Release's signature (apt does, on the machines
// that install): a forged Release served to a volunteer can make it fetch
// and store files, but never makes anyone receive a file that does not
// match the index their own apt verified, since every download is checked
// against the requester's index. It does not mirror anything apt would not
// ask for (sources, translations, Contents), and it is not a repository:
// clients reach its files through the swarm, by hash, not by browsing it.
package volunteer
