#!/usr/bin/env bash
# bench/net.sh — cost of cell's network path (issue 3), side by side in one run:
#   1. bulk throughput from a local upstream: direct | cell (bridge + cell-egress, CONNECT
#      and plain http) | the "unsafe-cell design" (in-cell socat -> unix socket -> host
#      socat -> tinyproxy)
#   2. added latency of a new proxied connection (CONNECT and plain) vs direct
#   3. cell-egress RSS: idle and with 1,000 open tunnels
#   4. start-up of `cell run --network proxy` vs `--network none` vs bare bwrap (hyperfine)
# Only 127.0.0.1 is ever contacted. Results land in bench/results/. See bench/README.md.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/net.sh [options]

  --size-mib N      bulk transfer size per fetch, MiB            (default 1024)
  --bulk-runs N     fetches per bulk variant (median reported)   (default 5)
  --requests N      sequential connections per latency variant   (default 500)
  --tunnels N       open tunnels for the RSS probe               (default 1000)
  --startup-runs N  hyperfine runs per start-up variant          (default 100)
  --no-install      do not apt-get install anything; fail if missing
  --no-build        use the release binaries already in rust/target/release-<host triple> (what the build puts together)
  --user NAME       measure as unprivileged user NAME (as root this is needed: a root
                    launcher runs the cell as its runAs account, which cannot reach the
                    root-owned worktree, sockets and config here); installing and
                    building still happen as root
  -h, --help        this text

Environment: CARGO (cargo binary).
EOF
}

SIZE_MIB=1024 BULK_RUNS=5 REQUESTS=500 TUNNELS=1000 STARTUP_RUNS=100 INSTALL=1 BUILD=1 AS_USER=""
while [ $# -gt 0 ]; do
	case "$1" in
	--size-mib) SIZE_MIB=$2; shift 2 ;;
	--bulk-runs) BULK_RUNS=$2; shift 2 ;;
	--requests) REQUESTS=$2; shift 2 ;;
	--tunnels) TUNNELS=$2; shift 2 ;;
	--startup-runs) STARTUP_RUNS=$2; shift 2 ;;
	--no-install) INSTALL=0; shift ;;
	--no-build) BUILD=0; shift ;;
	--user) AS_USER=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "net.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done

# shellcheck source=bench/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
EGRESS=$BIN/cell-egress

# ------------------------------------------------------------ install --
if command -v dpkg-query >/dev/null; then
	apt_install hyperfine curl socat tinyproxy python3 jq bubblewrap || die "cannot install the tools"
fi
require_cmds hyperfine curl socat tinyproxy python3 jq bwrap awk

[ "$BUILD" -eq 0 ] || build_release
for b in cell cell-egress cell-init; do [ -x "$BIN/$b" ] || die "no $BIN/$b after the build"; done
if [ "$(id -u)" -eq 0 ]; then
	[ -n "$AS_USER" ] || die "as root, cell runs each cell as its runAs account; measure as a user: bench/net.sh --user NAME"
	uhome=$(getent passwd "$AS_USER" | cut -d: -f6) || die "no such user: $AS_USER"
	[ "$(id -u "$AS_USER")" -ne 0 ] || die "--user wants an unprivileged user"
	cd /
	exec runuser -u "$AS_USER" -- env -i HOME="$uhome" USER="$AS_USER" LOGNAME="$AS_USER" PATH="$PATH" LANG=C.UTF-8 \
		CELL_BIN_DIR="$BIN" bash "$HERE/net.sh" --no-install --no-build --size-mib "$SIZE_MIB" --bulk-runs "$BULK_RUNS" \
		--requests "$REQUESTS" --tunnels "$TUNNELS" --startup-runs "$STARTUP_RUNS"
fi

# -------------------------------------------------------------- setup --
WORK=$(mktemp -d -t cell-netbench.XXXXXX)
OUT=$WORK/out
WT=$WORK/wt          # worktree of every cell run (holds the probe script)
SOCKDIR=$WORK/sockd  # bound into the socat-chain cell at /sock
mkdir -p "$OUT" "$WT" "$SOCKDIR"
# Keep cell's per-cell homes, runtime dirs and audit logs inside $WORK, and use the
# built-in configuration (no user config).
xdg_in "$WORK"
unset_proxy_env
cp "$HERE/net_probe.py" "$WT/"
cd "$WT"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_file() { # wait_file PATH WHAT
	local i
	for i in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
	die "$2 did not come up"
}
wait_port() { # wait_port PORT WHAT
	local i
	for i in $(seq 200); do
		python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	die "$2 did not come up on 127.0.0.1:$1"
}

