#!/bin/bash
# Index benchmarks on the full Debian bookworm main amd64 Packages (63 000
# stanzas): the machine's own apt list when present, else a generated one.
# Usage: internal/aptindex/bench.sh [count]   (from the repository root)
set -euo pipefail
count=${1:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
lists=/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4
if [ -r "$lists" ]; then
	lz4 -dc "$lists" >"$dir/Packages"
	echo "source: $lists" >&2
else
	go test -run '^TestWriteGenerated$' -count=1 ./internal/aptindex/ -args -write-generated="$dir/Packages" >/dev/null
	echo "source: generated (63440 stanzas)" >&2
fi
# Single-threaded, single-block, like Debian's own Packages.xz.
xz -6 -T1 -k "$dir/Packages" & gzip -9 -k "$dir/Packages" & wait
zstd -q -k "$dir/Packages" & lz4 -q "$dir/Packages" "$dir/Packages.lz4" & bzip2 -9 -k "$dir/Packages" & wait
ls -l "$dir" >&2
APTINDEX_BENCH_DIR="$dir" go test -run '^$' -bench 'Load' -count="$count" -benchtime=1x ./internal/aptindex/
go test -run '^$' -bench 'Memory|Lookup|Parse' -count="$count" -benchtime=2s ./internal/aptindex/
