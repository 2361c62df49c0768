#!/usr/bin/env bash
# bench/scale.sh — 10 and 30 cells started at once, without network and with the egress proxy:
# time until all are ready and memory (PSS) per cell, every process of the cell and its sidecar
# counted (bench/scale.py). Targets (design): 30 proxied cells all ready <= 400 ms, <= 2 MB PSS
# per cell. See bench/README.md.
set -euo pipefail
usage() {
	cat <<'USAGE'
usage: bench/scale.sh [--rounds N] [--counts 10,30] [--modes none,proxy] [--user NAME] [--no-build] [--no-install]
  --user NAME   measure as unprivileged user NAME (needs root; as root, cell drops to its runAs account)
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
	apt_install bubblewrap python3 >&2 || die "needs bubblewrap and python3"
	[ "$BUILD" -eq 0 ] || build_release
	[ -x "$CELL" ] || die "no $CELL after the build"
	if [ -n "$AS_USER" ]; then
		[ "$(id -u)" -eq 0 ] || die "--user needs root"
		uhome=$(getent passwd "$AS_USER" | cut -d: -f6) || die "no such user: $AS_USER"
		cd /
		exec runuser -u "$AS_USER" -- env -i HOME="$uhome" USER="$AS_USER" LOGNAME="$AS_USER" PATH="$PATH" \
			LANG=C.UTF-8 CELL_BIN_DIR="$BIN" CELL_BENCH_REV="$(repo_rev)" bash "$HERE/scale.sh" --inner --rounds "$ROUNDS" --counts "$COUNTS" --modes "$MODES"
	fi
fi
WORK=$(mktemp -d -t cell-scale.XXXXXX)
xdg_in "$WORK/xdg"
mkdir -p "$WORK/wt"
(cd "$WORK/wt" && "$CELL" run --network none -- true) || die "cell run --network none -- true failed"
echo "cell scale benchmark (repo $(repo_rev), as $(id -un))"
machine_line
python3 "$HERE/scale.py" --cell "$CELL" --dir "$WORK/wt" --rounds "$ROUNDS" --counts "$COUNTS" --modes "$MODES"
