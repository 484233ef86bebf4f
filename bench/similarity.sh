#!/usr/bin/env bash
# Similarity measurement (issue 15, item 3): how many bytes rsync/zsync-style
# block reuse would save when fetching real Debian packages, against whole files.
#   bench/similarity.sh quick [CACHE]   10 update pairs and 5 arch pairs per size class
#   bench/similarity.sh full  [CACHE]   40 update pairs and 20 arch pairs per size class
# CACHE (default /tmp/similarity-cache) holds an isolated APT root (its own
# apt.conf, sources, lists; the machine's apt configuration is not touched) and
# the downloaded .debs, which are kept for reruns and never committed.
# Sources: deb.debian.org bookworm, bookworm-updates and bookworm-security main,
# amd64 and arm64. Driver: bench/similarity (Go).
# Output: the report on stdout and in bench/out/similarity-<mode>.md; raw results
# in CACHE/results-<mode>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
cache=${2:-/tmp/similarity-cache}
case $mode in
quick) plan=(-per-class 10 -arch-per-class 5) ;;
full) plan=(-per-class 40 -arch-per-class 20) ;;
*)
	echo "usage: bench/similarity.sh quick|full [CACHE]" >&2
	exit 2
	;;
esac
mkdir -p "$cache" bench/out
cache=$(cd "$cache" && pwd)
root=$cache/apt
debs=$cache/debs
mkdir -p "$root"/etc/sources.list.d "$root"/etc/apt.conf.d "$root"/etc/preferences.d \
	"$root"/lists/partial "$root"/archives/partial "$debs"
: >"$root/status"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $keyring ]] || {
	echo "similarity: $keyring is missing (apt-get install debian-archive-keyring)" >&2
	exit 1
}
cat >"$root/etc/sources.list" <<EOF
deb [arch=amd64,arm64 signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb [arch=amd64,arm64 signed-by=$keyring] http://deb.debian.org/debian bookworm-updates main
deb [arch=amd64,arm64 signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
EOF
cat >"$root/apt.conf" <<EOF
Dir::Etc "$root/etc";
Dir::Etc::sourcelist "$root/etc/sources.list";
Dir::Etc::sourceparts "$root/etc/sources.list.d";
Dir::Etc::parts "$root/etc/apt.conf.d";
Dir::Etc::preferencesparts "$root/etc/preferences.d";
Dir::State "$root";
Dir::State::lists "$root/lists";
Dir::State::status "$root/status";
Dir::Cache "$root";
Dir::Cache::archives "$root/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; "arm64"; };
Acquire::Languages "none";
APT::Sandbox::User "root";
EOF
export APT_CONFIG=$root/apt.conf
apt-get update -qq

lists=$root/lists
pk() { ls "$lists"/*"_dists_$1_main_binary-$2_Packages"; }
base=$(pk bookworm amd64),$(pk bookworm arm64)
updates=$(pk bookworm-security amd64),$(pk bookworm-updates amd64)
grep -h '^Date:' "$lists"/*_InRelease | sed 's/^/index /'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/similarity" ./bench/similarity
sample=$cache/sample-$mode.json
"$tmp/similarity" plan -base "$base" -updates "$updates" "${plan[@]}" -out "$sample" -fetch "$tmp/fetch"

# Download what the cache lacks, 50 files per apt-get call (apt checks each
# file against the signed index as it fetches).
missing=()
while read -r spec name _; do
	[[ -s $debs/$name ]] || missing+=("$spec")
done <"$tmp/fetch"
echo "downloading ${#missing[@]} of $(wc -l <"$tmp/fetch") files into $debs"
for ((i = 0; i < ${#missing[@]}; i += 50)); do
	(cd "$debs" && apt-get download -qq "${missing[@]:i:50}")
done

out=bench/out/similarity-$mode.md
{
	echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $(grep -h '^Date:' "$lists"/*bookworm_InRelease)"
	echo
	echo "Identical content under other names (index-wide: bookworm, -updates, -security; amd64 and arm64):"
	echo
	"$tmp/similarity" dupes -min-size 1e6 "$lists"/*_Packages
	echo
	echo "The same over the sampled files only:"
	echo
	"$tmp/similarity" dupes -min-size 1e6 -sample "$sample"
	echo
	nice -n 10 "$tmp/similarity" measure -sample "$sample" -cache "$debs" -out "$cache/results-$mode.json"
} | tee "$out"
