#!/usr/bin/env bash
# bench/jail.sh — start-up cost of a sandbox around `true`, side by side:
#   (a) cell   `cell run --network none -- true` (release build of this repo)
#   (b) bwrap  the equivalent bare bubblewrap call (derived from `cell plan --json`)
#   (c) srt    Anthropic's sandbox-runtime (npm @anthropic-ai/sandbox-runtime)
#   (d) codex  OpenAI Codex's `codex sandbox` (workspace-write), when `codex` is on PATH
# The variants run interleaved (bench/interleave.py: A B, B A, ...), each in its own fresh
# worktree; JSON lands in bench/results/. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/jail.sh [options]

  --runs N          runs for cell and bare bwrap        (default 200)
  --warmup N        warmup runs for cell and bare bwrap (default 20)
  --srt-runs N      runs of the peers (srt, codex), interleaved with cell (default 30)
  --srt-warmup N    warmup runs for the peers           (default 3)
  --no-srt          skip srt
  --no-codex        skip codex sandbox
  --user NAME       run the sandboxes as unprivileged user NAME (needs root;
                    installing and building still happen as root)
  --no-install      do not apt-get/npm install anything; fail if missing
  --no-build        use the release binaries already built (CELL_BIN_DIR, else rust/target/release-<host triple> (what the build puts together))
  -h, --help        this text

Environment: SRT_VERSION (npm version spec, default: latest), CARGO, CELL_BIN_DIR
(the directory of the cell binaries to measure, e.g. an older build).
EOF
}

