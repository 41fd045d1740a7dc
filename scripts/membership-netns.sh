#!/usr/bin/env bash
# membership-netns.sh — four membership nodes on four "hosts" (network namespaces
# joined by a bridge), through a cable cut, a heal, a 2|2 partition and a heal.
# Prints what each node saw and when, checks it, and always tears everything down.
#
#   sudo scripts/membership-netns.sh
#
# Needs root and `ip netns` (iproute2). Without them it prints
# "skipped: needs root and ip netns" and exits 0. Every address used (10.77.0.0/24,
# multicast 239.77.77.77) exists only inside namespaces created here, which have no
# default route: no packet leaves the machine. Exit status 0 means every
# expectation held.
set -uo pipefail

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null 2>&1 || ! ip netns list >/dev/null 2>&1; then
	echo "skipped: needs root and ip netns"
	exit 0
fi

here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/membership-netns.XXXXXX)
p="tm$$"          # namespace prefix, unique per run
BR="${p}br"
N=4
LIFETIME=120      # hard bound on every node process, in seconds
failures=0

ns() { echo "${p}n$1"; }

teardown() {
	local s
	for s in "$BR" $(for i in $(seq 1 $N); do ns "$i"; done); do
		for pid in $(ip netns pids "$s" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$s" 2>/dev/null
	done
	rm -rf "$work"
}
trap teardown EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
T0=$(now_ns)
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (a - b) / 1e9 }'; }
say() { printf '%8ss  %s\n' "$(secs "$(now_ns)" "$T0")" "$*"; }
bad() { say "FAIL: $*"; failures=$((failures + 1)); }

# wait_for TIMEOUT_S DESCRIPTION COMMAND...: poll COMMAND every 50 ms.
wait_for() {
	local limit=$1 what=$2
	shift 2
	local deadline=$(($(now_ns) + limit * 1000000000))
	until "$@"; do
		if [ "$(now_ns)" -gt "$deadline" ]; then
			bad "timed out after ${limit}s waiting for: $what"
			return 1
		fi
		sleep 0.05
	done
	return 0
}

log() { echo "$work/n$1.log"; }
# count I KIND MEMBER [SINCE_NS]: events KIND about MEMBER in node I's log.
count() { awk -v k="$2" -v m="$3" -v s="${4:-0}" '$4 == k && $5 == m && $1 >= s' "$(log "$1")" | wc -l; }
# first I KIND MEMBER SINCE_NS: time (ns) of the first such event.
first() { awk -v k="$2" -v m="$3" -v s="$4" '$4 == k && $5 == m && $1 >= s { print $1; exit }' "$(log "$1")"; }
# leader I: name of the latest leader node I announced.
leader() { awk '$4 == "LeaderChanged" { l = $5 } END { print l }' "$(log "$1")"; }

# saw_all KIND SINCE "OBSERVERS" "MEMBERS": every observer saw KIND for every other member.
saw_all() {
	local kind=$1 since=$2 i m
	for i in $3; do
		for m in $4; do
			[ "$i" = "$m" ] && continue
			[ "$(count "$i" "$kind" "n$m" "$since")" -ge 1 ] || return 1
		done
	done
}

# report KIND SINCE "OBSERVERS" "MEMBERS": print when each observer saw KIND.
report() {
	local kind=$1 since=$2 i m t
	for i in $3; do
		for m in $4; do
			[ "$i" = "$m" ] && continue
			t=$(first "$i" "$kind" "n$m" "$since")
			if [ -n "$t" ]; then
				printf '           n%s saw %-9s n%s after %6s s\n' "$i" "$kind" "$m" "$(secs "$t" "$since")"
			fi
		done
	done
}

say "building membernode"
if ! (cd "$here" && go build -o "$work/membernode" ./membership/internal/cmd/membernode); then
	echo "FAIL: build"
	exit 1
fi

say "creating bridge namespace $BR (br0, br1, multicast snooping off) and $N hosts"
ip netns add "$BR" || exit 1
for b in br0 br1; do
	ip -n "$BR" link add "$b" type bridge mcast_snooping 0 forward_delay 0 || exit 1
	ip -n "$BR" link set "$b" up || exit 1
done
for i in $(seq 1 $N); do
	s=$(ns "$i")
	ip netns add "$s" || exit 1
	ip -n "$BR" link add "vb$i" type veth peer name v0 netns "$s" || exit 1
	ip -n "$BR" link set "vb$i" master br0 up || exit 1
	ip -n "$s" link set lo up
	ip -n "$s" addr add "10.77.0.$i/24" dev v0
	ip -n "$s" link set v0 up
	ip -n "$s" route add 224.0.0.0/4 dev v0 || exit 1
done

# started I: node I logged its start (its join time is set).
started() { [ "$(awk '$4 == "START"' "$(log "$1")" | wc -l)" -ge 1 ]; }

say "starting nodes n1..n$N (n1 first: it is the oldest, the leader)"
# Each node is started once the previous one has: the join times, which
# make the leader, then follow the order of the names even when starting a
# process takes longer than the gap between launches (a loaded machine).
for i in $(seq 1 $N); do
	ip netns exec "$(ns "$i")" timeout -s KILL "$LIFETIME" "$work/membernode" -name "n$i" \
		-iface v0 -addr "10.77.0.$i:7001" -duration "$((LIFETIME - 10))s" >"$(log "$i")" 2>"$work/n$i.err" &
	wait_for 10 "n$i starts" started "$i" || break
