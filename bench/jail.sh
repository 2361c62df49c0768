#!/usr/bin/env bash
# bench/jail.sh — start-up cost of a sandbox around `true`, side by side:
#   (a) cell   `cell run --network none -- true` (release build of this repo)
#   (b) bwrap  the equivalent bare bubblewrap call (derived from `cell plan --json`)
#   (c) srt    Anthropic's sandbox-runtime (npm @anthropic-ai/sandbox-runtime)
# Measured with hyperfine; JSON lands in bench/results/. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/jail.sh [options]

  --runs N          runs for cell and bare bwrap        (default 200)
  --warmup N        warmup runs for cell and bare bwrap (default 20)
  --srt-runs N      runs for srt                        (default 30)
  --srt-warmup N    warmup runs for srt                 (default 3)
  --no-srt          skip srt
  --user NAME       run the sandboxes as unprivileged user NAME (needs root;
                    installing and building still happen as root)
  --no-install      do not apt-get/npm install anything; fail if missing
  -h, --help        this text

Environment: SRT_VERSION (npm version spec, default: latest), CARGO.
EOF
}

RUNS=200 WARMUP=20 SRT_RUNS=30 SRT_WARMUP=3 DO_SRT=1 AS_USER="" INSTALL=1
PHASE=main OUT=""
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--srt-runs) SRT_RUNS=$2; shift 2 ;;
	--srt-warmup) SRT_WARMUP=$2; shift 2 ;;
	--no-srt) DO_SRT=0; shift ;;
	--user) AS_USER=$2; shift 2 ;;
	--no-install) INSTALL=0; shift ;;
	--phase-measure) PHASE=measure; OUT=$2; shift 2 ;; # internal (used with --user)
	-h | --help) usage; exit 0 ;;
	*) echo "jail.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done

# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
DEPS=$HERE/.deps
SRT=$DEPS/node_modules/.bin/srt
SRT_PKG=$DEPS/node_modules/@anthropic-ai/sandbox-runtime

HPROBE="" # a probe file in $HOME while srt is checked
cleanup_hook() { if [ -n "$HPROBE" ]; then rm -f -- "$HPROBE"; fi; }

# ---------------------------------------------------------------- install --
install_srt() { # returns non-zero with a reason on stdout when srt is unusable
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		apt_install nodejs npm >/dev/null 2>&1 || true
	fi
	command -v node >/dev/null || { echo "node is not installed"; return 1; }
	command -v npm >/dev/null || { echo "npm is not installed"; return 1; }
	local v; v=$(node -p 'process.versions.node')
	node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=11)?0:1)' ||
		{ echo "node $v is too old (sandbox-runtime needs >= 20.11)"; return 1; }
	apt_install socat ripgrep >&2 || { echo "cannot install socat/ripgrep"; return 1; }
	if [ ! -x "$SRT" ] || [ -n "${SRT_VERSION:-}" ]; then
		[ "$INSTALL" -eq 1 ] || { echo "srt is not installed in bench/.deps (and --no-install)"; return 1; }
		mkdir -p "$DEPS"
		say "npm install @anthropic-ai/sandbox-runtime@${SRT_VERSION:-latest} into bench/.deps"
		npm --prefix "$DEPS" install --no-audit --no-fund --loglevel=error \
			"@anthropic-ai/sandbox-runtime@${SRT_VERSION:-latest}" >&2 ||
			{ echo "npm install @anthropic-ai/sandbox-runtime failed"; return 1; }
	fi
	[ -x "$SRT" ] || { echo "srt binary missing after npm install"; return 1; }
}

