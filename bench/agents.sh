#!/usr/bin/env bash
# bench/agents.sh — what a cell adds to starting a real agent, per agent on PATH
# (claude, codex, gemini, opencode), side by side with hyperfine:
#   bare   `<agent> --version` on the host
#   none   `cell run --network none -- <agent> --version`   (sandbox, no proxy)
#   cell   `cell <agent> --version`  (the agent's own entry: proxy mode with its host preset,
#          so this starts cell-egress and the in-cell bridge too)
# The measurement runs in a private network namespace (only lo), so nothing an agent might
# try at start-up can leave the machine. Results land in bench/results/. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/agents.sh [options] [AGENT...]

  AGENT...        agents to time (default: claude codex gemini opencode)
  --runs N        runs per command   (default 20)
  --warmup N      warmup runs        (default 3)
  --no-install    do not apt-get install anything; fail if missing
  --no-build      use the release binaries already in rust/target/release-<host triple> (what the build puts together)
  -h, --help      this text

Environment: CARGO (cargo binary).
EOF
}

RUNS=20 WARMUP=3 INSTALL=1 BUILD=1 PHASE=main OUT="" AGENTS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--no-install) INSTALL=0; shift ;;
	--no-build) BUILD=0; shift ;;
	--phase-measure) PHASE=measure; OUT=$2; shift 2 ;; # internal: inside the network namespace
	-h | --help) usage; exit 0 ;;
	-*) echo "agents.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	*) AGENTS+=("$1"); shift ;;
	esac
done
[ ${#AGENTS[@]} -gt 0 ] || AGENTS=(claude codex gemini opencode)
for a in "${AGENTS[@]}"; do
	case $a in claude | codex | gemini | opencode) ;; *) echo "agents.sh: not an agent cell knows: $a" >&2; exit 2 ;; esac
done

# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- measure --
# Runs inside the network namespace. Writes <agent>.json, <agent>.version, <agent>.skip to $1.
measure() {
	local out=$1 a path v vn vc mode hf_n
	if command -v ip >/dev/null; then ip link set lo up 2>/dev/null || true; fi
	WORK=$(mktemp -d -t cell-agents.XXXXXX)
	local wt=$WORK/wt
	mkdir -p "$wt"
	# The cells' homes, runtime dirs and audit logs live in $WORK; built-in configuration.
	xdg_in "$WORK"
	unset_proxy_env
	unset CELL_CONFIG
	git -C "$wt" init -q
	cd "$wt"
	hf_detect
	for a in "${AGENTS[@]}"; do
		path=$(command -v "$a" 2>/dev/null) || { echo "$a is not installed (not on PATH)" >"$out/$a.skip"; continue; }
		# Sanity: all three print the same version, so the arguments reached the agent.
		if ! v=$(timeout 60 "$a" --version 2>"$WORK/$a.err" </dev/null); then
			echo "bare '$a --version' failed: $(tail -n 2 "$WORK/$a.err" | tr '\n' ' ')" >"$out/$a.skip"; continue
		fi
		# The command line `cell <agent>` runs: the agent with the cell's default flags
		# (e.g. claude --dangerously-skip-permissions), which can change the agent's own
		# start-up; it is timed bare and in a --network none cell too.
		"$CELL" plan --json --agent "$a" -- --version >"$WORK/$a.plan.json" 2>/dev/null || {
			echo "'cell plan --json --agent $a' failed" >"$out/$a.skip"; continue; }
		mode=$(jq -r '.network.mode // "?"' "$WORK/$a.plan.json")
		local -a full=()
		mapfile -d '' -t full < <(jq -j '.command[] | (., "\u0000")' "$WORK/$a.plan.json")
		local -a extra=()
		if [ "${full[*]}" != "$a --version" ]; then
			extra=(-n bare+flags "$(printf '%q ' "${full[@]}")"
				-n none+flags "$(printf '%q ' "$CELL" run --network none -- "${full[@]}")")
		fi
		if ! vn=$(timeout 60 "$CELL" run --network none -- "$a" --version 2>"$WORK/$a.err" </dev/null); then
			echo "'cell run --network none -- $a --version' failed: $(tail -n 2 "$WORK/$a.err" | tr '\n' ' ')" >"$out/$a.skip"; continue
		fi
		if ! vc=$(timeout 60 "$CELL" "$a" --version 2>"$WORK/$a.err" </dev/null); then
			echo "'cell $a --version' failed: $(tail -n 2 "$WORK/$a.err" | tr '\n' ' ')" >"$out/$a.skip"; continue
		fi
		if [ "$v" != "$vn" ] || [ "$v" != "$vc" ]; then
			echo "version output differs: bare '$v', none '$vn', cell '$vc'" >"$out/$a.skip"; continue
		fi
		printf '%s\t%s\t%s\t%s\n' "$(head -n 1 <<<"$v")" "$mode" "$(readlink -f "$path")" "${full[*]}" >"$out/$a.version"
		say "hyperfine: $a ($WARMUP warmup, $RUNS runs each)"
		if ! hyperfine "${hf_n[@]}" --style basic --warmup "$WARMUP" --runs "$RUNS" \
			--export-json "$out/$a.json" \
			-n bare "$(printf '%q ' "$a" --version)" \
			-n none "$(printf '%q ' "$CELL" run --network none -- "$a" --version)" \
			-n cell "$(printf '%q ' "$CELL" "$a" --version)" "${extra[@]}" >&2; then
			rm -f "$out/$a.json"
			echo "hyperfine run failed" >"$out/$a.skip"
		fi
	done
}

