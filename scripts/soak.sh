#!/usr/bin/env bash
# The soak matrix of docs/testing.md: every workload on every correct flavor
# for SECONDS (default 600) with four faults, one run at a time, each run's
# JSON kept in DIR. Prints the markdown table at the end; `--table DIR` only
# prints the table of runs already in DIR. 24 runs of 600 s take 4 hours;
# FLAVORS="rcu liburcu-memb" scripts/soak.sh runs only those flavors.
#
#   scripts/soak.sh [SECONDS] [DIR]      (default DIR: soak-results)
#   scripts/soak.sh --table DIR
set -euo pipefail
cd "$(dirname "$0")/.."
workloads="pointer snapshot hashmap list"
flavors="${FLAVORS:-rcu rcu-atomic rcu-fence rcu-atomic-fence rcu-seqcst liburcu-memb}"
faults="migrate,signals,oversubscribe,churn"

# The number after "name": in a one-line JSON object (the run's top level
# comes first, before the statistics string).
field() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | head -1; }

table() {
    local dir="$1" file
    echo "| workload | flavor | s | reads/s | updates/s | GPs/s | violations | leaked | RSS start KiB | RSS end KiB | RSS peak KiB |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for workload in $workloads; do
        for flavor in $flavors; do
            file="$dir/$workload-$flavor.json"
            [ -s "$file" ] || continue
            awk -v w="$workload" -v f="$flavor" \
                -v s="$(field duration_s "$file")" -v r="$(field reads "$file")" \
                -v u="$(field updates "$file")" -v g="$(field grace_periods "$file")" \
                -v v="$(field violations "$file")" -v l="$(field leaked "$file")" \
                -v a="$(field rss_start_kb "$file")" -v b="$(field rss_end_kb "$file")" \
                -v p="$(field rss_peak_kb "$file")" \
                'BEGIN { printf "| %s | %s | %.0f | %.3g | %.3g | %.3g | %d | %d | %d | %d | %d |\n",
                         w, f, s, r / s, u / s, g / s, v, l, a, b, p }'
        done
    done
}

if [ "${1:-}" = "--table" ]; then
    [ -d "${2:-}" ] || { echo "usage: scripts/soak.sh --table DIR" >&2; exit 64; }
    table "$2"
    exit 0
fi
seconds="${1:-600}"
dir="${2:-soak-results}"
mkdir -p "$dir"
swift build -c release --product rcu-stress >/dev/null
bin=.build/release/rcu-stress
status=0
for flavor in $flavors; do
    for workload in $workloads; do
        echo "$(date +%T) $workload on $flavor, $seconds s" >&2
        "$bin" torture --workload "$workload" --flavor "$flavor" --duration "$seconds" \
            --faults "$faults" --json >"$dir/$workload-$flavor.json" || status=1
    done
done
table "$dir"
exit "$status"
