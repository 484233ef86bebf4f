#!/usr/bin/env bash
# Component benchmarks (issue 7, measurement 5): the per-package Go benchmarks
# collected into one file and summarised by benchstat.
#   bench/components.sh quick   -count=3, short -benchtime (about 3 minutes)
#   bench/components.sh full    -count=6, longer -benchtime (about 6 minutes)
# Raw output: bench/out/components.txt; benchstat: bench/out/components-benchstat.txt;
# the combined table (printed): bench/out/components.md.
# The detailed per-area numbers (and their commands) live in the wire, engine,
# kbucket, piecestore, index and dataplane sections of bench/RESULTS.md; this
# script is the one-command rerun of all of them on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
case $mode in
quick) count=3 fast=50ms slow=1x ;;
full) count=6 fast=300ms slow=3x ;;
*)
	echo "usage: bench/components.sh quick|full" >&2
	exit 2
	;;
esac
mkdir -p bench/out
out=bench/out/components.txt
: >"$out"

# Each line: package, -bench pattern, -benchtime. Per-operation costs differ by
# six orders of magnitude (a 100 ns packet parse, a 1 s bookworm index load), so
# the heavy benchmarks run a fixed number of iterations instead of a duration.
plan=(
	"./wire|.|$fast"
	"./kbucket|.|$fast"
	"./engine|CoreHandle|$fast"
	"./engine|Transport|20000x"
	"./piecestore|HasherPiece|$fast"
	"./piecestore|Lookup|$fast"
	"./piecestore|HashFileVsCoreutils|$slow"
	"./piecestore|Commit|$slow"
	"./internal/aptindex|Parse|$fast"
	"./internal/aptindex|Lookup|$fast"
	"./internal/aptindex|Load|$slow"
	"./internal/httpserve|.|$fast"
	"./internal/fetch|.|$slow"
)

for entry in "${plan[@]}"; do
	IFS='|' read -r pkg pat bt <<<"$entry"
	echo "--- go test -run '^\$' -bench '$pat' -benchmem -count=$count -benchtime=$bt $pkg" >&2
	# -timeout bounds a benchmark that hangs; a failing package is reported and
	# the others still run.
	if ! go test -run '^$' -bench "$pat" -benchmem -count="$count" -benchtime="$bt" -timeout 15m "$pkg" >>"$out"; then
		echo "components: $pkg ($pat) failed" >&2
	fi
done

# The full benchstat report (one table per package and unit) is kept; the
# combined table (a row per benchmark, a column per unit) is what is printed.
go tool benchstat "$out" >bench/out/components-benchstat.txt
py=/usr/bin/python3 # python3-matplotlib's interpreter, not a pyenv shim
[[ -x $py ]] || py=python3
go tool benchstat -table "" -row "pkg .fullname" -format csv "$out" 2>/dev/null |
	"$py" bench/plot/benchstat_table.py | tee bench/out/components.md
