#!/usr/bin/env bash
# bench/git.sh — what the cell's private view of the repository costs, interleaved:
#   1. `cell run --network none -- true` in a plain directory, a small repository with
#      history, and a repository of 50,000 files (seeding copies HEAD, refs and the index);
#   2. `git status` in the 50,000-file repository: on the host, and in a cell.
# usage: bench/git.sh [--runs N] [--files N]   (release build; prints medians and ratios)
set -euo pipefail
RUNS=40 FILES=50000 INSTALL=1
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--files) FILES=$2; shift 2 ;;
	-h | --help) sed -n '2,6p' "$0"; exit 0 ;;
	*) echo "git.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
require_cmds git python3 bwrap
build_release
WORK=$(mktemp -d -t cell-bench-git.XXXXXX)
chmod 755 "$WORK"
xdg_in "$WORK/xdg"
mkdir -p "$WORK/plain" "$WORK/small" "$WORK/big"
# No automatic gc or maintenance: a commit of many files starts `git gc --auto` in the
# background, still writing .git/objects while the cleanup removes $WORK ("Directory not
# empty").
g() { git -C "$1" -c user.name=b -c user.email=b@b -c gc.auto=0 -c maintenance.auto=false "${@:2}"; }
g "$WORK/small" init -q
for i in 1 2 3 4 5; do echo "$i" >"$WORK/small/f$i"; g "$WORK/small" add -A; g "$WORK/small" commit -qm "c$i"; done
say "making a repository of $FILES files"
python3 - "$WORK/big" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 500}", f"e{(i // 50) % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "w") as f:
        f.write(f"{i}\n")
PY
g "$WORK/big" init -q && g "$WORK/big" add -A && g "$WORK/big" commit -qm big
g "$WORK/big" status >/dev/null
for r in small big; do g "$WORK/$r" config gc.auto 0 && g "$WORK/$r" config maintenance.auto false; done
if [ "$(id -u)" -eq 0 ]; then
	id cell >/dev/null 2>&1 || useradd --system --home-dir /var/lib/cell --create-home cell
	chown -R cell:cell "$WORK"
fi
"$CELL" run --workdir "$WORK/big" --network none -- git status >/dev/null || die "git status in a cell failed"
echo "cell git benchmark (repo $(repo_rev)); $(machine_line)"
echo
echo "== cell run -- true: no repository, a small one, $FILES files"
python3 "$HERE/interleave.py" --runs "$RUNS" \
	"plain=$CELL run --workdir $WORK/plain --network none -- true" \
	"small-repo=$CELL run --workdir $WORK/small --network none -- true" \
	"big-repo=$CELL run --workdir $WORK/big --network none -- true"
echo
echo "== git status in the $FILES-file repository"
gitas=(git)
[ "$(id -u)" -ne 0 ] || gitas=(runuser -u cell -- git)
python3 "$HERE/interleave.py" --runs "$RUNS" --cwd "host=$WORK/big" \
	"host=${gitas[*]} status" \
	"cell=$CELL run --workdir $WORK/big --network none -- git status"
