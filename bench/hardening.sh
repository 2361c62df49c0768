#!/usr/bin/env bash
# bench/hardening.sh — launch cost of cell's hardening, side by side in one run:
#   hardened   `cell run --network none -- true` with the default security settings
#              (seccomp filter + default protected paths), in a worktree that is a git
#              repository with .git/hooks and .git/config, so the protections apply
#   unhardened the same with "security": {"unsafeAllowAllSyscalls": true,
#              "defaultProtectedPaths": false}
#   plus the two halves (seccomp only, protected paths only) to attribute the cost.
# Measured with hyperfine in interleaved rounds; medians of the pooled runs. Results land
# in bench/results/. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/hardening.sh [options]

  --runs N       runs per variant, split over the rounds   (default 300)
  --rounds N     hyperfine rounds; the variant order rotates (default 3)
  --warmup N     warmup runs per variant and round          (default 10)
  --no-halves    time only hardened and unhardened
  --no-install   do not apt-get install anything; fail if missing
  --no-build     use the release binaries already in rust/target/release
  -h, --help     this text

Environment: CARGO (cargo binary).
EOF
}

RUNS=300 ROUNDS=3 WARMUP=10 HALVES=1 INSTALL=1 BUILD=1
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--no-halves) HALVES=0; shift ;;
	--no-install) INSTALL=0; shift ;;
	--no-build) BUILD=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "hardening.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
