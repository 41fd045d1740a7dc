#!/usr/bin/env bash
# Topology under a 2|2 partition, in network namespaces on one bridge.
#
# Four nodes (examples/ring in node mode) run in four namespaces joined by a
# bridge. Once they agree on a ring, the bridge is split 2|2 for 6 s, then
# healed. The script checks that no two leaders committed topologies that
# share members while split (the majority policy), and that one topology
# is agreed within 3 s of the heal; it prints what each node committed and
# when. Needs root and iproute2; skips cleanly otherwise. Always tears down.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/ringnet.sh
ringnet_require topology-netns
ringnet_setup trtop 10.77.0 17946 1 2 3 4

for i in $nodes; do
	# Node1 starts first and leads; the others join in order.
	ip netns exec ${P}-n$i timeout -s KILL 90 "$work/node" -node Node$i \
		-addr 10.77.0.$i:7000 -gossip 10.77.0.$i:17946 -seed "$seeds" </dev/null 2>"$work/err$i" \
		| stamp >"$work/log$i" &
	disown
	sleep 0.3 # join order: each node joins after the previous one
done

agreed() { # all nodes committed the same 4-member topology
	local first; first=$(last_topology 1)
	[[ "$first" == *"members=4 "* ]] || return 1
	for i in $nodes; do [ "$(last_topology $i)" == "$first" ] || return 1; done
}
wait_agreed() { # wait_agreed SECONDS
	local deadline=$(( $(date +%s%N) + $1 * 1000000000 ))
	while ! agreed; do
		[ "$(date +%s%N)" -lt $deadline ] || return 1
		sleep 0.05
	done
}

if ! wait_agreed 20; then
	echo "topology-netns: FAIL: no agreement on 4 members"; for i in $nodes; do echo "--- Node$i"; cat "$work/log$i" "$work/err$i"; done; exit 1
fi
before=$(grep -c TOPOLOGY "$work"/log* | awk -F: '{s+=$2} END {print s}')
echo "agreed: $(last_topology 1)"

split_at=$(( ($(date +%s%N) - start) / 1000000 ))
split_at=$((split_at / 1000)).$(printf '%03d' $((split_at % 1000))) # commits after this time count
echo "partition 2|2: Node1 Node2 | Node3 Node4"
ip -n $BR link set vb3 master br1
ip -n $BR link set vb4 master br1
sleep 6 # long enough for every node to declare the other side failed
echo "heal"
ip -n $BR link set vb3 master br0
ip -n $BR link set vb4 master br0
healed=$(date +%s%N)
heal_at=$(( (healed - start) / 1000000 ))
heal_at=$((heal_at / 1000)).$(printf '%03d' $((heal_at % 1000)))
ok=1
if wait_agreed 3; then
	echo "one topology $(( ($(date +%s%N) - healed) / 1000000 )) ms after the heal: $(last_topology 1)"
else
	echo "FAIL: no single topology within 3 s of the heal"; ok=0
fi

# While split, a commit would show as a TOPOLOGY line with fewer members.
# Two leaders committing topologies that share members is what must never
# happen: with the majority rule, neither side of a 2|2 split commits.
split=$(grep -h TOPOLOGY "$work"/log* | awk -v a="$split_at" -v b="$heal_at" '$1 + 0 > a + 0 && $1 + 0 < b + 0' || true)
if [ -n "$split" ]; then
	echo "commits during the partition:"; echo "$split"
	leaders=$(echo "$split" | grep -o 'leader=[^ ]*' | sort -u | wc -l)
	if [ "$leaders" -gt 1 ]; then echo "FAIL: two leaders committed during the partition"; ok=0; fi
else
	echo "no commit during the partition (neither side sees a majority of the 4 members)"
fi

echo "what each node committed, and when (seconds from start):"
for i in $nodes; do grep TOPOLOGY "$work/log$i" | sed "s/^/  /"; done
[ $ok = 1 ] && echo "topology-netns: PASS" || { echo "topology-netns: FAIL"; exit 1; }
