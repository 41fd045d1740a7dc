#!/usr/bin/env bash
# A cluster on a lossy network, in network namespaces on one bridge.
#
# Five members (internal/faultnode) form the ring N1-N2-N3-N4-N5; N1 calls
# N3 (two hops: routed) and N2 calls N5 every 50 ms. Packet loss is then
# injected inside the bridge with nftables (a random share of the frames
# each member sends is dropped, both UDP heartbeats and TCP):
#   1. LOSS % (default 20) of every member's frames, for HOLD s (default 20);
#   2. ONEWAY % (default 60) of N3's frames only, silently one way, for HOLD s;
#   3. every frame to N3 (N3 "deaf": it hears no one, the others hear it),
#      for HOLD s: the others must declare it failed and commit a ring
#      without it, and take it back after the heal;
# and checks, during 1 and 2, that no member is declared failed, that the
# topology stays the one agreed before, and that calls keep succeeding: at
# LOSS, none fails but by its deadline (at most 0.5 % so); at ONEWAY, at
# most 2 % by their deadline and 15 % otherwise; after the heal, that the
# members agree on that topology again. `tc netem` is not used (it
# is missing from some kernels): loss only, no delay. Needs root, iproute2
# and nft (Debian's nftables); skips cleanly otherwise. Always tears down.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/ringnet.sh
ringnet_require loss-netns
if ! command -v nft >/dev/null || ! command -v ss >/dev/null; then
	echo "loss-netns: skipped: needs nft (nftables) and ss (iproute2)"
	exit 0
fi

LOSS=${LOSS:-20}
ONEWAY=${ONEWAY:-60}
HOLD=${HOLD:-20}
RINGNET_PKG=./internal/faultnode ringnet_setup trls 10.79.0 17946 1 2 3 4 5
if ! ip netns exec $BR nft add table bridge loss 2>/dev/null; then
	echo "loss-netns: skipped: this kernel has no nftables bridge family"
	exit 0
fi
ip netns exec $BR nft add chain bridge loss drops '{ type filter hook forward priority 0; policy accept; }'

subnet=10.79.0 lifetime=300
extra_1="-ping N3"
extra_2="-ping N5"
. scripts/lib/faultnet.sh
wait_agreed() { # wait_agreed SECONDS: all five agree within SECONDS
	local deadline=$(( $(now) + $1 * 1000 ))
	while ! agreed $nodes; do
		[ "$(now)" -lt $deadline ] || return 1
		sleep 0.05
	done
}
# in_window A B WHAT: the lines of kind WHAT the members logged in [A, B]
in_window() {
	local i
	for i in $nodes; do awk -v a="$1" -v b="$2" -v w="$3" '$2 == w && $1 >= a && $1 <= b' "$work/log$i"; done
}
calls_made() { # calls_made A B: the calls N1 and N2 started in [A, B] (one every 50 ms each)
	echo $(( ($2 - $1) / 50 * 2 ))
}
start_all
if ! wait_agreed 20; then
	echo "loss-netns: FAIL: no agreement on 5 members"; dump; exit 1
fi
before=$(top 1)
echo "agreed: $before"
sleep 1 # the callers find their targets

# lossy LABEL RULE LATE OTHER: drops frames by RULE for HOLD seconds, heals,
# and checks: no member declared failed, the topology unchanged, at most
# LATE per mille of the calls failed by their deadline (5 s), at most OTHER
# per mille otherwise. Loss delays TCP: each retransmission of a lost
# segment waits twice as long as the one before, so under heavy loss a call
# now and then outlasts its deadline, and a connection may stay silent past
# the transport's keepalive timeout (15 s) and be dialled again, while its
# relayed calls fail with no route.
lossy() {
	local label=$1 rule=$2 late=$3 most=$4
	echo "== $label for $HOLD s"
	local t0; t0=$(now)
	ip netns exec $BR nft add rule bridge loss drops $rule
	sleep "$HOLD"
	local t1; t1=$(now)
	ip netns exec $BR nft flush chain bridge loss drops
	sleep 1 # the calls started under loss end
	local v; v=$(in_window $t0 $(now) VERDICT)
	[ -z "$v" ] || { fail "$label: members declared failed:"; echo "$v"; }
	local c; c=$(in_window $t0 $(now) TOPOLOGY)
	[ -z "$c" ] || { fail "$label: the topology changed:"; echo "$c"; }
	local f; f=$(in_window $t0 $(now) CALL)
	local n; n=$(calls_made $t0 $t1)
	local other; other=$(echo "$f" | grep -v 'call deadline exceeded' || true)
	local slow; slow=$(echo "$f" | grep -c 'call deadline exceeded' || true)
	local others; others=$(echo -n "$other" | grep -c . || true)
	if [ $((others * 1000)) -gt $((n * most)) ]; then
		fail "$label: $others of ~$n calls failed other than by their deadline (at most $most per mille allowed):"; echo "$other" | head -n 5
	fi
	if [ $((slow * 1000)) -gt $((n * late)) ]; then
		fail "$label: $slow of ~$n calls outlasted their deadline (at most $late per mille allowed)"
	fi
	echo "$label: ~$n calls made, $slow outlasted their 5 s deadline, $others failed otherwise; $(echo -n "$v" | grep -c . || true) verdicts, $(echo -n "$c" | grep -c . || true) topology commits"
	if ! wait_agreed 10 || [ "$(top 1)" != "$before" ]; then
		fail "$label: no agreement on the topology of before within 10 s of the heal"; dump
	fi
}
lossy "$LOSS % loss on every member's frames" "iifname \"vb*\" numgen random mod 100 < $LOSS drop" 5 0
lossy "$ONEWAY % loss on N3's frames, one way" "iifname \"vb3\" numgen random mod 100 < $ONEWAY drop" 20 150

# N3 deaf: every frame to it dropped, while its own still arrive. It hears no
# one and declares everyone failed; its heartbeats say so, and the others
# must declare it failed too and commit a ring without it (instead of keeping
# a member no connection reaches); once it hears again, it rejoins.
echo "== N3 deaf (every frame to it dropped) for $HOLD s"
t0=$(now)
ip netns exec $BR nft add rule bridge loss drops oifname '"vb3"' drop
sleep "$HOLD"
ip netns exec $BR nft flush chain bridge loss drops
for i in 1 2 4 5; do
	v=$(awk -v a="$t0" '$2 == "VERDICT" && $4 == "failed=N3" && $1 >= a { print $1; exit }' "$work/log$i")
	if [ -z "$v" ]; then fail "N3 deaf: N$i never declared it failed"; else echo "N3 deaf: N$i declared it failed $((v - t0)) ms after the cut"; fi
	c=$(awk -v a="$t0" '$2 == "TOPOLOGY" && $1 >= a && / members=4 / && !/N3/ { print $1; exit }' "$work/log$i")
	if [ -z "$c" ]; then fail "N3 deaf: N$i committed no topology without it"; else echo "N3 deaf: N$i committed a topology without it $((c - t0)) ms after the cut"; fi
done
if ! wait_agreed 15; then
	fail "N3 deaf: no agreement on five members within 15 s of the heal"; dump
else
	echo "N3 deaf: after the heal: $(top 1)"
fi

if grep -h "hop budget" "$work"/log* >/dev/null; then
	fail "calls went round a routing loop:"; grep -h "hop budget" "$work"/log* | head -n 3
fi
[ $ok = 1 ] && echo "loss-netns: PASS" || { echo "loss-netns: FAIL"; exit 1; }
