#!/usr/bin/env bash
# Convergence after faults, in network namespaces on one bridge.
#
# Five members (internal/faultnode) run in five namespaces joined by a
# bridge; N1 starts first and leads, the others join in order (ring
# N1-N2-N3-N4-N5). The script then
#   1. cuts the leader's cable for 5 s, then heals it;
#   2. partitions the bridge 2|3 with the leader on the 2-side for 5 s, then
#      heals it;
#   3. cuts N3's cable while N1 keeps four calls in flight to it, then
#      heals it;
# and checks after each fault that the side without a majority committed
# nothing, that one topology (connections == edges) is agreed within 3 s of
# the heal, that no call in flight hung more than 1 s past its path's
# verdict (the members' verdicts on N3), and that no call failed by a
# routing loop.
#
# FIGURES=1 also measures, over KILLS kills (default 20): kill -> agreed
# topology; each partition shape's heal -> one topology; and two failures
# 100 ms apart (a kill, then a cable cut); SHAPES="1|2_3_4_5 ..." picks the
# partition shapes (minority|majority, "_" for spaces); SCENARIOS=0 skips
# the checks above. VERBOSE=1 logs what the nodes do; KEEP=DIR keeps the logs. Needs
# root and iproute2; skips cleanly otherwise. Always tears down.
#
# Times are taken from the members' own time stamps (the last commit of the
# agreed topology); polling the namespaces' sockets only confirms that
# connections == edges. A cable that comes back up carries packets again
# only about 1.1 s later in the kernels tried (link state propagation).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
	echo "converge-netns: skipped: needs root and ip netns"
	exit 0
fi
if ! command -v ss >/dev/null; then
	echo "converge-netns: skipped: needs ss (iproute2)"
	exit 0
fi