if [ "$PHASE" = measure ]; then
	measure "$OUT"
	exit 0
fi

# ------------------------------------------------------------------- main --
if command -v dpkg-query >/dev/null; then
	apt_install hyperfine bubblewrap jq git || die "cannot install hyperfine, bubblewrap, jq, git"
fi
require_cmds hyperfine bwrap jq git awk unshare timeout

[ "$BUILD" -eq 0 ] || build_release
for b in cell cell-init cell-egress; do [ -x "$BIN/$b" ] || die "no $BIN/$b"; done

OUTDIR=$(mktemp -d -t cell-agents-out.XXXXXX)
trap 'rm -rf -- "$OUTDIR"; cleanup' EXIT
# A private network namespace: root gets one with `unshare --net`; others map themselves to
# root in a new user namespace first (`unshare -r --net`), which bubblewrap accepts as well.
inner=(--phase-measure "$OUTDIR" --runs "$RUNS" --warmup "$WARMUP" "${AGENTS[@]}")
if [ "$(id -u)" -eq 0 ]; then NS=(unshare --net); else NS=(unshare --map-root-user --net); fi
"${NS[@]}" true 2>/dev/null || die "cannot create a network namespace ('${NS[*]}'); refusing to let agents start with the host's network"
"${NS[@]}" bash "$HERE/agents.sh" "${inner[@]}"

# ----------------------------------------------------------------- report --
mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
prefix=$RESULTS/agents-$STAMP
med() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .median * 1000' "$1"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", a - b }'; }
REV=$(repo_rev)
{
	echo "cell agents benchmark  $STAMP  (repo $REV, run as $(id -un), private network namespace)"
	machine_line
	echo "tools:   $(bwrap --version) | $(hyperfine --version) | $("$CELL" --version) | node $(node --version 2>/dev/null || echo n/a)"
	echo "runs:    $RUNS per command after $WARMUP warmup; medians in ms"
	echo
	printf '%-9s %-22s %8s %8s %8s %8s %8s   %8s %8s %8s %8s\n' agent version bare bare+fl none none+fl cell \
		sandbox flags proxy+ "cell adds"
	notes=()
	for a in "${AGENTS[@]}"; do
		f=$OUTDIR/$a.json
		[ -f "$f" ] || continue
		cp "$f" "$prefix-$a.json"
		IFS=$'\t' read -r ver mode _ full <"$OUTDIR/$a.version"
		b=$(med "$f" bare) n=$(med "$f" none) c=$(med "$f" cell)
		bf=$(med "$f" bare+flags) nf=$(med "$f" none+flags)
		[ -n "$bf" ] || bf=$b
		[ -n "$nf" ] || nf=$n
		printf '%-9s %-22.22s %8.1f %8.1f %8.1f %8.1f %8.1f   %8s %8s %8s %8s\n' "$a" "$ver" "$b" "$bf" "$n" "$nf" "$c" \
			"$(sub "$n" "$b")" "$(sub "$bf" "$b")" "$(sub "$c" "$nf")" "$(sub "$c" "$bf")"
		notes+=("$a: cell $a runs '$full' (network mode $mode)")
	done
	echo
	echo "medians in ms. bare: <agent> --version on the host | none: cell run --network none -- <agent> --version"
	echo "cell: cell <agent> --version, which runs the agent with the cell's default flags, in proxy mode with"
	echo "      the agent's host preset (starts cell-egress and the in-cell bridge)"
	echo "bare+fl / none+fl: the command line cell <agent> runs (flags included), bare and in a --network none cell"
	echo "sandbox = none - bare          flags = bare+fl - bare (the agent's own cost of the flags)"
	echo "proxy+ = cell - none+fl (proxy and agent entry)   cell adds = cell - bare+fl (same agent command line)"
	for x in "${notes[@]}"; do echo "$x"; done
	echo "files: bench/results/$(basename "$prefix")-*"
} | tee "$prefix-summary.txt"
for a in "${AGENTS[@]}"; do
	if [ -f "$OUTDIR/$a.skip" ]; then
		loud "$a NOT measured: $(cat "$OUTDIR/$a.skip")" 2>&1 | tee -a "$prefix-summary.txt"
	fi
done