[ "$ROUNDS" -ge 1 ] && [ "$RUNS" -ge "$ROUNDS" ] || { echo "hardening.sh: need --runs >= --rounds >= 1" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# ------------------------------------------------------------ install --
if command -v dpkg-query >/dev/null; then
	apt_install hyperfine bubblewrap jq git || die "cannot install hyperfine, bubblewrap, jq, git"
fi
require_cmds hyperfine bwrap jq git awk

[ "$BUILD" -eq 0 ] || build_release
[ -x "$CELL" ] || die "no $CELL (build rust/ --release first)"

# -------------------------------------------------------------- setup --
WORK=$(mktemp -d -t cell-hardening.XXXXXX)
OUT=$WORK/out
WT=$WORK/wt
mkdir -p "$OUT" "$WT"
# Cell homes, runtime dirs and logs inside $WORK; no user config is read (--config below).
xdg_in "$WORK"
git -C "$WT" init -q
[ -d "$WT/.git/hooks" ] || mkdir -p "$WT/.git/hooks"
[ -f "$WT/.git/config" ] || die "git init left no .git/config"
cd "$WT"

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
	printf '{"schemaVersion":1,"cells":{"default":{"security":%s}}}\n' "${SEC[$n]}" >"$WORK/$n.json"
	cp "$WORK/$n.json" "$OUT/config-$n.json"
done

# Sanity: the plans differ exactly as intended, and the running cells show it.
say "sanity checks"
plan() { "$CELL" --config "$WORK/$1.json" plan --json --network none -- true; }
want() { # want NAME SECCOMP(0|1) PROTECTED(0|1)
	local p nfd nprot status hook
	p=$(plan "$1") || die "cell plan failed for $1"
	nfd=$(jq '[.argv[] | select(. == "--add-seccomp-fd" or . == "--seccomp")] | length' <<<"$p")
	nprot=$(jq --arg wt "$WT" '[.protected[]?.path | select(. == ($wt + "/.git/hooks") or . == ($wt + "/.git/config"))] | length' <<<"$p")
	if [ "$2" = 1 ]; then [ "$nfd" -ge 1 ] || die "$1: plan has no seccomp filter"; else [ "$nfd" -eq 0 ] || die "$1: plan has a seccomp filter"; fi
	if [ "$3" = 1 ]; then [ "$nprot" -eq 2 ] || die "$1: plan does not protect .git/hooks and .git/config"; else [ "$nprot" -eq 0 ] || die "$1: plan protects .git paths"; fi
	status=$("$CELL" --config "$WORK/$1.json" run --network none -- sh -c 'sed -n "s/^Seccomp:[[:space:]]*//p" /proc/self/status') ||
		die "$1: cell run failed"
	if [ "$2" = 1 ]; then [ "$status" = 2 ] || die "$1: process in the cell is not in seccomp filter mode (Seccomp: $status)"
	else [ "$status" = 0 ] || die "$1: process in the cell has a seccomp filter (Seccomp: $status)"; fi
	if "$CELL" --config "$WORK/$1.json" run --network none -- sh -c 'echo x > .git/hooks/bench-probe' 2>/dev/null; then hook=1; else hook=0; fi
	rm -f .git/hooks/bench-probe
	[ "$hook" != "$3" ] || die "$1: writing .git/hooks was $([ "$hook" = 1 ] && echo allowed || echo refused), against the config"
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
# as in bench/jail.sh, by bare_bwrap_argv in bench/lib.sh), for a second worktree so the
# placeholder mount points bwrap leaves behind there never change what the cells above see.
# seccomp filters travel as fds the launcher fills, so the bare calls run without them:
# bwrap-hardened - bwrap-unhardened is the mount work of the protected paths alone.
WT2=$WORK/wt-bare
mkdir -p "$WT2"
git -C "$WT2" init -q
declare -A BARE=()
BARE_NAMES=()
for n in hardened unhardened; do
	(cd "$WT2" && "$CELL" --config "$WORK/$n.json" plan --json --network none -- true) >"$WORK/bare-plan-$n.json" ||
		die "cell plan failed for the bare $n call"
	bare_bwrap_argv "$WORK/bare-plan-$n.json" "$WORK/etc-$n"
	bargv=("${BARE_ARGV[@]}")
	if "${bargv[@]}" 2>"$WORK/bare-$n.err"; then
		BARE[bwrap-$n]=$(printf '%q ' "${bargv[@]}")
		BARE_NAMES+=("bwrap-$n")
		printf '%s\n' "${BARE[bwrap-$n]}" >"$OUT/bwrap-$n-argv.txt"
	else
		say "bare bwrap call for $n failed ($(head -n 1 "$WORK/bare-$n.err")); not timed"
	fi
done
[ ${#BARE_NAMES[@]} -eq 2 ] || { BARE_NAMES=(); BARE=(); }

# ------------------------------------------------------------ measure --
hf_detect
PER=$(((RUNS + ROUNDS - 1) / ROUNDS))
for r in $(seq "$ROUNDS"); do
	# Rotate the order so no variant always runs first (or right after the warm-up of another).
	all=("${NAMES[@]}" "${BARE_NAMES[@]}")
	args=() k=${#all[@]}
	for j in $(seq 0 $((k - 1))); do
		n=${all[$(((j + r - 1) % k))]}
		case $n in
		bwrap-*) args+=(-n "$n" "${BARE[$n]}") ;;
		*) args+=(-n "$n" "$(printf '%q ' "$CELL" --config "$WORK/$n.json" run --network none -- true)") ;;
		esac
	done
	say "round $r/$ROUNDS: hyperfine, $WARMUP warmup + $PER runs per variant"
	hyperfine "${hf_n[@]}" --style basic --warmup "$WARMUP" --runs "$PER" \
		--export-json "$OUT/round-$r.json" "${args[@]}" >&2
done

# ------------------------------------------------------------- report --
mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
prefix=$RESULTS/hardening-$STAMP
jq -s '{results: [.[].results[]] | group_by(.command) | map({command: .[0].command, times: (map(.times) | add)})}' \
	"$OUT"/round-*.json >"$OUT/pooled.json"
for f in "$OUT"/*; do cp "$f" "$prefix-$(basename "$f")"; done

# stat NAME FIELD over the pooled times (ms); FIELD: n median mean min p10 p90
stat() {
	jq -r --arg n "$1" --arg f "$2" '
		.results[] | select(.command == $n) | .times | sort | map(. * 1000) as $t | ($t | length) as $l |
		def q(p): $t[((($l - 1) * p) | floor)];
		if $f == "n" then $l
		elif $f == "median" then (if $l % 2 == 1 then $t[($l - 1) / 2] else ($t[$l / 2 - 1] + $t[$l / 2]) / 2 end)
		elif $f == "mean" then (($t | add) / $l)
		elif $f == "min" then $t[0]
		elif $f == "p10" then q(0.1)
		elif $f == "p90" then q(0.9)
		else error("field") end' "$OUT/pooled.json"
}
round_median() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .median * 1000' "$OUT/round-$1.json"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

H=$(stat hardened median) U=$(stat unhardened median)
D=$(sub "$H" "$U")
REV=$(repo_rev)
{
	echo "cell hardening benchmark  $STAMP  (repo $REV, run as $(id -un))"
	machine_line
	echo "tools:   $(bwrap --version) | $(hyperfine --version) | $("$CELL" --version)"
	echo "command: cell --config <variant>.json run --network none -- true, in a git worktree ($ROUNDS rounds x $PER runs, $WARMUP warmup each)"
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
	for r in $(seq "$ROUNDS"); do per="$per $(sub "$(round_median "$r" hardened)" "$(round_median "$r" unhardened)")"; done
	echo "per-round median difference hardened - unhardened (ms):$per"
	if [ "$HALVES" -eq 1 ]; then
		echo "seccomp filter alone adds:   $(sub "$(stat seccomp-only median)" "$U") ms (median, seccomp-only - unhardened)"
		echo "protected paths alone add:   $(sub "$(stat protect-only median)" "$U") ms (median, protect-only - unhardened)"
	fi
	if [ ${#BARE_NAMES[@]} -eq 2 ]; then
		echo "protected-path mounts in bare bwrap: $(sub "$(stat bwrap-hardened median)" "$(stat bwrap-unhardened median)") ms (median, bwrap-hardened - bwrap-unhardened; no launcher, no seccomp)"
	fi
	verdict=$(awk -v d="$D" 'BEGIN { print (d <= 1 ? "ok, target <= 1 ms" : "OVER the 1 ms target") }')
	echo "hardening adds (median): $D ms  ($(printf '%.2f' "$H") vs $(printf '%.2f' "$U") ms; $verdict)"
	echo "files: bench/results/$(basename "$prefix")-*"
} | tee "$prefix-summary.txt"