done
all="$(seq -s ' ' 1 $N)"
wait_for 10 "every node sees every other" saw_all Joined 0 "$all" "$all" && say "all $N nodes see each other"
for i in $all; do [ "$(leader "$i")" = n1 ] || bad "n$i's leader is $(leader "$i"), want n1"; done

say "phase 1: cut n4's cable (vb4 down)"
cut=$(now_ns)
ip -n "$BR" link set vb4 down
wait_for 5 "n1-n3 declare n4 failed" saw_all Failed "$cut" "1 2 3" "4"
wait_for 5 "n4 declares n1-n3 failed" saw_all Failed "$cut" "4" "1 2 3"
report Failed "$cut" "1 2 3" "4"
report Failed "$cut" "4" "1 2 3"
for i in 1 2 3; do
	t=$(first "$i" Failed n4 "$cut")
	[ -n "$t" ] && [ $((t - cut)) -le 1500000000 ] || bad "n$i took more than 1.5 s to declare n4 failed"
done
[ "$(leader 4)" = n4 ] || bad "isolated n4's leader is $(leader 4), want itself"

say "phase 2: heal the cable"
heal=$(now_ns)
ip -n "$BR" link set vb4 up
wait_for 10 "n4 rejoins everyone" saw_all Joined "$heal" "$all" "4"
wait_for 10 "everyone rejoins n4" saw_all Joined "$heal" "4" "1 2 3"
report Joined "$heal" "1 2 3" "4"
wait_for 5 "n4 follows n1 again" sh -c "[ \"\$(awk '\$4 == \"LeaderChanged\" { l = \$5 } END { print l }' $(log 4))\" = n1 ]"

say "phase 3: partition {n1,n2} | {n3,n4}"
part=$(now_ns)
ip -n "$BR" link set vb3 master br1
ip -n "$BR" link set vb4 master br1
wait_for 5 "{n1,n2} declare n3,n4 failed" saw_all Failed "$part" "1 2" "3 4"
wait_for 5 "{n3,n4} declare n1,n2 failed" saw_all Failed "$part" "3 4" "1 2"
report Failed "$part" "1 2" "3 4"
report Failed "$part" "3 4" "1 2"
say "leaders during the partition: n1->$(leader 1) n2->$(leader 2) n3->$(leader 3) n4->$(leader 4)"
for i in 1 2; do [ "$(leader "$i")" = n1 ] || bad "n$i's leader is $(leader "$i") in the partition, want n1"; done
wait_for 5 "{n3,n4} elect n3" sh -c "[ \"\$(awk '\$4 == \"LeaderChanged\" { l = \$5 } END { print l }' $(log 3))\" = n3 ] && [ \"\$(awk '\$4 == \"LeaderChanged\" { l = \$5 } END { print l }' $(log 4))\" = n3 ]"
say "(each side follows its own oldest member: the topology layer adds the majority rule)"

say "phase 4: heal the partition"
heal2=$(now_ns)
ip -n "$BR" link set vb3 master br0
ip -n "$BR" link set vb4 master br0
wait_for 10 "{n1,n2} see n3,n4 again" saw_all Joined "$heal2" "1 2" "3 4"
wait_for 10 "{n3,n4} see n1,n2 again" saw_all Joined "$heal2" "3 4" "1 2"
report Joined "$heal2" "1 2" "3 4"
report Joined "$heal2" "3 4" "1 2"
for i in $all; do
	wait_for 5 "n$i follows n1" sh -c "[ \"\$(awk '\$4 == \"LeaderChanged\" { l = \$5 } END { print l }' $(log "$i"))\" = n1 ]"
done

say "phase 5: graceful leave of n2 (SIGTERM)"
leave=$(now_ns)
for pid in $(ip netns pids "$(ns 2)"); do kill -TERM "$pid" 2>/dev/null; done
wait_for 3 "n1,n3,n4 see n2 leave" saw_all Left "$leave" "1 3 4" "2"
report Left "$leave" "1 3 4" "2"

say "stopping the others (graceful)"
for i in 1 3 4; do for pid in $(ip netns pids "$(ns "$i")"); do kill -TERM "$pid" 2>/dev/null; done; done
wait

echo
echo "=== what each node saw (seconds since the script started) ==="
for i in $all; do
	echo "--- n$i"
	awk -v t0="$T0" '$4 != "STATS" { printf "  %8.3f  %-13s %s %s\n", ($1 - t0) / 1e9, $4, $5, ($4 == "LeaderChanged" ? $NF : $8) }
		$4 == "STATS" { $1 = $2 = $3 = $4 = $5 = $6 = $7 = ""; print "  stats:" $0 }' "$(log "$i")"
done
for i in $all; do
	if grep -q . "$work/n$i.err"; then echo "--- n$i stderr"; cat "$work/n$i.err"; fi
done
echo
if [ "$failures" -eq 0 ]; then
	echo "PASS: membership-netns: cut, heal, partition, heal, leave all as expected"
	exit 0
fi
echo "FAIL: membership-netns: $failures expectation(s) not met"
exit 1