# ---------------------------------------------------------------- measure --
# Runs as the measuring user; writes fast.json, srt.json (or srt.skip), bwrap-argv.txt to $1.
measure() {
	local out=$1 hf_n
	trap cleanup EXIT
	WORK=$(mktemp -d -t cell-bench.XXXXXX)
	local wt=$WORK/worktree outside=$WORK/outside
	mkdir -p "$wt" "$outside" "$WORK/etc"
	cd "$wt"
	# -N: no intermediate shell (hyperfine >= 1.13); else hyperfine subtracts the shell's cost.
	hf_detect

	# (a) cell: sanity first (also creates cell's per-cell home on a first run).
	"$CELL" run --network none -- true || die "cell run --network none -- true failed"
	if "$CELL" run --network none -- sh -c "echo x > '$outside/cell-probe'" 2>/dev/null ||
		[ -e "$outside/cell-probe" ]; then
		die "cell could write outside its worktree — refusing to benchmark"
	fi
	"$CELL" run --network none -- sh -c 'echo x > cell-inside' && [ -f cell-inside ] ||
		die "cell could not write inside its worktree"
	rm -f cell-inside

	# (b) bare bwrap: the argv of `cell plan`, minus the fd-based options and cell-init
	# (bare_bwrap_argv in bench/lib.sh).
	"$CELL" plan --json --network none -- true >"$WORK/plan.json" 2>/dev/null ||
		"$CELL" plan --json -- true >"$WORK/plan.json" || die "cell plan --json failed"
	bare_bwrap_argv "$WORK/plan.json" "$WORK/etc"
	local -a bare=("${BARE_ARGV[@]}")
	if [ "$BARE_SECCOMP_DROPPED" -eq 1 ]; then
		# hyperfine cannot hand a fresh copy of the filter fds to every run (bench/hardening.sh
		# measures what they cost inside cell).
		echo "bare bwrap ran without cell's seccomp filters (the plan passes them as fds; bench/hardening.sh measures their cost)" >"$out/notes"
	fi
	local joined=" ${bare[*]} " req
	for req in --unshare-user --unshare-ipc --unshare-pid --unshare-net --unshare-uts --unshare-cgroup \
		"--tmpfs /tmp" "--dev /dev" "--proc /proc" "--bind $wt $wt" "-- true"; do
		case "$joined" in *" $req "*) ;; *) die "derived bare bwrap call lacks '$req': ${bare[*]}" ;; esac
	done
	# Hardening flags the comparison is defined with: if this cell build lacks one, say so
	# loudly and still give it to the bare call (they cost next to nothing).
	for req in --die-with-parent --new-session "--cap-drop ALL"; do
		case "$joined" in *" $req "*) ;; *)
			echo "cell's bwrap argv lacks '$req' (the cell build under test is weaker than expected); added to the bare call" >>"$out/warnings"
			# shellcheck disable=SC2206 # intended split of "--cap-drop ALL"
			bare=("${bare[0]}" $req "${bare[@]:1}") ;;
		esac
	done
	"${bare[@]}" || die "bare bwrap call failed: ${bare[*]}"
	printf '%q ' "${bare[@]}" >"$out/bwrap-argv.txt"; echo >>"$out/bwrap-argv.txt"

	local cell_cmd bwrap_cmd
	cell_cmd=$(printf '%q ' "$CELL" run --network none -- true)
	bwrap_cmd=$(printf '%q ' "${bare[@]}")
	say "hyperfine: cell vs bare bwrap ($WARMUP warmup, $RUNS runs each)"
	hyperfine "${hf_n[@]}" --style basic --warmup "$WARMUP" --runs "$RUNS" \
		--export-json "$out/fast.json" \
		-n cell "$cell_cmd" \
		-n bwrap "$bwrap_cmd" >&2

	# (c) srt
	if [ "$DO_SRT" -eq 0 ]; then echo "skipped (--no-srt)" >"$out/srt.skip"; return 0; fi
	if [ ! -x "$SRT" ]; then echo "srt is not installed" >"$out/srt.skip"; return 0; fi
	# No domain allowed (the proxy then refuses everything and never dials out), writes only
	# to the current directory, the home directory unreadable (cwd re-allowed in case it is
	# under home). No parent proxy: srt would forward allowed traffic to $HTTP(S)_PROXY.
	unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy NO_PROXY no_proxy
	cat >"$WORK/srt-settings.json" <<-'EOF'
		{
		  "network": { "allowedDomains": [], "deniedDomains": [] },
		  "filesystem": { "denyRead": ["~"], "allowRead": ["."], "allowWrite": ["."], "denyWrite": [] }
		}
	EOF
	local srt=("$SRT" --settings "$WORK/srt-settings.json") why=""
	HPROBE=$(mktemp -p "$HOME" .cell-bench-probe.XXXXXX 2>/dev/null) || HPROBE=""
	local hprobe=$HPROBE
	[ -z "$hprobe" ] || echo secret >"$hprobe"
	if ! "${srt[@]}" true >"$WORK/srt.log" 2>&1; then
		why="srt true failed: $(tail -n 3 "$WORK/srt.log" | tr '\n' ' ')"
	elif ! "${srt[@]}" -c 'echo x > srt-inside' >>"$WORK/srt.log" 2>&1 || [ ! -f srt-inside ]; then
		why="srt could not write to the current directory"
	elif "${srt[@]}" -c "echo x > '$outside/srt-probe'" >>"$WORK/srt.log" 2>&1 || [ -e "$outside/srt-probe" ]; then
		why="srt wrote OUTSIDE the current directory — it does not sandbox here"
	elif [ -n "$hprobe" ] && "${srt[@]}" -c "cat '$hprobe'" 2>/dev/null | grep -q secret; then
		why="srt could read the home directory despite denyRead"
	elif [ "$("${srt[@]}" -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort | tr "\n" " "' 2>/dev/null)" != "lo " ]; then
		why="srt sandbox sees network interfaces other than lo"
	fi
	rm -f srt-inside
	[ -z "$hprobe" ] || rm -f -- "$hprobe"
	HPROBE=""
	if [ -n "$why" ]; then echo "$why" >"$out/srt.skip"; return 0; fi
	"${srt[@]}" --version >"$out/srt.version" 2>/dev/null || true
	say "hyperfine: srt ($SRT_WARMUP warmup, $SRT_RUNS runs)"
	if ! hyperfine "${hf_n[@]}" --style basic --warmup "$SRT_WARMUP" --runs "$SRT_RUNS" \
		--export-json "$out/srt.json" -n srt "$(printf '%q ' "${srt[@]}" true)" >&2; then
		rm -f "$out/srt.json"
		echo "hyperfine run of srt failed" >"$out/srt.skip"
	fi
}

