# bench/lib.sh — shell helpers shared by bench/{jail,net,hardening,agents}.sh.
# Sourced (after `set -euo pipefail` and the option parsing), never run:
#   . "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# Defines HERE (bench/), REPO, RESULTS, BIN (release binaries), CELL, ME (script name),
# WORK and PIDS (removed / killed on exit), and installs the EXIT/INT/TERM traps.
# Functions expect INSTALL (apt_install) from the sourcing script.

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$HERE/.." && pwd -P)
RESULTS=${CELL_BENCH_RESULTS:-$HERE/results}
# The release build as scripts/install makes it (statically linked where glibc allows).
# shellcheck source=scripts/release.sh
. "$REPO/scripts/release.sh"
BIN=${CELL_BIN_DIR:-$(release_dir "$REPO/rust")}
CELL=$BIN/cell
ME=$(basename -- "${BASH_SOURCE[1]:-$0}")

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$ME" "$*" >&2; exit 1; }
loud() { # to stderr
	local bar='!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
	printf '%s\n!!! %s\n%s\n' "$bar" "$*" "$bar" >&2
}

# ------------------------------------------------------------ cleanup --
# WORK: a scratch directory removed on exit; PIDS: background processes killed on exit.
# A script may define cleanup_hook for anything else; it runs first.
WORK="" PIDS=()
cleanup() {
	local p
	if declare -F cleanup_hook >/dev/null; then cleanup_hook; fi
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
	if [ -n "$WORK" ]; then rm -rf -- "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ install --
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)

apt_install() { # apt_install PKG...  (only the missing ones; honours INSTALL=0)
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$INSTALL" -eq 1 ] || { say "missing packages (and --no-install): ${missing[*]}"; return 1; }
	say "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	"${SUDO[@]}" apt-get install -y -q "${missing[@]}" >&2 ||
		{ "${SUDO[@]}" apt-get update -q >&2 && "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >&2; }
}

require_cmds() { # require_cmds CMD...  (die on the first one not on PATH)
	local t
	for t in "$@"; do command -v "$t" >/dev/null || die "$t not found"; done
}

build_release() { # builds rust/ --release into $BIN as scripts/install would (CARGO overrides cargo)
	CARGO=${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}
	[ -x "$CARGO" ] || die "cargo not found (set CARGO=)"
	[ -z "$release_static_reason" ] || loud "linking dynamically: $release_static_reason (as scripts/install would here)"
	[ -z "$release_cell_reason" ] || loud "the launcher and cell-init on glibc, not musl: $release_cell_reason (as scripts/install would here)"
	say "cargo build --release --target $release_target, cell for $release_cell_target (as scripts/install does)"
	release_build "$REPO/rust" "$CARGO" --quiet >&2 || die "cargo build --release failed"
	[ -z "${CELL_BIN_DIR:-}" ] || say "note: CELL_BIN_DIR is set: measuring $BIN, not this build"
}

# -------------------------------------------------------------- setup --
xdg_in() { # xdg_in DIR: cell's per-cell homes, runtime dirs and audit logs go under DIR
	mkdir -p "$1/run" "$1/state" "$1/data" "$1/config"
	chmod 0700 "$1/run"
	export XDG_RUNTIME_DIR=$1/run XDG_STATE_HOME=$1/state XDG_DATA_HOME=$1/data XDG_CONFIG_HOME=$1/config
}

git_worktree() { # git_worktree DIR: a clean git worktree with a short history (as a user's is)
	# No automatic gc or maintenance: nothing may write .git in the background meanwhile.
	local i g=(git -C "$1" -c user.name=bench -c user.email=bench@localhost -c gc.auto=0 -c maintenance.auto=false)
	mkdir -p "$1"
	"${g[@]}" init -q
	for i in 1 2 3; do
		echo "$i" >"$1/f$i"
		"${g[@]}" add -A
		"${g[@]}" commit -qm "c$i"
	done
}

unset_proxy_env() {
	unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy NO_PROXY no_proxy
}

hf_detect() { # sets hf_n: -N (no intermediate shell, hyperfine >= 1.13) where supported
	hf_n=()
	if hyperfine -N --runs 1 --style none true >/dev/null 2>&1; then hf_n=(-N); fi
}

# The bare bubblewrap call of a `cell plan --json` (no launcher, no cell-init):
# --ro-bind-data FD DST becomes --ro-bind FILE DST of a file (under DIR) holding the same
# bytes, --bind-data becomes --bind; --file (a plain write on bwrap's root, no mount) is left
# out, which only makes the bare call cheaper than cell's (a conservative baseline); the
# status/sync fds go, and the command is run
# directly (still --as-pid-1). seccomp filters travel as fds the launcher fills, so the bare
# call runs without them; BARE_SECCOMP_DROPPED says whether the plan had any.
bare_bwrap_argv() { # bare_bwrap_argv PLAN.json DIR -> sets BARE_ARGV, BARE_SECCOMP_DROPPED
	local planf=$1 dir=$2 a dst f k=0 i=1 n init
	local -a argv cmd
	mapfile -d '' -t argv < <(jq -j '.argv[] | (., "\u0000")' "$planf")
	init=$(jq -r '.tools.init // ""' "$planf")
	n=${#argv[@]}
	BARE_ARGV=("${argv[0]}") BARE_SECCOMP_DROPPED=0
	mkdir -p "$dir"
	while [ $i -lt "$n" ]; do
		a=${argv[i]}
		case "$a" in
		--json-status-fd | --info-fd | --block-fd | --sync-fd | --userns-block-fd)
			i=$((i + 2)) ;;
		--seccomp | --add-seccomp-fd)
			BARE_SECCOMP_DROPPED=1; i=$((i + 2)) ;;
		--perms)
			case "${argv[i + 2]:-}" in
			--ro-bind-data | --bind-data | --file) i=$((i + 2)) ;; # not meaningful for --ro-bind
			*) BARE_ARGV+=("$a" "${argv[i + 1]}"); i=$((i + 2)) ;;
			esac ;;
		--file)
			i=$((i + 3)) ;;
		--ro-bind-data | --bind-data)
			dst=${argv[i + 2]} k=$((k + 1)) f=$dir/$k-$(basename -- "$dst")
			# cell-init's spec (/run/cell/init.json) is written at launch, not in .files;
			# the bare call runs no cell-init, so an empty file keeps the mount only.
			jq -j --arg d "$dst" '[.files[] | select(.dst == $d)][0].contents
				// (if $d == "/run/cell/init.json" then "" else error("no file for \($d)") end)' \
				"$planf" >"$f"
			chmod 0444 "$f"
			if [ "$a" = --ro-bind-data ]; then BARE_ARGV+=(--ro-bind "$f" "$dst"); else BARE_ARGV+=(--bind "$f" "$dst"); fi
			i=$((i + 3)) ;;
		--ro-bind | --bind)
			if [ -n "$init" ] && [ "${argv[i + 1]}" = "$init" ]; then i=$((i + 3))
			elif [ "$a" = --bind ] && ! [ -e "${argv[i + 1]}" ]; then
				# A directory made at launch (a git worktree's private git directory, named
				# after the launcher's pid): the bare call binds an empty one there.
				k=$((k + 1)) f=$dir/$k-dir
				mkdir -p "$f"
				BARE_ARGV+=(--bind "$f" "${argv[i + 2]}"); i=$((i + 3))
			else
				BARE_ARGV+=("$a" "${argv[i + 1]}" "${argv[i + 2]}"); i=$((i + 3)); fi ;;
		--)
			mapfile -d '' -t cmd < <(jq -j '.command[] | (., "\u0000")' "$planf")
			BARE_ARGV+=(-- "${cmd[@]}"); break ;;
		*) BARE_ARGV+=("$a"); i=$((i + 1)) ;;
		esac
	done
}

