#!/usr/bin/env bash
# bench/scale.sh — 10 and 30 cells started at once, without network and with the egress proxy:
# time until all are ready and memory (PSS) per cell, every process of the cell and its sidecar
# counted (bench/scale.py). Targets (design): 30 proxied cells all ready <= 400 ms, <= 2 MB PSS
# per cell. See bench/README.md.
set -euo pipefail
usage() {
	cat <<'USAGE'
usage: bench/scale.sh [options]

  --rounds N        rounds per count and mode, medians over them   (default 5)
  --counts LIST     how many cells start at once                    (default 10,30)
  --modes LIST      none (no network), proxy (each with cell-egress) (default none,proxy)
  --user NAME       measure as unprivileged user NAME (needed as root: a root launcher
                    runs each cell as its runAs account)
  --no-build        use the release binaries already built (CELL_BIN_DIR, else
                    rust/target/release-<host triple>)
  --no-install      do not apt-get install anything
  -h, --help        this text

Prints, per count and mode, the time until every cell's command ran and the memory (PSS)
per cell, and whether 30 proxied cells meet the targets (<= 400 ms, <= 2 MB). The summary
lands in bench/results/scale-<UTC stamp>-summary.txt.
USAGE
}
ROUNDS=5 COUNTS=10,30 MODES=none,proxy AS_USER="" BUILD=1 INSTALL=1 INNER=0
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--counts) COUNTS=$2; shift 2 ;;
	--modes) MODES=$2; shift 2 ;;
	--user) AS_USER=$2; shift 2 ;;
	--no-build) BUILD=0; shift ;;
	--no-install) INSTALL=0; shift ;;
	--inner) INNER=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "scale.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
if [ "$INNER" -eq 0 ]; then
	as_root_needs_user
	apt_install bubblewrap python3 >&2 || die "needs bubblewrap and python3"
	[ "$BUILD" -eq 0 ] || build_release
	need_cell
	if [ -n "$AS_USER" ]; then
		[ "$(id -u)" -eq 0 ] || die "--user needs root"
		uhome=$(getent passwd "$AS_USER" | cut -d: -f6) || die "no such user: $AS_USER"
		# The summary comes back from a directory the user owns.
		WORK=$(mktemp -d -t cell-scale-results.XXXXXX) # removed on exit (bench/lib.sh)
		chown "$AS_USER" "$WORK"
		(cd / && runuser -u "$AS_USER" -- env -i HOME="$uhome" USER="$AS_USER" LOGNAME="$AS_USER" PATH="$PATH" \
			LANG=C.UTF-8 CELL_BIN_DIR="$BIN" CELL_BENCH_REV="$(repo_rev)" CELL_BENCH_RESULTS="$WORK" \
			CELL_BENCH_SHOWN="$RESULTS" bash "$HERE/scale.sh" --inner --rounds "$ROUNDS" --counts "$COUNTS" --modes "$MODES") ||
			die "the run as $AS_USER failed"
		mkdir -p "$RESULTS"
		cp -- "$WORK"/scale-*-summary.txt "$RESULTS"/
		exit 0
	fi
fi
WORK=$(mktemp -d -t cell-scale.XXXXXX)
xdg_in "$WORK/xdg"
mkdir -p "$WORK/wt"
(cd "$WORK/wt" && "$CELL" run --network none -- true) || die "cell run --network none -- true failed"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$WORK/summary.txt
{
	echo "cell scale benchmark  $STAMP  (repo $(repo_rev), as $(id -un))"
	machine_line
	python3 "$HERE/scale.py" --cell "$CELL" --dir "$WORK/wt" --rounds "$ROUNDS" --counts "$COUNTS" --modes "$MODES"
} | tee "$OUT"
[ "${PIPESTATUS[0]}" -eq 0 ] || die "the measurement failed"
DEST=${CELL_BENCH_SHOWN:-$RESULTS}
mkdir -p "$RESULTS" 2>/dev/null || true
if [ -w "$RESULTS" ]; then
	cp "$OUT" "$RESULTS/scale-$STAMP-summary.txt"
	echo "summary: $DEST/scale-$STAMP-summary.txt"
fi
