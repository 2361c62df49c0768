#!/usr/bin/env bash
# bench/hardening.sh — launch cost of cell's hardening, side by side in one run:
#   hardened   `cell run --network none -- true` with the default security settings
#              (seccomp filter + default protected paths), in a worktree that is a git
#              repository with .git/hooks and .git/config, so the protections apply
#   unhardened the same with "security": {"unsafeAllowAllSyscalls": true,
#              "defaultProtectedPaths": false}
#   plus the two halves (seccomp only, protected paths only) to attribute the cost.
# The variants run interleaved (bench/interleave.py: A B C D, B C D A, ...), each in its own
# fresh worktree and cell (own home), so one variant's leftovers (bwrap's placeholder mount
# points) cannot change another's plan. Results land in bench/results/. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/hardening.sh [options]

  --runs N       interleaved runs per variant              (default 300)
  --warmup N     warmup runs per variant                   (default 10)
  --no-halves    time only hardened and unhardened
  --no-install   do not apt-get install anything; fail if missing
  --no-build     use the release binaries already in rust/target/release-<host triple> (what the build puts together)
  --user NAME    run the cells as unprivileged user NAME (needs root; installing and
                 building still happen as root, the results are copied back)
  -h, --help     this text

Environment: CARGO (cargo binary), CELL_BIN_DIR (the cell binaries to measure).
EOF
}

RUNS=300 WARMUP=10 HALVES=1 INSTALL=1 BUILD=1 AS_USER=""
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--no-halves) HALVES=0; shift ;;
	--no-install) INSTALL=0; shift ;;
	--no-build) BUILD=0; shift ;;
	--user) AS_USER=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "hardening.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
[ "$RUNS" -ge 3 ] || { echo "hardening.sh: need --runs >= 3" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

as_root_needs_user

# ------------------------------------------------------------ install --
if command -v dpkg-query >/dev/null; then
	apt_install bubblewrap jq git python3 || die "cannot install bubblewrap, jq, git, python3"
fi
require_cmds bwrap jq git awk python3

[ "$BUILD" -eq 0 ] || build_release
need_cell

if [ -n "$AS_USER" ]; then
	# Everything from here on runs as the user, in a results directory it owns; the
	# report and its files come back to bench/results.
	[ "$(id -u)" -eq 0 ] || die "--user needs root"
	uhome=$(getent passwd "$AS_USER" | cut -d: -f6) || die "no such user: $AS_USER"
	[ "$(id -u "$AS_USER")" -ne 0 ] || die "--user wants an unprivileged user"
	runuser -u "$AS_USER" -- sh -c 'test -r "$1" && test -r "$2" && test -x "$3"' - "$HERE/hardening.sh" "$HERE/lib.sh" "$CELL" ||
		die "user $AS_USER cannot read $HERE/hardening.sh and $HERE/lib.sh or run $CELL; the checkout must be readable by it"
	WORK=$(mktemp -d -t cell-hardening-results.XXXXXX) # removed on exit (bench/lib.sh)
	UOUT=$WORK
	chown "$AS_USER" "$UOUT"
	inner=(--no-install --no-build --runs "$RUNS" --warmup "$WARMUP")
	[ "$HALVES" -eq 1 ] || inner+=(--no-halves)
	(cd / && runuser -u "$AS_USER" -- env -i HOME="$uhome" USER="$AS_USER" LOGNAME="$AS_USER" \
		PATH="$PATH" LANG=C.UTF-8 CELL_BIN_DIR="$BIN" CELL_BENCH_RESULTS="$UOUT" CELL_BENCH_SHOWN="$RESULTS" CELL_BENCH_REV="$(repo_rev)" bash "$HERE/hardening.sh" "${inner[@]}") ||
		die "the run as $AS_USER failed"
	mkdir -p "$RESULTS"
	cp -- "$UOUT"/* "$RESULTS"/
	say "files copied to $RESULTS/"
	exit 0
fi

# -------------------------------------------------------------- setup --
WORK=$(mktemp -d -t cell-hardening.XXXXXX)
OUT=$WORK/out
mkdir -p "$OUT"
# Cell homes, runtime dirs and logs inside $WORK; no user config is read (--config below).
xdg_in "$WORK"
newwt() { # newwt DIR: a fresh git worktree (with .git/hooks and .git/config)
	mkdir -p "$1"
	git -C "$1" init -q
	[ -d "$1/.git/hooks" ] || mkdir -p "$1/.git/hooks"
	[ -f "$1/.git/config" ] || die "git init left no .git/config"
}

# name -> security object
declare -A SEC=(
	[hardened]='{}'
	[unhardened]='{"unsafeAllowAllSyscalls":true,"defaultProtectedPaths":false}'
	[seccomp-only]='{"defaultProtectedPaths":false}'
	[protect-only]='{"unsafeAllowAllSyscalls":true}'
)
NAMES=(hardened unhardened)
[ "$HALVES" -eq 0 ] || NAMES+=(seccomp-only protect-only)
for n in "${NAMES[@]}"; do
	# Each variant is its own cell (own home) with its own worktree.
	printf '{"schemaVersion":1,"defaultCell":"%s","cells":{"%s":{"security":%s}}}\n' "$n" "$n" "${SEC[$n]}" >"$WORK/$n.json"
	cp "$WORK/$n.json" "$OUT/config-$n.json"
	newwt "$WORK/wt-$n"
done

# Sanity: the plans differ exactly as intended, and the running cells show it.
say "sanity checks"
plan() { (cd "$WORK/wt-$1" && "$CELL" --config "$WORK/$1.json" plan --json --network none -- true); }
want() { # want NAME SECCOMP(0|1) PROTECTED(0|1)
	local p nfd nprot status hook WT=$WORK/wt-$1
	p=$(plan "$1") || die "cell plan failed for $1"
	cd "$WT"
	nfd=$(jq '[.argv[] | select(. == "--add-seccomp-fd" or . == "--seccomp")] | length' <<<"$p")
	nprot=$(jq --arg wt "$WT" '[.protected[]?.path | select(. == ($wt + "/.envrc") or . == ($wt + "/.vscode"))] | length' <<<"$p")
	if [ "$2" = 1 ]; then [ "$nfd" -ge 1 ] || die "$1: plan has no seccomp filter"; else [ "$nfd" -eq 0 ] || die "$1: plan has a seccomp filter"; fi
	if [ "$3" = 1 ]; then [ "$nprot" -eq 2 ] || die "$1: plan does not protect .envrc and .vscode"; else [ "$nprot" -eq 0 ] || die "$1: plan protects .envrc or .vscode"; fi
	status=$("$CELL" --config "$WORK/$1.json" run --network none -- sh -c 'sed -n "s/^Seccomp:[[:space:]]*//p" /proc/self/status') ||
		die "$1: cell run failed"
	if [ "$2" = 1 ]; then [ "$status" = 2 ] || die "$1: process in the cell is not in seccomp filter mode (Seccomp: $status)"
	else [ "$status" = 0 ] || die "$1: process in the cell has a seccomp filter (Seccomp: $status)"; fi
	# An absent protected file the cell creates is set aside when it ends.
	"$CELL" --config "$WORK/$1.json" run --network none -- sh -c 'echo x > .envrc' 2>/dev/null || die "$1: cell run failed"
	if [ -e .envrc ]; then hook=1; else hook=0; fi
	rm -f .envrc .envrc.cell-quarantined-*
	cd "$WORK"
	[ "$hook" != "$3" ] || die "$1: a .envrc the cell made was $([ "$hook" = 1 ] && echo kept || echo set aside), against the config"
	echo "$nfd"
}
NFD=""
for n in "${NAMES[@]}"; do
	case $n in
	hardened) NFD=$(want "$n" 1 1) ;;
	unhardened) want "$n" 0 0 >/dev/null ;;
	seccomp-only) want "$n" 1 0 >/dev/null ;;
	protect-only) want "$n" 0 1 >/dev/null ;;
	esac
