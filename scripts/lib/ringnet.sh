# Shared by the scripts that run examples/ring nodes in network namespaces on
# one bridge (topology-netns.sh, memberlist-netns.sh, loss-netns.sh). Source it, then call
# ringnet_require and ringnet_setup; it is not a script of its own.

# ringnet_require NAME: exit 0 with a message unless this runs as root with
# iproute2's netns support.
ringnet_require() {
	if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
		echo "$1: skipped: needs root and ip netns"
		exit 0
	fi
}

# ringnet_setup PREFIX SUBNET GOSSIP_PORT NODE...: builds examples/ring (or
# the package in RINGNET_PKG) into $work/node, makes a namespace $BR holding
# two bridges (br0 carries everyone; br1 is empty, for partitions) and one
# namespace ${P}-nN per node with address SUBNET.N on br0, and sets P, BR,
# work, nodes and seeds (the nodes' gossip addresses, comma-separated).
# Everything is torn down on exit (the logs in $work copied to $KEEP first,
# if set).
ringnet_setup() {
	P=$1$$ # namespace prefix, unique per run
	BR=${P}-br
	local subnet=$2 port=$3
	shift 3
	nodes="$*"
	work=$(mktemp -d)
	trap ringnet_cleanup EXIT INT TERM

	go build -o "$work/node" "${RINGNET_PKG:-./examples/ring}"

	ip netns add $BR
	ip -n $BR link add br0 type bridge mcast_snooping 0 forward_delay 0
	ip -n $BR link add br1 type bridge mcast_snooping 0 forward_delay 0
	ip -n $BR link set br0 up
	ip -n $BR link set br1 up
	seeds=""
	local i ns
	for i in $nodes; do
		ns=${P}-n$i
		ip netns add $ns
		ip -n $BR link add vb$i type veth peer name v0 netns $ns
		ip -n $BR link set vb$i master br0 up
		ip -n $ns link set lo up
		ip -n $ns addr add $subnet.$i/24 dev v0
		ip -n $ns link set v0 up
		seeds="${seeds:+$seeds,}$subnet.$i:$port"
	done
	start=$(date +%s%N)
}

ringnet_cleanup() {
	local ns p
	for ns in $BR $(for i in $nodes; do echo ${P}-n$i; done); do
		for p in $(ip netns pids $ns 2>/dev/null); do kill -KILL $p 2>/dev/null || true; done
		ip netns del $ns 2>/dev/null || true
	done
	if [ -n "${KEEP:-}" ]; then cp -r "$work" "$KEEP"; fi
	rm -rf "$work"
}

# now: the seconds since ringnet_setup, to the millisecond.
now() { local ms=$(( ($(date +%s%N) - start) / 1000000 )); echo "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"; }

# stamp: prefixes each line of its input with the seconds since ringnet_setup.
stamp() {
	local ms line
	while IFS= read -r line; do
		ms=$(( ($(date +%s%N) - start) / 1000000 ))
		printf '%3d.%03d %s\n' $((ms / 1000)) $((ms % 1000)) "$line"
	done
}

# last_topology N: the last topology node N committed (without time and name).
last_topology() { grep TOPOLOGY "$work/log$1" | tail -n 1 | sed -E 's/^ *[0-9.]+ TOPOLOGY [^ ]+ //' || true; }
