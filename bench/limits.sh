#!/usr/bin/env bash
# bench/limits.sh — launch cost of a cell's resource limits, side by side in one run:
#   limited    `cell run --network none -- true` with the default limits (4096 tasks, 75% of
#              RAM, CPU weight 100): the launcher makes the cell's cgroups (or, where it
#              cannot, works out the rlimits), moves itself in, and removes them afterwards
#   unlimited  the same with "limits": {"unsafeNoLimits": true}: no cgroup, no rlimits
# The variants run interleaved (bench/interleave.py: A B, B A, ...), so drift in machine load
# hits both alike. Results land in bench/results/. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/limits.sh [options]

  --runs N       interleaved runs per variant               (default 300)
  --warmup N     warmup runs per variant                    (default 10)
  --no-install   do not apt-get install anything; fail if missing
  --no-build     use the release binaries already in rust/target/release-<host triple> (what the build puts together)
  -h, --help     this text

Environment: CARGO (cargo binary).
EOF
}

RUNS=300 WARMUP=10 INSTALL=1 BUILD=1
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--no-install) INSTALL=0; shift ;;
	--no-build) BUILD=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "limits.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
[ "$RUNS" -ge 3 ] || { echo "limits.sh: need --runs >= 3" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

if command -v dpkg-query >/dev/null; then
	apt_install bubblewrap jq python3 || die "cannot install bubblewrap, jq, python3"
fi
require_cmds bwrap jq awk python3

[ "$BUILD" -eq 0 ] || build_release
need_cell

WORK=$(mktemp -d -t cell-limits.XXXXXX)
OUT=$WORK/out
WT=$WORK/wt
mkdir -p "$OUT" "$WT"
xdg_in "$WORK"
cd "$WT"
# As root, cell becomes its runAs account (`cell`): the worktree and the XDG directories
# must be that account's.
as_cell_account() {
	if [ "$(id -u)" -eq 0 ]; then
		id cell >/dev/null 2>&1 || useradd --system --home-dir /var/lib/cell --create-home cell
		chmod 755 "$WORK"
		chown -R cell:cell "$WORK"
	fi
}

declare -A LIM=([limited]='{}' [unlimited]='{"unsafeNoLimits":true}')
NAMES=(limited unlimited)
for n in "${NAMES[@]}"; do
	printf '{"schemaVersion":1,"cells":{"default":{"limits":%s}}}\n' "${LIM[$n]}" >"$WORK/$n.json"
	cp "$WORK/$n.json" "$OUT/config-$n.json"
done

as_cell_account

# Sanity: the plans carry (or drop) the limits, and a small fork loop in a cell with 32
# tasks hits the limit while the same loop without limits does not.
say "sanity checks"
plan() { "$CELL" --config "$WORK/$1.json" plan --json --network none -- true; }
[ "$(plan limited | jq -r '.limits.tasks')" = 4096 ] || die "limited: the plan does not limit tasks to 4096"
[ "$(plan unlimited | jq -r '.limits.unsafeNoLimits')" = true ] || die "unlimited: the plan still has limits"
cat >"$WT/forks.py" <<'EOF'
import os, time
n = 0
for _ in range(64):
    try:
        if os.fork() == 0:
            time.sleep(2)
            os._exit(0)
    except OSError:
        break
    n += 1
print(n)
EOF
printf '{"schemaVersion":1,"cells":{"default":{"limits":{"tasks":32}}}}\n' >"$WORK/t32.json"
printf '{"schemaVersion":1,"cells":{"default":{"limits":{"tasks":32,"unsafeNoLimits":true}}}}\n' >"$WORK/t32-off.json"
as_cell_account
ENFORCED=$("$CELL" --config "$WORK/t32.json" run --network none -- python3 forks.py 2>"$WORK/t32.err") || die "cell run failed: $(cat "$WORK/t32.err")"
FREE=$("$CELL" --config "$WORK/t32-off.json" run --network none -- python3 forks.py 2>/dev/null) || die "cell run failed"
HOW=cgroup
grep -q 'tasks only as RLIMIT_NPROC' "$WORK/t32.err" && HOW="rlimits (no cgroup for this user)"
if grep -q 'tasks NOT enforced' "$WORK/t32.err"; then
	loud "tasks are not enforced for $(id -un) on this host; timing anyway: $(cat "$WORK/t32.err")"
	HOW="nothing enforced"
elif [ "$HOW" = cgroup ]; then
	[ "$ENFORCED" -lt 32 ] || die "the tasks limit did not hold: $ENFORCED forks under a limit of 32"
fi
[ "$FREE" -eq 64 ] || die "without limits the loop stopped at $FREE forks"
say "32-task cell forked $ENFORCED times (limits by $HOW); without limits $FREE"

args=()
for n in "${NAMES[@]}"; do
	args+=("$n=$(printf '%q ' "$CELL" --config "$WORK/$n.json" run --network none -- true)")
done
say "interleaved: $WARMUP warmup + $RUNS runs per variant"
python3 "$HERE/interleave.py" --runs "$RUNS" --warmup "$WARMUP" --json "$OUT/pooled.json" "${args[@]}" >&2 ||
	die "interleaved run failed"

mkdir -p "$RESULTS" 2>/dev/null || true
if [ ! -w "$RESULTS" ]; then RESULTS=$HOME/cell-bench-results; mkdir -p "$RESULTS"; say "bench/results is not writable; results go to $RESULTS"; fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
prefix=$RESULTS/limits-$STAMP
for f in "$OUT"/*; do cp "$f" "$prefix-$(basename "$f")"; done

stat() { times_stat "$OUT/pooled.json" "$@"; }
third_median() { # third_median K NAME: median (ms) of the K-th third (0..2) of NAME's runs, in run order
	jq -r --arg n "$2" --argjson k "$1" '
		.results[] | select(.command == $n) | .times | (length / 3 | floor) as $w |
		.[($k * $w):(($k + 1) * $w)] | sort | map(. * 1000) as $t | ($t | length) as $l |
		if $l % 2 == 1 then $t[($l - 1) / 2] else ($t[$l / 2 - 1] + $t[$l / 2]) / 2 end' "$OUT/pooled.json"
}
loadavg() { jq -r --arg k "$1" '.[$k] | map(. * 100 | round / 100) | map(tostring) | join(" ")' "$OUT/pooled.json"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

L=$(stat limited median) U=$(stat unlimited median)
{
	echo "cell limits benchmark  $STAMP  (repo $(repo_rev), run as $(id -un))"
	machine_line
	echo "tools:   $(bwrap --version) | $("$CELL" --version)"
	echo "command: cell --config <variant>.json run --network none -- true ($RUNS interleaved runs each after $WARMUP warmups)"
	echo "load average (1 5 15 min): $(loadavg load_before) before, $(loadavg load_after) after"
	echo "limits enforced by: $HOW"
	echo
	printf '%-10s %-34s %5s %10s %8s %8s %8s %8s\n' "" "limits" runs "median ms" "mean" "p10" "p90" "min"
	for n in "${NAMES[@]}"; do
		printf '%-10s %-34s %5s %10.2f %8.2f %8.2f %8.2f %8.2f\n' "$n" \
			"$(case $n in limited) echo "default (4096 tasks, 75% RAM, w 100)" ;; unlimited) echo "unsafeNoLimits" ;; esac)" \
			"$(stat "$n" n)" "$(stat "$n" median)" "$(stat "$n" mean)" "$(stat "$n" p10)" "$(stat "$n" p90)" "$(stat "$n" min)"
	done
	echo
	per=""
	for k in 0 1 2; do per="$per $(sub "$(third_median "$k" limited)" "$(third_median "$k" unlimited)")"; done
	echo "median difference limited - unlimited per third of the runs (ms):$per"
	echo "limits add (median): $(sub "$L" "$U") ms  ($(printf '%.2f' "$L") vs $(printf '%.2f' "$U") ms)"
	echo "files: bench/results/$(basename "$prefix")-*"
} | tee "$prefix-summary.txt"
