#!/usr/bin/env bash
# bench/breakdown.sh — where the gap between `cell run --network none -- true` and the bare
# bubblewrap call of bench/jail.sh goes. The exact argv of `cell plan --json` runs without the
# launcher (its data descriptors from files), then with one ingredient taken out at a time
# (seccomp, cell-init, the status fd, --ro-bind-data, --file, the /etc binds,
# --disable-userns), interleaved with `cell run` and the bare call (bench/breakdown.py,
# bench/interleave.py); then the phases of a launch under strace. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/breakdown.sh [--runs N] [--warmup N] [--phases N] [--user NAME] [--no-build] [--no-install]

  --runs N      interleaved runs per variant (default 200)
  --warmup N    warmup runs per variant (default 10)
  --phases N    launches traced for the phase table (default 20; 0: none)
  --user NAME   measure as unprivileged user NAME (needs root; as root, cell drops to its
                runAs account, so measure as a user)
Environment: CARGO, CELL_BIN_DIR (the cell binaries to measure).
EOF
}
RUNS=200 WARMUP=10 PHASES=20 AS_USER="" BUILD=1 INSTALL=1 INNER=0
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--phases) PHASES=$2; shift 2 ;;
	--user) AS_USER=$2; shift 2 ;;
	--no-build) BUILD=0; shift ;;
	--no-install) INSTALL=0; shift ;;
	--inner) INNER=1; shift ;; # internal: already the measuring user
	-h | --help) usage; exit 0 ;;
	*) echo "breakdown.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

if [ "$INNER" -eq 0 ]; then
	as_root_needs_user
	apt_install bubblewrap jq python3 strace >&2 || die "needs bubblewrap, jq, python3 and strace"
	require_cmds bwrap jq python3 strace
	[ "$BUILD" -eq 0 ] || build_release
	need_cell
	if [ -n "$AS_USER" ]; then
		[ "$(id -u)" -eq 0 ] || die "--user needs root"
		uhome=$(getent passwd "$AS_USER" | cut -d: -f6) || die "no such user: $AS_USER"
		[ "$(id -u "$AS_USER")" -ne 0 ] || die "--user wants an unprivileged user"
		cd /
		exec runuser -u "$AS_USER" -- env -i HOME="$uhome" USER="$AS_USER" LOGNAME="$AS_USER" PATH="$PATH" \
			LANG=C.UTF-8 CELL_BIN_DIR="$BIN" bash "$HERE/breakdown.sh" --inner --runs "$RUNS" --warmup "$WARMUP" --phases "$PHASES"
	fi
fi

WORK=$(mktemp -d -t cell-breakdown.XXXXXX)
xdg_in "$WORK/xdg"
git_worktree "$WORK/wt-cell"
git_worktree "$WORK/wt-bwrap"
mkdir -p "$WORK/data"
(cd "$WORK/wt-cell" && "$CELL" run --network none -- true) || die "cell run --network none -- true failed"
(cd "$WORK/wt-bwrap" && "$CELL" plan --json --network none -- true) >"$WORK/plan.json" || die "cell plan --json failed"
bare_bwrap_argv "$WORK/plan.json" "$WORK/data/bare-etc"
printf '%q ' "${BARE_ARGV[@]}" >"$WORK/data/bare-argv.txt"

echo "cell start-up breakdown (repo $(repo_rev), as $(id -un))"
machine_line
echo "tools: $(bwrap --version) | $("$CELL" --version)"
python3 "$HERE/breakdown.py" --plan "$WORK/plan.json" --dir "$WORK/data" --cell "$CELL" \
	--cell-wt "$WORK/wt-cell" --bwrap-wt "$WORK/wt-bwrap" --runs "$RUNS" --warmup "$WARMUP" --phases "$PHASES"
