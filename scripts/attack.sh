#!/usr/bin/env bash
# Attacks a Trellis node with each attack of issue 10 ("Safe to expose") and
# prints, per attack, the node's peak RSS, its goroutines and the p99 of a
# legitimate caller's calls during the attack (internal/attack,
# internal/attack/cmd/trellis-attack). Each attack runs against a fresh target
# process with a fresh caller process, for ATTACK_DURATION (default 5s); the
# whole run takes a little over a minute and needs no privileges.
#
# Budget: the node under 256 MiB of RSS, legitimate calls within 100 ms (p99).
# The script reports; with ATTACK_STRICT=1 (as CI runs it) it fails when an
# attack puts the node over budget.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/trellis-attack" ./internal/attack/cmd/trellis-attack

args=(run -duration "${ATTACK_DURATION:-5s}" -logs "$dir/target.log")
if [ "${ATTACK_STRICT:-0}" = 1 ]; then
	args+=(-strict)
fi
"$dir/trellis-attack" "${args[@]}"