if [ "$PHASE" = measure ]; then
	measure "$OUT"
	exit 0
fi

# ------------------------------------------------------------------- main --
apt_install hyperfine bubblewrap jq >&2 || die "needs hyperfine, bubblewrap and jq"
require_cmds hyperfine bwrap jq

build_release
[ -x "$CELL" ] || die "no $CELL after the build"

SRT_WHY=""
if [ "$DO_SRT" -eq 1 ]; then SRT_WHY=$(install_srt) || true; fi

mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUTDIR=$(mktemp -d -t cell-bench-out.XXXXXX)
trap 'rm -rf -- "$OUTDIR"; cleanup' EXIT

RUNAS=$(id -un)
if [ -n "$AS_USER" ]; then
	[ "$(id -u)" -eq 0 ] || die "--user needs root"
	uhome=$(getent passwd "$AS_USER" | cut -d: -f6) || die "no such user: $AS_USER"
	[ "$(id -u "$AS_USER")" -ne 0 ] || die "--user wants an unprivileged user"
	runuser -u "$AS_USER" -- sh -c 'test -r "$1" && test -r "$2" && test -x "$3"' - "$HERE/jail.sh" "$HERE/lib.sh" "$CELL" ||
		die "user $AS_USER cannot read $HERE/jail.sh and $HERE/lib.sh or run $CELL; the checkout must be readable by it"
	chown "$AS_USER" "$OUTDIR"
	RUNAS=$AS_USER
	inner=(--phase-measure "$OUTDIR" --runs "$RUNS" --warmup "$WARMUP" --srt-runs "$SRT_RUNS" --srt-warmup "$SRT_WARMUP")
	[ "$DO_SRT" -eq 1 ] && [ -z "$SRT_WHY" ] || inner+=(--no-srt)
	# Measure from a directory the user can enter.
	(cd / && runuser -u "$AS_USER" -- env -i HOME="$uhome" USER="$AS_USER" LOGNAME="$AS_USER" \
		PATH="$PATH" LANG=C.UTF-8 bash "$HERE/jail.sh" "${inner[@]}")