done
plan hardened >"$OUT/plan-hardened.json"
plan unhardened >"$OUT/plan-unhardened.json"

# Attribution: the bare bubblewrap calls of both plans (no launcher, no cell-init; derived
# as in bench/jail.sh, by bare_bwrap_argv in bench/lib.sh), each for a worktree of its own so
# the placeholder mount points bwrap leaves behind there never change what the others see.
# seccomp filters travel as fds the launcher fills, so the bare calls run without them:
# bwrap-hardened - bwrap-unhardened is the mount work of the protected paths alone.
declare -A BARE=()
BARE_NAMES=()
for n in hardened unhardened; do
	# A plain directory: in a git worktree the plan binds a private .git copy that only a
	# launch creates, which the bare call cannot.
	mkdir -p "$WORK/wt-bwrap-$n"
	(cd "$WORK/wt-bwrap-$n" && "$CELL" --config "$WORK/$n.json" plan --json --network none -- true) >"$WORK/bare-plan-$n.json" ||
		die "cell plan failed for the bare $n call"
	bare_bwrap_argv "$WORK/bare-plan-$n.json" "$WORK/etc-$n"
	bargv=("${BARE_ARGV[@]}")
	if (cd "$WORK/wt-bwrap-$n" && "${bargv[@]}") 2>"$WORK/bare-$n.err"; then
		BARE[bwrap-$n]=$(printf '%q ' "${bargv[@]}")
		BARE_NAMES+=("bwrap-$n")
		printf '%s\n' "${BARE[bwrap-$n]}" >"$OUT/bwrap-$n-argv.txt"
	else
		say "bare bwrap call for $n failed ($(head -n 1 "$WORK/bare-$n.err")); not timed"
	fi
