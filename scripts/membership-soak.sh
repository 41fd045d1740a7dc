#!/usr/bin/env bash
# membership-soak.sh — false positives of the failure detector under load.
#
# Runs N membernode processes (default 16) for DURATION seconds (default 600) in a
# private network namespace (multicast on its own loopback, nothing leaves the
# host), with one CPU core kept busy by a spinning shell, then counts the Failed
# and Suspected events (no node is killed, so every Failed is a false positive)
# and the heartbeat bytes each node sent per second.
#
#   sudo scripts/membership-soak.sh [N] [DURATION] [OUTDIR]
#
# Exits 0 with "skipped: ..." when not root or without unshare.
set -euo pipefail

N=${1:-16}
DURATION=${2:-600}
OUT=${3:-$(mktemp -d /tmp/membership-soak.XXXXXX)}

if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null 2>&1; then
	echo "skipped: needs root and unshare (run as root to measure false positives)"
	exit 0
fi
if [ "${INSIDE_NETNS:-}" != 1 ]; then
	here=$(cd "$(dirname "$0")/.." && pwd)
	mkdir -p "$OUT"
	(cd "$here" && go build -o "$OUT/membernode" ./membership/internal/cmd/membernode)
	exec timeout -s KILL $((DURATION + 120)) unshare -n env INSIDE_NETNS=1 MEMBERNODE="$OUT/membernode" bash "$0" "$N" "$DURATION" "$OUT"
fi

# Inside the private namespace from here on.
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo

pids=()
# TERM first: GNU timeout passes it on to the node it runs; KILL what is left.
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# One core kept busy by a pure-builtin spin that ends by itself, even orphaned.
bash -c "while [ \$SECONDS -lt $((DURATION + 5)) ]; do :; done" &
pids+=($!)
start=$(date +%s)
for i in $(seq 1 "$N"); do
	timeout -k 5 $((DURATION + 30)) "$MEMBERNODE" -name "n$i" -duration "${DURATION}s" >"$OUT/n$i.log" 2>&1 &
	pids+=($!)
done
for p in "${pids[@]:1}"; do wait "$p" || true; done
end=$(date +%s)

failed=$(cat "$OUT"/n*.log | awk '$4 == "Failed"' | wc -l)
suspected=$(cat "$OUT"/n*.log | awk '$4 == "Suspected"' | wc -l)
joined=$(cat "$OUT"/n*.log | awk '$4 == "Joined"' | wc -l)
echo "nodes=$N duration=${DURATION}s wall=$((end - start))s busy_cores=1 cpus=$(nproc) load_at_end=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
echo "joined_events=$joined (expected $((N * (N - 1))) for a clean start)"
echo "false_failed_events=$failed suspected_events=$suspected"
stalls=$(awk '$4 == "STATS" { for (i = 5; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "stalls") s += kv[2] } } END { print s + 0 }' "$OUT"/n*.log)
echo "local_stalls_noticed=$stalls (ticks late by more than 200 ms: the machine was starved)"
awk -v d="$DURATION" '$4 == "STATS" { for (i = 5; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "bytes_sent") { s += kv[2]; n++ } } }
	END { if (n) printf "heartbeat_payload_bytes_per_s_per_node=%.1f (UDP payload, all packet types, %d nodes)\n", s / n / d, n }' "$OUT"/n*.log
echo "logs: $OUT"
