#!/usr/bin/env bash
# bench/terminal.sh — what the cell's own pseudo-terminal costs, side by side (interleaved):
#   (1) start-up: `cell run --network none -- true` on a terminal (a pty is opened, relayed,
#       the host side put in raw mode and back) vs with no terminal (0-2 on /dev/null)
#   (2) bulk: `cat` of a 100 MB file to a terminal through the cell's relay vs the same
#       `cat` on the host straight to the terminal
# See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF2'
usage: bench/terminal.sh [options]

  --runs N        start-up runs per variant   (default 100)
  --bulk-runs N   bulk runs per variant       (default 5)
  --mb N          size of the bulk file in MB (default 100)
  --no-install    do not build or install anything; use rust/target/release-<host triple> (what the build puts together) as it is
  -h, --help      this text
EOF2
}

RUNS=100 BULK_RUNS=5 MB=100 INSTALL=1
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--bulk-runs) BULK_RUNS=$2; shift 2 ;;
	--mb) MB=$2; shift 2 ;;
	--no-install) INSTALL=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "terminal.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done

# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
require_cmds python3 bwrap
[ "$INSTALL" -eq 0 ] || build_release
need_cell

WORK=$(mktemp -d -t cell-bench-pty.XXXXXX)
xdg_in "$WORK/xdg"
mkdir -p "$WORK/worktree"
cd "$WORK/worktree"
# Text lines, as a terminal would get them (the pty turns each LF into CR LF, both ways).
python3 -c "import sys; line = b'0123456789abcdef' * 7 + b'\n'; n = $MB * 10**6 // len(line); sys.stdout.buffer.write(line * n)" >big.txt
"$CELL" run --network none -- true || die "cell run --network none -- true failed"

mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
out=$RESULTS/terminal-$STAMP-summary.txt
{
	echo "cell terminal benchmark  $STAMP  (repo $(repo_rev), as $(id -un))"
	machine_line
	echo
	echo "start-up, $RUNS runs each after 10 warm-ups, interleaved:"
	python3 "$HERE/pty_bench.py" "$RUNS" 10 0 \
		"cell-tty:pty:$CELL,run,--network,none,--,true" \
		"cell-no-tty:null:$CELL,run,--network,none,--,true"
	echo
	echo "bulk: cat of $(stat -c %s big.txt) bytes to a terminal, $BULK_RUNS runs each after 1 warm-up, interleaved:"
	python3 "$HERE/pty_bench.py" "$BULK_RUNS" 1 "$MB" \
		"cell-cat:pty:$CELL,run,--network,none,--,cat,big.txt" \
		"host-cat:pty:cat,big.txt"
} | tee "$out"
