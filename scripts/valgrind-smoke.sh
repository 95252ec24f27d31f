#!/usr/bin/env bash
# Runs a short torture under valgrind, where glibc cannot register rseq but
# membarrier works: the library must notice, choose exactly atomic+membarrier,
# and stay correct (no violation, no leak, and at least the torture's floor of
# reads and updates). Installs valgrind with apt-get when it is missing and
# fails if it still is. valgrind 3.19 cannot read Swift 6's DWARF 5, so it
# runs a copy without debug info.
#
# --fair-sched=yes: with valgrind's default lock, the readers' back-to-back
# read sections (no system calls) starved the updater; one 2 s run took 204 s
# and did one update. The fair scheduler gives every thread its turn.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
    echo "valgrind-smoke: valgrind not installed; installing it" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind >/dev/null
fi
command -v valgrind >/dev/null || { echo "valgrind-smoke: FAIL: valgrind is still not installed"; exit 1; }
swift build -c release --product rcu-stress >/dev/null
copy="$(mktemp)"
trap 'rm -f "$copy"' EXIT
cp .build/release/rcu-stress "$copy"
strip -g "$copy"
chmod +x "$copy"
# The mode must come from valgrind, not from a forcing switch.
set +e
output="$(env -u RCU_FORCE_ATOMIC -u RCU_FORCE_FENCE -u RCU_FORCE_SEQCST \
    valgrind -q --fair-sched=yes --error-exitcode=3 "$copy" torture --flavor rcu --duration 2 --readers 2 --json)"
status=$?
set -e
echo "$output"
mode="$(sed -n 's/.*"mode":"\([^"]*\)".*/\1/p' <<<"$output")"
if [ "$mode" != "atomic+membarrier" ]; then
    echo "valgrind-smoke: FAIL: expected mode atomic+membarrier under valgrind (no rseq, membarrier available), got '${mode:-none}'"
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "valgrind-smoke: FAIL: the torture under valgrind exited $status (3: valgrind found errors; 1: violations, leaks or too little work)"
    exit 1
fi
echo "valgrind-smoke: ok: atomic+membarrier under valgrind, no violation, no leak, above the floor"