done
[ ${#BARE_NAMES[@]} -eq 2 ] || { BARE_NAMES=(); BARE=(); }

# ------------------------------------------------------------ measure --
args=()
for n in "${NAMES[@]}" "${BARE_NAMES[@]}"; do
	case $n in
	bwrap-*) args+=(--cwd "$n=$WORK/wt-$n" "$n=${BARE[$n]}") ;;
	*) args+=(--cwd "$n=$WORK/wt-$n" "$n=$(printf '%q ' "$CELL" --config "$WORK/$n.json" run --network none -- true)") ;;
	esac
done
say "interleaved: $WARMUP warmup + $RUNS runs per variant"
python3 "$HERE/interleave.py" --runs "$RUNS" --warmup "$WARMUP" --json "$OUT/pooled.json" "${args[@]}" >&2 ||
	die "interleaved run failed"

# ------------------------------------------------------------- report --
mkdir -p "$RESULTS" 2>/dev/null || true
if [ ! -w "$RESULTS" ]; then RESULTS=$HOME/cell-bench-results; mkdir -p "$RESULTS"; say "bench/results is not writable; results go to $RESULTS"; fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
prefix=$RESULTS/hardening-$STAMP
for f in "$OUT"/*; do cp "$f" "$prefix-$(basename "$f")"; done

# stat NAME FIELD over the pooled times (ms); FIELD: n median mean min p10 p90
stat() { times_stat "$OUT/pooled.json" "$@"; }
third_median() { # third_median K NAME: median (ms) of the K-th third (0..2) of NAME's runs, in run order
	jq -r --arg n "$2" --argjson k "$1" '
		.results[] | select(.command == $n) | .times | (length / 3 | floor) as $w |
		.[($k * $w):(($k + 1) * $w)] | sort | map(. * 1000) as $t | ($t | length) as $l |
		if $l % 2 == 1 then $t[($l - 1) / 2] else ($t[$l / 2 - 1] + $t[$l / 2]) / 2 end' "$OUT/pooled.json"
}
loadavg() { jq -r --arg k "$1" '.[$k] | map(. * 100 | round / 100) | map(tostring) | join(" ")' "$OUT/pooled.json"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

H=$(stat hardened median) U=$(stat unhardened median)
D=$(sub "$H" "$U")
REV=$(repo_rev)
{
	echo "cell hardening benchmark  $STAMP  (repo $REV, run as $(id -un))"
	machine_line
	echo "tools:   $(bwrap --version) | $("$CELL" --version)"
	echo "command: cell --config <variant>.json run --network none -- true, each variant in its own git worktree and cell;"
	echo "         $RUNS interleaved runs per variant after $WARMUP warmups (bench/interleave.py)"
	echo "load average (1 5 15 min): $(loadavg load_before) before, $(loadavg load_after) after"
	echo
	printf '%-16s %-38s %5s %10s %8s %8s %8s %8s\n' "" "security" runs "median ms" "mean" "p10" "p90" "min"
	for n in "${NAMES[@]}" "${BARE_NAMES[@]}"; do
		printf '%-16s %-38s %5s %10.2f %8.2f %8.2f %8.2f %8.2f\n' "$n" \
			"$(case $n in hardened) echo "default (seccomp $NFD progs, protected)" ;; unhardened) echo "no seccomp, no protected paths" ;;
				seccomp-only) echo "seccomp, no protected paths" ;; protect-only) echo "protected paths, no seccomp" ;;
				bwrap-hardened) echo "bare bwrap, protected paths" ;; bwrap-unhardened) echo "bare bwrap, no protected paths" ;; esac)" \
			"$(stat "$n" n)" "$(stat "$n" median)" "$(stat "$n" mean)" "$(stat "$n" p10)" "$(stat "$n" p90)" "$(stat "$n" min)"
	done
	echo
	per=""
	for k in 0 1 2; do per="$per $(sub "$(third_median "$k" hardened)" "$(third_median "$k" unhardened)")"; done
	echo "median difference hardened - unhardened per third of the runs (ms):$per"
	if [ "$HALVES" -eq 1 ]; then
		echo "seccomp filter alone adds:   $(sub "$(stat seccomp-only median)" "$U") ms (median, seccomp-only - unhardened)"
		echo "protected paths alone add:   $(sub "$(stat protect-only median)" "$U") ms (median, protect-only - unhardened)"
	fi
	if [ ${#BARE_NAMES[@]} -eq 2 ]; then
		echo "protected-path mounts in bare bwrap: $(sub "$(stat bwrap-hardened median)" "$(stat bwrap-unhardened median)") ms (median, bwrap-hardened - bwrap-unhardened; no launcher, no seccomp)"
	fi
	verdict=$(awk -v d="$D" 'BEGIN { print (d <= 1 ? "ok, target <= 1 ms" : "OVER the 1 ms target") }')
	echo "hardening adds (median): $D ms  ($(printf '%.2f' "$H") vs $(printf '%.2f' "$U") ms, ratio $(awk -v h="$H" -v u="$U" 'BEGIN { printf "%.3f", h / u }')x; $verdict)"
	echo "files: ${CELL_BENCH_SHOWN:-$RESULTS}/hardening-$STAMP-*"
} | tee "$prefix-summary.txt"