else
	[ -z "$SRT_WHY" ] || DO_SRT=0
	(measure "$OUTDIR")
fi
[ -z "$SRT_WHY" ] || echo "$SRT_WHY" >"$OUTDIR/srt.skip"

# ----------------------------------------------------------------- report --
prefix=$RESULTS/jail-$STAMP
cp "$OUTDIR/fast.json" "$prefix-cell-bwrap.json"
[ ! -f "$OUTDIR/srt.json" ] || cp "$OUTDIR/srt.json" "$prefix-srt.json"
cp "$OUTDIR/bwrap-argv.txt" "$prefix-bwrap-argv.txt"

stat_ms() { # stat_ms FILE NAME FIELD
	jq -r --arg n "$2" --arg f "$3" '.results[] | select(.command == $n) | .[$f] * 1000' "$1"
}
SRTVER=$(cat "$OUTDIR/srt.version" 2>/dev/null || { [ -f "$SRT_PKG/package.json" ] && jq -r .version "$SRT_PKG/package.json"; } || echo "n/a")
REV=$(repo_rev)
{
	echo "cell jail benchmark  $STAMP  (repo $REV, sandboxed as $RUNAS)"
	machine_line
	echo "tools:   $(bwrap --version) | srt $SRTVER | $(hyperfine --version) | $("$CELL" --version)"
	echo
	printf '%-6s %6s %10s %10s %10s %10s\n' "" runs "median ms" "mean ms" "stddev ms" "min ms"
	row() { # row FILE NAME
		printf '%-6s %6s %10.2f %10.2f %10.2f %10.2f\n' "$2" \
			"$(jq -r --arg n "$2" '.results[] | select(.command == $n) | .times | length' "$1")" \
			"$(stat_ms "$1" "$2" median)" "$(stat_ms "$1" "$2" mean)" \
			"$(stat_ms "$1" "$2" stddev)" "$(stat_ms "$1" "$2" min)"
	}
	row "$OUTDIR/fast.json" cell
	row "$OUTDIR/fast.json" bwrap
	[ ! -f "$OUTDIR/srt.json" ] || row "$OUTDIR/srt.json" srt
	echo
	cm=$(stat_ms "$OUTDIR/fast.json" cell median)
	bm=$(stat_ms "$OUTDIR/fast.json" bwrap median)
	ov=$(echo "$cm $bm" | awk '{ printf "%.2f", $1 - $2 }')
	verdict=$(echo "$ov" | awk '{ print ($1 <= 5 ? "ok, target <= 5 ms" : "OVER the 5 ms target") }')
	echo "cell overhead over bare bwrap (median): $ov ms  ($verdict)"
	if [ -f "$OUTDIR/srt.json" ]; then
		sm=$(stat_ms "$OUTDIR/srt.json" srt median)
		echo "srt / cell (median): $(echo "$sm $cm" | awk '{ printf "%.1f", $1 / $2 }')x"
	fi
	echo "json: bench/results/$(basename "$prefix")-*.json"
} | tee "$prefix-summary.txt"
if [ -f "$OUTDIR/notes" ]; then
	sed 's/^/note: /' "$OUTDIR/notes" | tee -a "$prefix-summary.txt"
fi
if [ -f "$OUTDIR/warnings" ]; then
	while IFS= read -r w; do loud "$w"; done <"$OUTDIR/warnings" 2>&1 | tee -a "$prefix-summary.txt"
fi
if [ -f "$OUTDIR/srt.skip" ]; then
	loud "srt NOT measured: $(cat "$OUTDIR/srt.skip")" 2>&1 | tee -a "$prefix-summary.txt"
fi