P=trcv$$ # namespace prefix, unique per run
BR=${P}-br
work=$(mktemp -d)
nodes="1 2 3 4 5"
cleanup() {
	for ns in $BR $(for i in $nodes; do echo ${P}-n$i; done); do
		for p in $(ip netns pids $ns 2>/dev/null); do kill -KILL $p 2>/dev/null || true; done
		ip netns del $ns 2>/dev/null || true
	done
	[ -n "${KEEP:-}" ] && cp -r "$work" "$KEEP"
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/node" ./internal/faultnode

ip netns add $BR
for b in br0 br1; do
	ip -n $BR link add $b type bridge mcast_snooping 0 forward_delay 0
	ip -n $BR link set $b up
done
seeds=""
for i in $nodes; do
	ns=${P}-n$i
	ip netns add $ns
	ip -n $BR link add vb$i type veth peer name v0 netns $ns
	ip -n $BR link set vb$i master br0 up
	ip -n $ns link set lo up
	ip -n $ns addr add 10.78.0.$i/24 dev v0
	ip -n $ns link set v0 up
	seeds="${seeds:+$seeds,}10.78.0.$i:17946"
done

subnet=10.78.0 lifetime=600
extra_1="-hold N3 -inflight 4"
. scripts/lib/faultnet.sh
kill_node() { for p in $(ip netns pids ${P}-n$1); do kill -KILL $p 2>/dev/null || true; done; }
hold() { # hold I: start, or stop, NI's calls held in flight (-hold)
	local p
	for p in $(ip netns pids ${P}-n$1); do
		[ "$(cat /proc/$p/comm 2>/dev/null)" == node ] && kill -USR1 $p
	done
	return 0
}
cut_cable() { ip -n $BR link set vb$1 down; }
mend_cable() { ip -n $BR link set vb$1 up; }

# wait_agreed T0 SECONDS I...: waits until the members given agree, and
# prints how long after T0 (ms) the last of them committed the topology they
# agree on, from the members' own time stamps: polling the namespaces' sockets
# is slow on a loaded machine, so the poll only confirms that connections ==
# edges, and gets a few seconds more than SECONDS for it. Fails if they do not
# agree in time, or committed more than SECONDS after T0.
wait_agreed() {
	local t0=$1 limit=$(($2 * 1000)); shift 2
	local deadline=$((t0 + limit + 4000))
	while ! agreed "$@"; do
		[ "$(now)" -lt $deadline ] || return 1
		sleep 0.02
	done
	local i at=0 ts
	for i in "$@"; do
		ts=$(grep ' TOPOLOGY ' "$work/log$i" | tail -n 1 | cut -d' ' -f1)
		[ "$ts" -gt $at ] && at=$ts
	done
	echo $((at - t0))
	[ $((at - t0)) -le $limit ]
}
commits_between() { # commits_between A B I...: TOPOLOGY lines of the members given stamped in [A, B]
	local i
	for i in "${@:3}"; do awk -v a="$1" -v b="$2" '$2 == "TOPOLOGY" && $1 >= a && $1 <= b' "$work/log$i"; done
}
verdict() { # verdict I NAME AFTER: when NI first declared NAME failed after AFTER (empty if never)
	awk -v n="$2" -v a="$3" '$2 == "VERDICT" && $4 == "failed=" n && $1 >= a { print $1; exit }' "$work/log$1"
}

start_all
if ! wait_agreed $(now) 20 $nodes >/dev/null; then
	echo "converge-netns: FAIL: no agreement on 5 members"; dump; exit 1
fi
echo "agreed: $(top 1)"

# heal_check LABEL MINORITY MAJORITY: after a fault that left MINORITY
# without a majority for 5 s, heal with the command in $heal and check.
heal_check() {
	local label=$1 minority=$2 majority=$3 t_fault=$4
	if ! wait_agreed $(now) 1 $majority >/dev/null; then fail "$label: the majority ($majority) did not agree while split"; fi
	local t_heal; t_heal=$(now)
	local during; during=$(commits_between $t_fault $t_heal $minority)
	if [ -n "$during" ]; then fail "$label: the minority ($minority) committed while split:"; echo "$during"; fi
	local t_whole; t_whole=$(now); eval "$heal"
	local ms
	if ms=$(wait_agreed $t_whole 3 $nodes); then
		echo "$label: one topology ${ms} ms after the heal: $(top 1)"
		echo "$label $ms" >>"$work/heals"
	else
		fail "$label: no single topology within 3 s of the heal (${ms:-none} ms)"; dump
	fi
}

if [ "${SCENARIOS:-1}" == 1 ]; then
echo "== 1. the leader (N1) is cut off for 5 s"
t=$(now); cut_cable 1; sleep 5
heal="mend_cable 1"; heal_check "leader cut off" "1" "2 3 4 5" $t

echo "== 2. partition 2|3, the leader on the 2-side, for 5 s"
t=$(now)
ip -n $BR link set vb1 master br1; ip -n $BR link set vb2 master br1
sleep 5
heal="ip -n $BR link set vb1 master br0; ip -n $BR link set vb2 master br0"
heal_check "2|3, leader on the 2-side" "1 2" "3 4 5" $t

echo "== 3. N3's cable is cut while N1's calls to it are in flight"
hold 1; sleep 1 # four calls in flight from N1 to N3
route=$(top 1 | sed -E 's/.*leader=[^ ]* //')
t_cut=$(now); cut_cable 3; sleep 3
hold 1 # no more calls: the heal below is measured without drains of calls that never end
# The verdict that ends a call is that of the member next to N3 on its path
# (N1 itself if the calls go direct); the bound is taken from the last of
# the members' verdicts, when every one of them has decided.
v=""
for i in 1 2 4 5; do
	vi=$(verdict $i N3 $t_cut)
	if [ -z "$vi" ]; then fail "N$i gave no verdict on N3 within 3 s of the cut"; continue; fi
	echo "N$i declared N3 failed $((vi - t_cut)) ms after the cut"
	[ -z "$v" ] || [ "$vi" -gt "$v" ] && v=$vi
done
if [ -n "$v" ]; then
	echo "topology at the cut: $route"
	# Calls in flight at the cut: each must end within 1 s of the verdicts.
	late=$(awk -v c="$t_cut" -v v="$v" '$2 == "CALL" && $5 == "N3" {
		split($8, s, "="); split($7, a, "="); end = s[2] + a[2]; if (s[2] < c && end > c) { if (end > v + 1000) print; n++ } }
		END { if (n == 0) print "none in flight" }' "$work/log1")
	if [ "$late" == "none in flight" ]; then fail "no call was in flight at the cut"
	elif [ -n "$late" ]; then fail "calls hung past 1 s after the verdict:"; echo "$late"
	else
		awk -v c="$t_cut" -v v="$v" '$2 == "CALL" && $5 == "N3" { split($8, s, "="); split($7, a, "=");
			if (s[2] < c && s[2] + a[2] > c) printf "  call in flight at the cut failed %d ms after the last verdict: %s\n", s[2] + a[2] - v, substr($0, index($0, "err=")) }' "$work/log1" | head -n 4
	fi
