#!/usr/bin/env bash
# Tortures every correct flavor with no fault, each fault, and all faults
# together, SECONDS each (default 10), and prints one JSON line per run.
# Exits non-zero if any run saw a violation or a leak.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
workload="${2:-pointer}"
swift build -c release --product rcu-stress >/dev/null
status=0
for flavor in rcu rcu-atomic rcu-fence liburcu-memb; do
    for faults in none migrate signals churn oversubscribe migrate,signals,churn,oversubscribe; do
        args=(torture --flavor "$flavor" --workload "$workload" --duration "$seconds" --json)
        [ "$faults" = none ] || args+=(--faults "$faults")
        .build/release/rcu-stress "${args[@]}" || status=1
    done
done
exit $status