BYTES=$((SIZE_MIB * 1024 * 1024))
say "upstream: 64 MiB random blob served with sendfile on 127.0.0.1"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$WORK/blob"
python3 "$HERE/net_upstream.py" --port-file "$WORK/up.port" --blob "$WORK/blob" 2>"$WORK/upstream.log" &
PIDS+=($!)
wait_file "$WORK/up.port" "the upstream"
UP=$(cat "$WORK/up.port")
TARGET="up.test:$UP"

# cell config: one cell whose proxy allows only the upstream, with up.test pinned to it.
CONF=$WORK/cell.json
cat >"$CONF" <<EOF
{"schemaVersion":1,"cells":{"bench":{"network":{"mode":"proxy","allow":["$TARGET"],"hosts":{"up.test":"127.0.0.1"}}}}}
EOF
CELLP=("$CELL" --config "$CONF" run --cell bench --)

# The "unsafe-cell design": host tinyproxy <- host socat UNIX-LISTEN <- (bind) <- in-cell socat.
TP=$(free_port)
cat >"$WORK/tinyproxy.conf" <<EOF
Port $TP
Listen 127.0.0.1
Timeout 600
MaxClients 1024
Allow 127.0.0.1
ConnectPort $UP
LogLevel Error
PidFile "$WORK/tinyproxy.pid"
EOF
tinyproxy -d -c "$WORK/tinyproxy.conf" >"$WORK/tinyproxy.log" 2>&1 &
PIDS+=($!)
wait_port "$TP" tinyproxy
socat UNIX-LISTEN:"$SOCKDIR/tp.sock",fork TCP:127.0.0.1:"$TP" 2>"$WORK/socat-host.log" &
PIDS+=($!)
for i in $(seq 100); do [ -S "$SOCKDIR/tp.sock" ] && break; sleep 0.05; done
[ -S "$SOCKDIR/tp.sock" ] || die "host socat did not come up"
RELAY=8888 # in-cell socat port; 8888 = 0x22B8 in /proc/net/tcp
# In the --network none cell: start the relay, wait for its listener, then run "$@" (without
# the cell's NO_PROXY, which names 127.0.0.1: curl would bypass the relay for the upstream).
CHAIN_PRE='socat TCP-LISTEN:8888,bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:/sock/tp.sock & r=$!
for i in $(seq 200); do grep -q ":22B8 00000000:0000 0A" /proc/net/tcp && break; sleep 0.01; done
unset NO_PROXY no_proxy; "$@"; rc=$?; kill $r; exit $rc'
CHAIN=("$CELL" run --network none --bind "$SOCKDIR:/sock:rw" -- sh -c "$CHAIN_PRE" sh)

