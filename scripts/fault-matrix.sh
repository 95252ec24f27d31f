#!/usr/bin/env bash
# Tortures every correct flavor (the library's five modes and liburcu-memb)
# with no fault, each fault, and all faults together, SECONDS each
# (default 10), and prints one JSON line per run.
# Usage: scripts/fault-matrix.sh [SECONDS] [WORKLOAD] [GP_MODES] [FAULT_SETS]
#   GP_MODES: space-separated (default "sync"); FAULT_SETS: space-separated,
#   "none" for no fault (default: none, each fault, all four).
# Exits non-zero if any run saw a violation or a leak, or did less than the
# torture's floor of work (1,000 reads and 10 updates per second).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
workload="${2:-pointer}"
modes="${3:-sync}"
fault_sets="${4:-none migrate signals churn oversubscribe migrate,signals,churn,oversubscribe}"
swift build -c release --product rcu-stress >/dev/null
status=0
for mode in $modes; do
    for flavor in rcu rcu-atomic rcu-fence rcu-atomic-fence rcu-seqcst liburcu-memb; do
        for faults in $fault_sets; do
            args=(torture --flavor "$flavor" --workload "$workload" --gp "$mode" --duration "$seconds" --json)
            [ "$faults" = none ] || args+=(--faults "$faults")
            .build/release/rcu-stress "${args[@]}" || status=1
        done
    done
done
exit $status
