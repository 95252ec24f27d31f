#!/usr/bin/env bash
# Runs a short torture under valgrind, where glibc cannot register rseq: the
# library must notice, choose the atomic mode, and stay correct. valgrind
# 3.19 cannot read Swift 6's DWARF 5, so it runs a copy without debug info.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not installed; skipping"; exit 0; }
swift build -c release --product rcu-stress >/dev/null
copy="$(mktemp)"
trap 'rm -f "$copy"' EXIT
cp .build/release/rcu-stress "$copy"
strip -g "$copy"
chmod +x "$copy"
output="$(valgrind -q --error-exitcode=3 "$copy" torture --flavor rcu --duration 2 --readers 2)"
echo "$output"
grep -q "rseq no" <<<"$output" || { echo "valgrind-smoke: expected rseq to be unavailable under valgrind"; exit 1; }
grep -q "runs atomic+" <<<"$output" || { echo "valgrind-smoke: expected the atomic mode"; exit 1; }