# Sanity: every path returns the upstream's bytes.
say "sanity checks"
[ "$(curl -sS --noproxy '*' "http://127.0.0.1:$UP/small")" = ok ] || die "direct fetch failed"
[ "$("${CELLP[@]}" curl -sS -x http://127.0.0.1:3128 --proxytunnel "http://$TARGET/small")" = ok ] ||
	die "cell CONNECT fetch failed"
[ "$("${CELLP[@]}" curl -sS -x http://127.0.0.1:3128 "http://$TARGET/small")" = ok ] || die "cell plain fetch failed"
[ "$("${CHAIN[@]}" curl -sS -x http://127.0.0.1:$RELAY --proxytunnel "http://127.0.0.1:$UP/small")" = ok ] ||
	die "socat-chain CONNECT fetch failed"
if "$CELL" run --network none -- curl -sS -m 3 --noproxy '*' "http://127.0.0.1:$UP/small" >/dev/null 2>&1; then
	die "a --network none cell reached the host's loopback — refusing to benchmark"
fi
# The proxy enforces its allowlist: the tinyproxy port is not on it.
if "${CELLP[@]}" curl -sS -m 3 -x http://127.0.0.1:3128 --proxytunnel "http://up.test:$TP/" >/dev/null 2>&1; then
	die "cell-egress let a tunnel through to a port off its allowlist"
fi

# ------------------------------------------------------- 1. bulk bytes --
FMT='%{http_code} %{size_download} %{speed_download}\n'
bulk_one() { # bulk_one NAME CMD... ; appends "NAME bytes_per_s" to bulk.tsv
	local name=$1 line code size speed
	shift
	line=$("$@" | tail -n 1) || die "bulk fetch $name failed"
	read -r code size speed <<<"$line"
	[ "$code" = 200 ] && [ "$size" = "$BYTES" ] || die "bulk fetch $name: got '$line', want 200 $BYTES"
	printf '%s\t%s\n' "$name" "$speed" >>"$OUT/bulk.tsv"
	printf '    %-14s %8.1f MB/s\n' "$name" "$(awk -v s="$speed" 'BEGIN { print s / 1e6 }')" >&2
}
say "1. bulk: $BULK_RUNS x $SIZE_MIB MiB per variant (rounds interleave the variants)"
: >"$OUT/bulk.tsv"
URL_UP=http://$TARGET/bytes/$BYTES
URL_LO=http://127.0.0.1:$UP/bytes/$BYTES
for r in $(seq "$BULK_RUNS"); do
	say "  round $r"
	bulk_one direct curl -sS -o /dev/null -w "$FMT" --noproxy '*' "$URL_LO"
	bulk_one cell-connect "${CELLP[@]}" curl -sS -o /dev/null -w "$FMT" -x http://127.0.0.1:3128 --proxytunnel "$URL_UP"
	bulk_one cell-plain "${CELLP[@]}" curl -sS -o /dev/null -w "$FMT" -x http://127.0.0.1:3128 "$URL_UP"
	bulk_one chain-connect "${CHAIN[@]}" curl -sS -o /dev/null -w "$FMT" -x http://127.0.0.1:$RELAY --proxytunnel "$URL_LO"
	bulk_one chain-plain "${CHAIN[@]}" curl -sS -o /dev/null -w "$FMT" -x http://127.0.0.1:$RELAY "$URL_LO"
done

# ------------------------------------------- 2. new-connection latency --
say "2. latency: $REQUESTS sequential connections per variant (GET /small, fresh connection each)"
LAT=(python3 net_probe.py latency -n "$REQUESTS" --warmup 20)
"${LAT[@]}" --target "127.0.0.1:$UP" >"$OUT/lat-direct.json" || die "direct latency probe failed"
"${CELLP[@]}" sh -c '"$@" --connect-proxy 127.0.0.1:3128 > lat-cell-connect.json &&
	"$@" --http-proxy 127.0.0.1:3128 > lat-cell-plain.json' sh "${LAT[@]}" --target "$TARGET" ||
	die "in-cell latency probe failed"
"${CHAIN[@]}" sh -c '"$@" --connect-proxy 127.0.0.1:8888 > lat-chain-connect.json' sh \
	"${LAT[@]}" --target "127.0.0.1:$UP" || die "socat-chain latency probe failed"
mv lat-cell-connect.json lat-cell-plain.json lat-chain-connect.json "$OUT/"

# ------------------------------------------------------ 3. egress RSS --
say "3. cell-egress RSS: standalone, idle and with $TUNNELS open tunnels"
need=$((4 * TUNNELS + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
	ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
mkdir -p "$WORK/rss"
python3 "$HERE/net_probe.py" rss --egress "$EGRESS" --tunnels "$TUNNELS" --work "$WORK/rss" >"$OUT/rss.json" ||
	die "RSS probe failed"
# Cross-check: the idle RSS of the cell-egress the launcher starts (found via egress.pid).
"${CELLP[@]}" sleep 3 &
LPID=$!
PIDS+=("$LPID")
LAUNCH_RSS=""
for i in $(seq 100); do
	pf=$(find "$XDG_RUNTIME_DIR/cell" -maxdepth 2 -name egress.pid -path "*/bench-$LPID/*" 2>/dev/null | head -n 1)
	[ -n "$pf" ] && [ -s "$pf" ] && break
	sleep 0.02
done
if [ -n "${pf:-}" ] && [ -s "$pf" ]; then
	sleep 1
	LAUNCH_RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/$(cat "$pf")/status" 2>/dev/null || true)
fi
wait "$LPID" || true
keep=()
for p in "${PIDS[@]}"; do [ "$p" = "$LPID" ] || keep+=("$p"); done
PIDS=("${keep[@]}")

# --------------------------------------------------------- 4. start-up --
say "4. start-up: hyperfine, $STARTUP_RUNS runs each"
# Bare bwrap: the argv of `cell plan --network none`, with the --ro-bind-data files as
# ordinary --ro-bind of temp files, no status fd, and `true` run directly (no cell-init).
# Same derivation as bench/jail.sh (bare_bwrap_argv in bench/lib.sh).
"$CELL" plan --json --network none -- true >"$WORK/plan.json"
bare_bwrap_argv "$WORK/plan.json" "$WORK/etc"
bare=("${BARE_ARGV[@]}") BWRAP_NOTE=""
[ "$BARE_SECCOMP_DROPPED" -eq 0 ] || BWRAP_NOTE=" ran without cell's seccomp filters (the plan passes them as fds)"
printf '%q ' "${bare[@]}" >"$OUT/bwrap-argv.txt"; echo >>"$OUT/bwrap-argv.txt"
HF_BWRAP=(-n bwrap "$(printf '%q ' "${bare[@]}")")
if ! "${bare[@]}" 2>"$WORK/bwrap.err"; then
	say "bare bwrap call failed ($(head -n 1 "$WORK/bwrap.err")); not timed"
	BWRAP_NOTE=" FAILED, not timed: $(head -n 1 "$WORK/bwrap.err")" HF_BWRAP=()
fi
"$CELL" run --network proxy --allow up.test -- true || die "cell run --network proxy failed"
hf_detect
hyperfine "${hf_n[@]}" --style basic --warmup 10 --runs "$STARTUP_RUNS" --export-json "$OUT/startup.json" \
	-n proxy "$(printf '%q ' "$CELL" run --network proxy --allow up.test -- true)" \
	-n none "$(printf '%q ' "$CELL" run --network none -- true)" \
	"${HF_BWRAP[@]}" >&2

# ------------------------------------------------------------- report --
mkdir -p "$RESULTS" 2>/dev/null || true
if [ ! -w "$RESULTS" ]; then RESULTS=$HOME/cell-bench-results; mkdir -p "$RESULTS"; say "bench/results is not writable; results go to $RESULTS"; fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
prefix=$RESULTS/net-$STAMP
for f in "$OUT"/*; do cp "$f" "$prefix-$(basename "$f")"; done
# Append "launcherIdleKib" to the RSS record.
jq --arg l "$LAUNCH_RSS" '. + {launcher_idle_kib: ($l | if . == "" then null else tonumber end)}' \
	"$OUT/rss.json" >"$prefix-rss.json"

med_mbs() { # median MB/s of a bulk variant
	awk -F'\t' -v n="$1" '$1 == n { print $2 / 1e6 }' "$OUT/bulk.tsv" | sort -g |
		awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
range_mbs() { awk -F'\t' -v n="$1" '$1 == n { print $2 / 1e6 }' "$OUT/bulk.tsv" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo, hi }'; }
lat() { jq -r ".$2" "$OUT/lat-$1.json"; }
hf() { jq -r --arg n "$1" --arg f "$2" '.results[] | select(.command == $n) | .[$f] * 1000' "$OUT/startup.json"; }
verdict() { # verdict VALUE OP TARGET  -> "ok" or "MISSED"
	awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? (v <= t) : (v >= t); print ok ? "ok" : "MISSED" }'
}

D=$(med_mbs direct) CC=$(med_mbs cell-connect) CP=$(med_mbs cell-plain)
SC=$(med_mbs chain-connect) SP=$(med_mbs chain-plain)
R_DIRECT=$(awk -v a="$CC" -v b="$D" 'BEGIN { printf "%.0f", 100 * a / b }')
R_DIRECT_P=$(awk -v a="$CP" -v b="$D" 'BEGIN { printf "%.0f", 100 * a / b }')
R_CHAIN=$(awk -v a="$CC" -v b="$SC" 'BEGIN { printf "%.2f", a / b }')
R_CHAIN_P=$(awk -v a="$CP" -v b="$SP" 'BEGIN { printf "%.2f", a / b }')
LD=$(lat direct median_ms) LC=$(lat cell-connect median_ms) LP=$(lat cell-plain median_ms) LS=$(lat chain-connect median_ms)
ADD_C=$(awk -v a="$LC" -v b="$LD" 'BEGIN { printf "%.3f", a - b }')
ADD_P=$(awk -v a="$LP" -v b="$LD" 'BEGIN { printf "%.3f", a - b }')
ADD_S=$(awk -v a="$LS" -v b="$LD" 'BEGIN { printf "%.3f", a - b }')
IDLE=$(jq -r .idle_kib "$OUT/rss.json") BUSY=$(jq -r .busy_kib "$OUT/rss.json") AFTER=$(jq -r .after_close_kib "$OUT/rss.json")
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
SPX=$(hf proxy median) SNO=$(hf none median) SBW=$(hf bwrap median 2>/dev/null || true)
REV=$(repo_rev)
{
	echo "cell network benchmark  $STAMP  (repo $REV, run as $(id -un))"
	machine_line
	echo "tools:   $(curl --version | head -n1 | cut -d' ' -f1-2) | $(socat -V 2>/dev/null | sed -n 's/^socat version \([^ ]*\).*/socat \1/p') | $(tinyproxy -v 2>&1 | head -n1) | $(hyperfine --version) | $(python3 --version)"
	echo
	echo "1. bulk: $BULK_RUNS x $SIZE_MIB MiB from a sendfile upstream on 127.0.0.1, curl -o /dev/null (MB = 10^6 bytes)"
	printf '   %-44s %10s %12s\n' "" "median MB/s" "range"
	printf '   %-44s %10.0f %12s\n' "direct (host curl, no proxy)" "$D" "$(range_mbs direct)"
	printf '   %-44s %10.0f %12s\n' "cell: bridge + cell-egress, CONNECT" "$CC" "$(range_mbs cell-connect)"
	printf '   %-44s %10.0f %12s\n' "cell: bridge + cell-egress, plain http" "$CP" "$(range_mbs cell-plain)"
	printf '   %-44s %10.0f %12s\n' "socat chain + tinyproxy, CONNECT" "$SC" "$(range_mbs chain-connect)"
	printf '   %-44s %10.0f %12s\n' "socat chain + tinyproxy, plain http" "$SP" "$(range_mbs chain-plain)"
	echo "   cell/direct        CONNECT $R_DIRECT%  plain $R_DIRECT_P%   ($(verdict "$R_DIRECT" '>=' 50), target >= 50%)"
	echo "   cell/socat-chain   CONNECT ${R_CHAIN}x  plain ${R_CHAIN_P}x   ($(verdict "$R_CHAIN" '>=' 2), target >= 2x)"
	echo
	echo "2. new connection: $REQUESTS sequential connect + GET /small + response, python client (ms)"
	printf '   %-44s %8s %8s %8s %8s %9s\n' "" median p10 p90 mean added
	for v in direct cell-connect cell-plain chain-connect; do
		case $v in
		direct) label="direct (host)"; add="-" ;;
		cell-connect) label="cell CONNECT via 127.0.0.1:3128"; add=$ADD_C ;;
		cell-plain) label="cell plain http via 127.0.0.1:3128"; add=$ADD_P ;;
		chain-connect) label="socat chain + tinyproxy CONNECT"; add=$ADD_S ;;
		esac
		printf '   %-44s %8.3f %8.3f %8.3f %8.3f %9s\n' "$label" "$(lat "$v" median_ms)" "$(lat "$v" p10_ms)" \
			"$(lat "$v" p90_ms)" "$(lat "$v" mean_ms)" "$add"
	done
	echo "   added per connection (median, CONNECT): $ADD_C ms   ($(verdict "$ADD_C" '<=' 0.5), target <= 0.5 ms)"
	echo
	echo "3. cell-egress RSS (VmRSS, standalone, maxTunnels $((2 * TUNNELS)))"
	printf '   %-30s %6s MB   (%s, target <= 10 MB)\n' "idle:" "$(mb "$IDLE")" "$(verdict "$(mb "$IDLE")" '<=' 10)"
	printf '   %-30s %6s MB   (%s, target <= 64 MB)\n' "with $TUNNELS open tunnels:" "$(mb "$BUSY")" "$(verdict "$(mb "$BUSY")" '<=' 64)"
	printf '   %-30s %6s MB\n' "after closing them:" "$(mb "$AFTER")"
	if [ -n "$LAUNCH_RSS" ]; then printf '   %-30s %6s MB\n' "idle, started by cell run:" "$(mb "$LAUNCH_RSS")"; fi
	echo
	echo "4. start-up of a cell running true (hyperfine, $STARTUP_RUNS runs)"
	printf '   %-52s %10s %10s %10s\n' "" "median ms" "mean ms" "min ms"
	printf '   %-52s %10.2f %10.2f %10.2f\n' "cell run --network proxy --allow up.test -- true" "$SPX" "$(hf proxy mean)" "$(hf proxy min)"
	printf '   %-52s %10.2f %10.2f %10.2f\n' "cell run --network none -- true" "$SNO" "$(hf none mean)" "$(hf none min)"
	if [ ${#HF_BWRAP[@]} -gt 0 ]; then
		printf '   %-52s %10.2f %10.2f %10.2f\n' "bare bwrap (same sandbox, no launcher)" "$SBW" "$(hf bwrap mean)" "$(hf bwrap min)"
	fi
	[ -z "$BWRAP_NOTE" ] || echo "   note: bare bwrap$BWRAP_NOTE"
	echo "   proxy start-up: $(printf '%.2f' "$SPX") ms   ($(verdict "$SPX" '<=' 25), target <= 25 ms); the proxy adds $(awk -v a="$SPX" -v b="$SNO" 'BEGIN { printf "%.2f", a - b }') ms over --network none"
	echo
	echo "files: bench/results/$(basename "$prefix")-*"
} | tee "$prefix-summary.txt"
