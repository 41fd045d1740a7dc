# Shared by the scripts that run internal/faultnode members in network
# namespaces (converge-netns.sh, loss-netns.sh). Source it after the
# namespaces exist; it expects P (the namespace prefix), work (holding the
# faultnode binary as node, and the members' logs), nodes, seeds, subnet
# (the members' addresses are $subnet.N) and lifetime (seconds a member may
# live); extra_N, if set, adds flags to member NN. It is not a script of its
# own.

# now: the Unix time in milliseconds, as the members stamp their lines.
now() { echo $(( $(date +%s%N) / 1000000 )); }

# start_node I: starts member NI (again, after a kill).
start_node() {
	local i=$1 extra=extra_$1
	ip netns exec ${P}-n$i timeout -s KILL "$lifetime" "$work/node" -name N$i -addr $subnet.$i:7000 \
		-gossip $subnet.$i:17946 -seed "$seeds" ${VERBOSE:+-v} ${!extra:-} </dev/null >>"$work/log$i" 2>>"$work/err$i" &
	disown
}

# top I: NI's last committed topology, without the time and the name.
top() { grep ' TOPOLOGY ' "$work/log$1" 2>/dev/null | tail -n 1 | cut -d' ' -f4- || true; }

# conns I...: the established connections accepted by the members given.
conns() {
	local n=0 i
	for i in "$@"; do
		n=$((n + $(ip netns exec ${P}-n$i ss -Htn state established '( sport = :7000 )' | wc -l)))
	done
	echo $n
}

# agreed I...: the members given agree on one topology of exactly them, and
# their connections are its edges.
agreed() {
	local first; first=$(top $1)
	[[ "$first" == *"members=$# "* ]] || return 1
	local i
	for i in "$@"; do [ "$(top $i)" == "$first" ] || return 1; done
	local edges=${first#*edges=}; edges=${edges%% *}
	[ "$(conns "$@")" == "$edges" ]
}

# dump: the end of every member's log.
dump() { local i; for i in $nodes; do echo "--- N$i"; tail -n 30 "$work/log$i"; tail -n 5 "$work/err$i"; done; }

# start_all: starts the members in order, each joining after the previous one.
start_all() {
	local i
	for i in $nodes; do
		start_node $i
		sleep 0.3
	done
}

ok=1
# fail MESSAGE: reports a failed check; the script goes on, and fails at its end.
fail() { echo "FAIL: $*"; ok=0; }