# ------------------------------------------------------------- report --
repo_rev() { # short HEAD of the repo, +dirty when rust/ has uncommitted changes
	local rev rc=0
	# A run as another user (--user) is told the revision by the root part, which can read it.
	if [ -n "${CELL_BENCH_REV:-}" ]; then echo "$CELL_BENCH_REV"; return; fi
	# Read-only questions: a checkout another account owns is fine to ask (safe.directory).
	rev=$(git -c safe.directory='*' -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
	git -c safe.directory='*' -C "$REPO" diff --quiet HEAD -- rust 2>/dev/null || rc=$?
	# 1 is "differs"; anything else is git unable to tell, which is not a change.
	[ "$rc" -ne 1 ] || rev="$rev+dirty"
	echo "$rev"
}

# need_cell: dies, saying what to do, when there is no cell binary to measure.
need_cell() {
	[ ! -x "$CELL" ] || return 0
	if [ -z "${CELL_BIN_DIR:-}" ] && [ -z "${release_target:-}" ]; then
		die "no rustc on PATH, so the build directory (rust/target/release-<host triple>) is unknown; set CELL_BIN_DIR to the directory of the built binaries, or put rustc on PATH"
	fi
	die "no $CELL: build it (run without --no-build, or scripts/install), or set CELL_BIN_DIR to the directory of the built binaries"
}

# as_root_needs_user: as root, the cells of a benchmark would run as cell's runAs account
# (`cell`), which cannot use the root-owned temp worktrees; say how to measure instead.
as_root_needs_user() {
	[ "$(id -u)" -eq 0 ] && [ -z "${AS_USER:-}" ] || return 0
	die "as root, cell runs each cell as its runAs account (\`cell\`), which cannot use this script's root-owned temporary worktrees; measure as an unprivileged account with a home: $ME --user NAME (for example: useradd -m cellbench; $ME --user cellbench)"
}

machine_line() {
	echo "machine: $(nproc) cpu | $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1) | kernel $(uname -r) | loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
}

times_stat() { # times_stat FILE NAME FIELD: FIELD (n median mean min p10 p90) of NAME's times in FILE (hyperfine-style JSON), in ms
	jq -r --arg n "$2" --arg f "$3" '
		.results[] | select(.command == $n) | .times | sort | map(. * 1000) as $t | ($t | length) as $l |
		def q(p): $t[((($l - 1) * p) | floor)];
		if $f == "n" then $l
		elif $f == "median" then (if $l % 2 == 1 then $t[($l - 1) / 2] else ($t[$l / 2 - 1] + $t[$l / 2]) / 2 end)
		elif $f == "mean" then (($t | add) / $l)
		elif $f == "min" then $t[0]
		elif $f == "p10" then q(0.1)
		elif $f == "p90" then q(0.9)
		else error("field") end' "$1"
}
