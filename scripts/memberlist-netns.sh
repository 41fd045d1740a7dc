#!/usr/bin/env bash
# The cluster on the memberlist membership backend, in network namespaces on
# one bridge: a partition, a heal and a kill.
#
# Five nodes (examples/ring in node mode, -membership memberlist, memberlist's
# Local preset) run in five namespaces joined by a bridge. Once they agree on
# a 5-member ring, the bridge is split 3|2: the majority must commit a
# 3-member topology and the minority nothing (the majority policy). Once
# healed, all five must agree again; then one node is killed (SIGKILL) and
# the four others must agree on a 4-member ring. The script prints what each
# node committed and when. Needs root and iproute2; skips cleanly otherwise.
# Always tears down.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/ringnet.sh
ringnet_require memberlist-netns
ringnet_setup trml 10.78.0 17948 1 2 3 4 5

for i in $nodes; do
	# Node1 starts first and leads; the others join in order.
	ip netns exec ${P}-n$i timeout -s KILL 120 "$work/node" -node Node$i -membership memberlist \
		-addr 10.78.0.$i:7000 -gossip 10.78.0.$i:17948 -seed "$seeds" </dev/null 2>"$work/err$i" \
		| stamp >"$work/log$i" &
	disown
	sleep 0.3 # join order: each node joins after the previous one
done

agreed() { # agreed COUNT NODE...: the nodes committed the same COUNT-member topology
	local count=$1 first; shift
	first=$(last_topology $1)
	[[ "$first" == *"members=$count "* ]] || return 1
	for i in "$@"; do [ "$(last_topology $i)" == "$first" ] || return 1; done
}
wait_agreed() { # wait_agreed SECONDS COUNT NODE...
	local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
	while ! agreed "$@"; do
		[ "$(date +%s%N)" -lt $deadline ] || return 1
		sleep 0.05
	done
}
fail() {
	echo "memberlist-netns: FAIL: $*"
	for i in $nodes; do echo "--- Node$i"; cat "$work/log$i"; tail -n 20 "$work/err$i"; done
	exit 1
}

wait_agreed 30 5 $nodes || fail "no agreement on 5 members"
echo "agreed: $(last_topology 1)"

split_at=$(now)
echo "$split_at partition 3|2: Node1 Node2 Node3 | Node4 Node5"
ip -n $BR link set vb4 master br1
ip -n $BR link set vb5 master br1
t0=$(date +%s%N)
wait_agreed 30 3 1 2 3 || fail "the majority did not agree on its 3 members"
echo "majority agreed $(( ($(date +%s%N) - t0) / 1000000 )) ms after the split: $(last_topology 1)"
sleep 2 # the minority has declared the majority failed by now, or soon: give it time to misbehave
heal_at=$(now)
echo "$heal_at heal"
ip -n $BR link set vb4 master br0
ip -n $BR link set vb5 master br0
t0=$(date +%s%N)
wait_agreed 30 5 $nodes || fail "no single 5-member topology within 30 s of the heal"
echo "one topology $(( ($(date +%s%N) - t0) / 1000000 )) ms after the heal: $(last_topology 1)"

# The minority (2 of the 5 members of the last topology) must commit nothing.
minority=$(grep -h TOPOLOGY "$work/log4" "$work/log5" | awk -v a="$split_at" -v b="$heal_at" '$1 + 0 > a + 0 && $1 + 0 < b + 0' || true)
[ -z "$minority" ] || { echo "$minority"; fail "the minority committed during the partition"; }

echo "$(now) kill Node5"
for p in $(ip netns pids ${P}-n5); do kill -KILL $p; done
t0=$(date +%s%N)
wait_agreed 30 4 1 2 3 4 || fail "the four survivors did not agree on 4 members"
echo "four members agreed $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill: $(last_topology 1)"

echo "what each node committed, and when (seconds from start):"
for i in $nodes; do grep TOPOLOGY "$work/log$i" | sed "s/^/  /"; done
echo "memberlist-netns: PASS"