fi
heal="mend_cable 3"; heal_check "cable cut" "" "1 2 4 5" $t_cut

if grep -h "hop budget" "$work"/log* >/dev/null; then
	fail "calls went round a routing loop:"; grep -h "hop budget" "$work"/log* | head -n 3
fi

fi # SCENARIOS

if [ "${FIGURES:-}" == 1 ]; then
	echo "== figures"
	if [ -n "${SHAPES+set}" ]; then read -r -a SHAPES <<<"$SHAPES"; else SHAPES=("1|2 3 4 5" "2|1 3 4 5" "1 2|3 4 5" "4 5|1 2 3" "1 3|2 4 5"); fi
	pct() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n=0"; exit }
		p50 = v[int((NR + 1) * 0.5)]; i = int(NR * 0.99 + 0.999); if (i > NR) i = NR;
		printf "n=%d min=%d p50=%d p99=%d max=%d (ms)\n", NR, v[1], p50, v[i], v[NR] }'; }
	# kill -> agreed topology, round robin over the members (the leader included)
	: >"$work/kills"
	for k in $(seq 1 "${KILLS:-20}"); do
		victim=$(( (k - 1) % 5 + 1 ))
		rest=$(for i in $nodes; do [ $i == $victim ] || echo -n "$i "; done)
		t0=$(now); kill_node $victim
		if ms=$(wait_agreed $t0 6 $rest); then echo $ms >>"$work/kills"; else fail "kill $k (N$victim): no agreement within 6 s"; fi
		start_node $victim
		wait_agreed $(now) 10 $nodes >/dev/null || { fail "N$victim did not rejoin"; dump; break; }
	done
	echo "kill -> agreed topology (N=5): $(pct <"$work/kills")"
	# two failures 100 ms apart: a kill, then a cable cut
	: >"$work/two"
	for k in 1 2 3 4 5; do
		a=$(( (k - 1) % 5 + 1 )); b=$(( (k + 1) % 5 + 1 ))
		rest=$(for i in $nodes; do [ $i == $a ] || [ $i == $b ] || echo -n "$i "; done)
		t0=$(now); kill_node $a; sleep 0.1; cut_cable $b
		if ms=$(wait_agreed $t0 8 $rest); then
			echo $ms >>"$work/two"
			echo "  N$a killed, N$b cut 100 ms later: agreed $ms ms after the first failure"
		else
			fail "two failures (N$a, N$b): no agreement"
		fi
		mend_cable $b; start_node $a
		wait_agreed $(now) 10 $nodes >/dev/null || { fail "no rejoin after the two failures"; dump; break; }
	done
	echo "two failures 100 ms apart -> agreed, from the first: $(pct <"$work/two")"
	# each partition shape: heal -> one topology
	for shape in "${SHAPES[@]}"; do
		shape=${shape//_/ }
		minority=${shape%|*}; majority=${shape#*|}
		leader=$(top 2 | sed -E 's/.*leader=([^ ]*).*/\1/')
		t=$(now)
		for i in $minority; do ip -n $BR link set vb$i master br1; done
		sleep 4
		heal=""; for i in $minority; do heal="$heal ip -n $BR link set vb$i master br0;"; done
		heal_check "partition $minority | $majority (leader $leader)" "$minority" "$majority" $t
	done
fi

[ $ok = 1 ] && echo "converge-netns: PASS" || { echo "converge-netns: FAIL"; exit 1; }