RUNS=200 WARMUP=20 SRT_RUNS=30 SRT_WARMUP=3 DO_SRT=1 DO_CODEX=1 AS_USER="" INSTALL=1 BUILD=1
PHASE=main OUT=""
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--srt-runs) SRT_RUNS=$2; shift 2 ;;
	--srt-warmup) SRT_WARMUP=$2; shift 2 ;;
	--no-srt) DO_SRT=0; shift ;;
	--no-codex) DO_CODEX=0; shift ;;
	--user) AS_USER=$2; shift 2 ;;
	--no-install) INSTALL=0; shift ;;
	--no-build) BUILD=0; shift ;;
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
cleanup_hook() { if [ -n "$HPROBE" ]; then rm -f -- "$HPROBE" "$HPROBE.w"; fi; }

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
# Runs as the measuring user; writes fast.json (cell, bwrap), peers.json (cell and the peers
# that passed their checks), *.skip, bwrap-argv.txt, notes and warnings to $1. Each variant
# runs in its own fresh worktree, so what one leaves behind (bwrap's placeholder mount
# points, probe files) cannot change another's plan.
measure() {
	local out=$1
	trap cleanup EXIT
	WORK=$(mktemp -d -t cell-bench.XXXXXX)
	local outside=$WORK/outside v
	for v in cell bwrap late srt codex; do git_worktree "$WORK/wt-$v"; done
	mkdir -p "$outside" "$WORK/etc"
	# Cell homes, runtime dirs and logs start fresh under $WORK.
	xdg_in "$WORK/xdg"

	# (a) cell: sanity first (also creates cell's per-cell home on a first run).
	cd "$WORK/wt-cell"
	"$CELL" run --network none -- true || die "cell run --network none -- true failed"
	if "$CELL" run --network none -- sh -c "echo x > '$outside/cell-probe'" 2>/dev/null ||
		[ -e "$outside/cell-probe" ]; then
		die "cell could write outside its worktree — refusing to benchmark"
	fi
	"$CELL" run --network none -- sh -c 'echo x > cell-inside' && [ -f cell-inside ] ||
		die "cell could not write inside its worktree"
	rm -f cell-inside

	# (b) bare bwrap: the argv of `cell plan` for its own worktree, minus the fd-based options
	# and cell-init (bare_bwrap_argv in bench/lib.sh).
	local wt=$WORK/wt-bwrap
	cd "$wt"
	"$CELL" plan --json --network none -- true >"$WORK/plan.json" 2>/dev/null ||
		"$CELL" plan --json -- true >"$WORK/plan.json" || die "cell plan --json failed"
	bare_bwrap_argv "$WORK/plan.json" "$WORK/etc"
	local -a bare=("${BARE_ARGV[@]}")
	if [ "$BARE_SECCOMP_DROPPED" -eq 1 ]; then
		# No fresh copy of the filter fds for every run (bench/hardening.sh measures what they
		# cost inside cell).
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
	local -a peers=()

	# (c) srt
	unset_proxy_env
	if [ "$DO_SRT" -eq 0 ]; then echo "skipped (--no-srt)" >"$out/srt.skip"
	elif [ ! -x "$SRT" ]; then echo "srt is not installed" >"$out/srt.skip"
	else
		cd "$WORK/wt-srt"
		# No domain allowed (the proxy then refuses everything and never dials out), writes
		# only to the current directory, the home directory unreadable (cwd re-allowed in case
		# it is under home). No parent proxy: srt would forward allowed traffic to $HTTP(S)_PROXY.
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
		if [ -n "$why" ]; then echo "$why" >"$out/srt.skip"; else
			"${srt[@]}" --version >"$out/srt.version" 2>/dev/null || true
			peers+=(--cwd "srt=$WORK/wt-srt" "srt=$(printf '%q ' "${srt[@]}" true)")
		fi
	fi

	# (d) codex sandbox, workspace-write: the closest Codex policy to cell's. Weaker than
	# cell's by design, and checked to be so (the summary says it): it binds / read-only, so
	# $HOME is readable, and /tmp stays writable (the host's /tmp).
	if [ "$DO_CODEX" -eq 0 ]; then echo "skipped (--no-codex)" >"$out/codex.skip"
	elif ! command -v codex >/dev/null; then echo "codex is not on PATH" >"$out/codex.skip"
	else
		cd "$WORK/wt-codex"
		local codex=(codex sandbox -c 'sandbox_mode="workspace-write"' --) why="" weaker=""
		HPROBE=$(mktemp -p "$HOME" .cell-bench-probe.XXXXXX 2>/dev/null) || HPROBE=""
		local hprobe=$HPROBE tprobe=/tmp/cell-bench-codex-probe.$$
		[ -z "$hprobe" ] || echo secret >"$hprobe"
		if ! "${codex[@]}" true >"$WORK/codex.log" 2>&1; then
			why="codex sandbox true failed: $(tail -n 3 "$WORK/codex.log" | tr '\n' ' ')"
		elif ! "${codex[@]}" sh -c 'echo x > codex-inside' >>"$WORK/codex.log" 2>&1 || [ ! -f codex-inside ]; then
			why="codex sandbox could not write to the current directory"
		elif [ -n "$hprobe" ] && { "${codex[@]}" sh -c "echo x > '$hprobe.w'" >>"$WORK/codex.log" 2>&1 || [ -e "$hprobe.w" ]; }; then
			why="codex sandbox wrote OUTSIDE the current directory (in \$HOME)"
		elif [ "$("${codex[@]}" sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort | tr "\n" " "' 2>/dev/null)" != "lo " ]; then
			why="codex sandbox sees network interfaces other than lo"
		fi
		if [ -z "$why" ]; then
			if [ -n "$hprobe" ] && "${codex[@]}" cat "$hprobe" 2>/dev/null | grep -q secret; then weaker="\$HOME readable"; fi
			if "${codex[@]}" sh -c "echo x > '$tprobe'" 2>/dev/null && [ -e "$tprobe" ]; then weaker="${weaker:+$weaker, }/tmp writable (the host's)"; fi
			[ -z "$weaker" ] || echo "codex sandbox (workspace-write) is weaker than cell here: $weaker" >>"$out/notes"
		fi
		rm -f codex-inside "$tprobe"
		[ -z "$hprobe" ] || rm -f -- "$hprobe" "$hprobe.w"
		HPROBE=""
		if [ -n "$why" ]; then echo "$why" >"$out/codex.skip"; else
			codex --version >"$out/codex.version" 2>/dev/null || true
			peers+=(--cwd "codex=$WORK/wt-codex" "codex=$(printf '%q ' "${codex[@]}" true)")
		fi
	fi

	# The start-up of one C-library program on this machine: a static glibc program whose
	# main returns at once against one without a C library (its entry point exits). cell runs
	# two programs more than the bare call (the launcher and cell-init; musl builds where
	# scripts/release.sh could make them, which is why they are), and glibc's
	# start-up asks the processor about its caches with cpuid, which a virtual machine answers
	# slowly (nested virtualisation: microseconds each).
	local libc_cmds=()
	if command -v cc >/dev/null; then
		printf 'int main(void) { return 0; }\n' >"$WORK/glibc.c"
		printf 'void _start(void) { __asm__ volatile("mov $60, %%eax; xor %%edi, %%edi; syscall"); }\n' >"$WORK/nolibc.c"
		if cc -O2 -static -o "$WORK/glibc" "$WORK/glibc.c" 2>>"$WORK/cc.log" &&
			cc -O2 -static -nostdlib -o "$WORK/nolibc" "$WORK/nolibc.c" 2>>"$WORK/cc.log" &&
			[ "$(uname -m)" = x86_64 ]; then
			libc_cmds=("glibc=$WORK/glibc" "nolibc=$WORK/nolibc")
		else
			echo "the C library's start-up was not measured: the probes did not build (x86_64 and a static libc needed)" >>"$out/warnings"
		fi
	else
		echo "the C library's start-up was not measured: no C compiler (cc)" >>"$out/warnings"
	fi

	# Interleaved: cell and bare bwrap, then cell with the (slower) peers.
	cd /
	if [ ${#libc_cmds[@]} -gt 0 ]; then
		say "interleaved: a static glibc program and one without a C library ($RUNS runs each)"
		python3 "$HERE/interleave.py" --runs "$RUNS" --warmup "$WARMUP" --json "$out/libc.json" "${libc_cmds[@]}" >&2 ||
			{ rm -f "$out/libc.json"; echo "interleaved run of the libc probes failed" >>"$out/warnings"; }
	fi
	say "interleaved: cell, bare bwrap ($WARMUP warmup, $RUNS runs each)"
	# cell-late: the same launch with bubblewrap started once the plan is made
	# (CELL_EARLY_BWRAP=0), in a worktree of its own, to show what the early start spares.
	python3 "$HERE/interleave.py" --runs "$RUNS" --warmup "$WARMUP" --json "$out/fast.json" \
		--cwd "cell=$WORK/wt-cell" --cwd "bwrap=$WORK/wt-bwrap" --cwd "cell-late=$WORK/wt-late" \
		--env "cell-late=CELL_EARLY_BWRAP=0" \
		"cell=$cell_cmd" "bwrap=$bwrap_cmd" "cell-late=$cell_cmd" >&2 || die "interleaved run of cell and bwrap failed"
	if [ ${#peers[@]} -gt 0 ]; then
		say "interleaved: cell and its peers ($SRT_WARMUP warmup, $SRT_RUNS runs each)"
		python3 "$HERE/interleave.py" --runs "$SRT_RUNS" --warmup "$SRT_WARMUP" --json "$out/peers.json" \
			--cwd "cell=$WORK/wt-cell" "cell=$cell_cmd" "${peers[@]}" >&2 ||
			{ rm -f "$out/peers.json"; echo "interleaved run of the peers failed" >>"$out/warnings"; }
	fi
}

if [ "$PHASE" = measure ]; then
	measure "$OUT"
	exit 0
fi

# ------------------------------------------------------------------- main --
as_root_needs_user
apt_install bubblewrap jq python3 >&2 || die "needs bubblewrap, jq and python3"
require_cmds bwrap jq python3

[ "$BUILD" -eq 0 ] || build_release
need_cell

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
	runuser -u "$AS_USER" -- sh -c 'test -r "$1" && test -r "$2" && test -r "$3" && test -x "$4"' - "$HERE/jail.sh" "$HERE/lib.sh" "$HERE/interleave.py" "$CELL" ||
		die "user $AS_USER cannot read $HERE/jail.sh and $HERE/lib.sh or run $CELL; the checkout must be readable by it"
	chown "$AS_USER" "$OUTDIR"
	RUNAS=$AS_USER
	inner=(--phase-measure "$OUTDIR" --runs "$RUNS" --warmup "$WARMUP" --srt-runs "$SRT_RUNS" --srt-warmup "$SRT_WARMUP")
	[ "$DO_SRT" -eq 1 ] && [ -z "$SRT_WHY" ] || inner+=(--no-srt)
	[ "$DO_CODEX" -eq 1 ] || inner+=(--no-codex)
	# Measure from a directory the user can enter.
	(cd / && runuser -u "$AS_USER" -- env -i HOME="$uhome" USER="$AS_USER" LOGNAME="$AS_USER" \
		PATH="$PATH" LANG=C.UTF-8 CELL_BIN_DIR="$BIN" bash "$HERE/jail.sh" "${inner[@]}")
else
	[ -z "$SRT_WHY" ] || DO_SRT=0
	(measure "$OUTDIR")
fi
[ -z "$SRT_WHY" ] || echo "$SRT_WHY" >"$OUTDIR/srt.skip"

# ----------------------------------------------------------------- report --
prefix=$RESULTS/jail-$STAMP
cp "$OUTDIR/fast.json" "$prefix-cell-bwrap.json"
[ ! -f "$OUTDIR/peers.json" ] || cp "$OUTDIR/peers.json" "$prefix-peers.json"
[ ! -f "$OUTDIR/libc.json" ] || cp "$OUTDIR/libc.json" "$prefix-libc.json"
cp "$OUTDIR/bwrap-argv.txt" "$prefix-bwrap-argv.txt"

stat_ms() { times_stat "$@"; } # stat_ms FILE NAME FIELD (bench/lib.sh)
has() { [ -f "$1" ] && jq -e --arg n "$2" 'any(.results[]; .command == $n)' "$1" >/dev/null; }
load() { jq -r --arg k "$2" '.[$k] | map(. * 100 | round / 100) | map(tostring) | join(" ")' "$1"; }
SRTVER=$(cat "$OUTDIR/srt.version" 2>/dev/null || { [ -f "$SRT_PKG/package.json" ] && jq -r .version "$SRT_PKG/package.json"; } || echo "n/a")
CODEXVER=$(cat "$OUTDIR/codex.version" 2>/dev/null || echo "n/a")
REV=$(repo_rev)
F=$OUTDIR/fast.json P=$OUTDIR/peers.json L=$OUTDIR/libc.json
{
	echo "cell jail benchmark  $STAMP  (repo $REV, sandboxed as $RUNAS)"
	machine_line
	echo "tools:   $(bwrap --version) | srt $SRTVER | codex $CODEXVER | $("$CELL" --version)"
	echo "variants interleaved (bench/interleave.py), each in its own fresh worktree"
	echo
	printf '%-9s %-14s %5s %10s %8s %8s %8s %8s\n' "" "session" runs "median ms" mean p10 p90 min
	row() { # row FILE NAME SESSION
		printf '%-9s %-14s %5s %10.2f %8.2f %8.2f %8.2f %8.2f\n' "$2" "$3" "$(stat_ms "$1" "$2" n)" \
			"$(stat_ms "$1" "$2" median)" "$(stat_ms "$1" "$2" mean)" "$(stat_ms "$1" "$2" p10)" \
			"$(stat_ms "$1" "$2" p90)" "$(stat_ms "$1" "$2" min)"
	}
	row "$F" cell "cell+bwrap"
	row "$F" bwrap "cell+bwrap"
	! has "$F" cell-late || row "$F" cell-late "cell+bwrap"
	if [ -f "$P" ]; then
		row "$P" cell "cell+peers"
		! has "$P" srt || row "$P" srt "cell+peers"
		! has "$P" codex || row "$P" codex "cell+peers"
	fi
	echo
	echo "load average (1 5 15 min): cell+bwrap $(load "$F" load_before) before, $(load "$F" load_after) after"
	[ ! -f "$P" ] || echo "load average (1 5 15 min): cell+peers $(load "$P" load_before) before, $(load "$P" load_after) after"
	cm=$(stat_ms "$F" cell median)
	bm=$(stat_ms "$F" bwrap median)
	ov=$(echo "$cm $bm" | awk '{ printf "%.2f", $1 - $2 }')
	verdict=$(echo "$ov" | awk '{ print ($1 <= 3 ? "ok, target <= 3 ms" : "OVER the 3 ms target") }')
	echo "cell overhead over bare bwrap (median): $ov ms  ($verdict)"
	echo "cell / bwrap (median): $(echo "$cm $bm" | awk '{ printf "%.2f", $1 / $2 }')x"
	if has "$F" cell-late; then
		echo "bubblewrap started before the plan (cell) vs once it is made (cell-late, CELL_EARLY_BWRAP=0):" \
			"$(echo "$cm $(stat_ms "$F" cell-late median)" | awk '{ printf "%+.2f", $1 - $2 }') ms"
	fi
	if [ -f "$L" ]; then
		lc=$(echo "$(stat_ms "$L" glibc median) $(stat_ms "$L" nolibc median)" | awk '{ printf "%.2f", $1 - $2 }')
		# Which of cell's two programs are glibc builds (scripts/release.sh builds them for
		# musl where it can): a static glibc program carries glibc's name.
		n=0
		for b in "$CELL" "$BIN/cell-init"; do
			if LC_ALL=C grep -q 'GNU C Library' "$b" 2>/dev/null; then n=$((n + 1)); fi
		done
		echo "glibc start-up of one program here (median, static glibc minus no libc): $lc ms;" \
			"$n of cell's two programs (the launcher, cell-init) are glibc builds: $(echo "$lc $n" | awk '{ printf "%.2f", $2 * $1 }') ms of the overhead"
	fi
	if [ -f "$P" ]; then
		pc=$(stat_ms "$P" cell median)
		for n in srt codex; do
			! has "$P" "$n" || echo "$n / cell (median, same session): $(echo "$(stat_ms "$P" "$n" median) $pc" | awk '{ printf "%.1f", $1 / $2 }')x"
		done
	fi
	echo "files: $prefix-* (summary.txt: this table)"
} | tee "$prefix-summary.txt"
if [ -f "$OUTDIR/notes" ]; then
	sed 's/^/note: /' "$OUTDIR/notes" | tee -a "$prefix-summary.txt"
fi
if [ -f "$OUTDIR/warnings" ]; then
	while IFS= read -r w; do loud "$w"; done <"$OUTDIR/warnings" 2>&1 | tee -a "$prefix-summary.txt"
fi
for n in srt codex; do
	if [ -f "$OUTDIR/$n.skip" ]; then
		loud "$n NOT measured: $(cat "$OUTDIR/$n.skip")" 2>&1 | tee -a "$prefix-summary.txt"
	fi
done
