#!/bin/sh
# Commit cost, alternating binaries in one run: for each round and each of first, middle and
# last, every binary commits one deletion on a fresh, synced copy of the same spool.
#   benches/commit_cost.sh SPOOL ROUNDS BIN...     (BIN: a build of examples/storage_bench)
# Prints one line per commit: binary, then the `--commit` line (wall_ms, write_bytes, ...).
set -eu
spool=$1 rounds=$2
shift 2
work=$(dirname "$spool")/commit-cost-work
for r in $(seq "$rounds"); do
	for which in first middle last; do
		for bin in "$@"; do
			cp --reflink=never "$spool" "$work"
			sync
			printf '%s round %s ' "$(basename "$bin")" "$r"
			"$bin" --commit "$work" "$which"
			rm -f "$work"
		done
	done
done
