#!/bin/sh
# Runs the benchmark: Trellis, gRPC-Go, net/rpc and the raw TCP echo, each
# server in its own process, one table plus ratios, then Trellis's stream and
# routing figures. (From the repository root, `go run ./bench` cannot work:
# bench/ is a module of its own. This script, `cd bench && go run .` or
# `go run -C bench .` do.) Flags go to the bench
# command, e.g.:
#   bench/run.sh -systems trellis,raw -payloads small -window 1s
#   bench/run.sh -runs 2                    # twice, with the spread
#   bench/run.sh -phases stream,route,p99   # only the stream and routing figures
#   bench/run.sh -profile /tmp/prof -systems trellis
set -e
cd "$(dirname "$0")"
go build -o "${TMPDIR:-/tmp}/trellis-bench.$$" .
trap 'rm -f "${TMPDIR:-/tmp}/trellis-bench.$$"' EXIT
"${TMPDIR:-/tmp}/trellis-bench.$$" "$@"
