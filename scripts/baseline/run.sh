#!/usr/bin/env bash
# Builds and runs the plain C baselines next to rcu-stress, so the liburcu
# figures rcu-stress reports can be checked against what a C program gets.
# Usage: scripts/baseline/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/ensure-deps.sh
seconds="${1:-4}"
out="$(mktemp -d)"
flags="$(pkg-config --cflags --libs liburcu-memb)"
gcc -O2 -I Sources/_RCUShims/include scripts/baseline/read_side.c Sources/_RCUShims/rcu_shims.c -o "$out/read_side" $flags
gcc -O2 scripts/baseline/torture_liburcu.c -o "$out/torture_liburcu" $flags -lpthread
swift build -c release --product rcu-stress >/dev/null
echo "== read side, 1 thread, plain C"
"$out/read_side" "$seconds" 5
echo "== read side, 1 thread, rcu-stress"
.build/release/rcu-stress bench --suite read-side --threads 1 --duration "$seconds" | grep -E "lock-unlock .* (rcu|liburcu-memb) "
for round in 1 2 3; do
    echo "== torture round $round: plain C, then rcu-stress (2 readers, 1 updater, ${seconds} s)"
    "$out/torture_liburcu" "$seconds" 2 1
    .build/release/rcu-stress torture --flavor liburcu-memb --readers 2 --updaters 1 --duration "$seconds" \
        | grep -E "^liburcu-memb"
done
rm -rf "$out"
