#!/bin/sh
# Runs the benchmark: Trellis, gRPC-Go, net/rpc and the raw TCP echo, each
# server in its own process, one table plus ratios. Flags go to the bench
# command, e.g.:
#   bench/run.sh -systems trellis,raw -payloads small -window 1s
#   bench/run.sh -runs 2                    # twice, with the spread
#   bench/run.sh -profile /tmp/prof -systems trellis
set -e
cd "$(dirname "$0")"
go build -o "${TMPDIR:-/tmp}/trellis-bench.$$" .
trap 'rm -f "${TMPDIR:-/tmp}/trellis-bench.$$"' EXIT
"${TMPDIR:-/tmp}/trellis-bench.$$" "$@"
