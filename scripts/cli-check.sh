#!/usr/bin/env bash
# Checks rcu-stress's command-line contract: every bad argument prints one
# line on stderr, nothing on stdout, and exits 64; --json prints one object;
# SIGINT stops a run cleanly with partial results.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/rcu-stress
[ -x "$bin" ] || swift build -c release --product rcu-stress >/dev/null
failures=0
expect_usage_error() {
    local out err status
    out="$(mktemp)"; err="$(mktemp)"
    set +e; "$bin" "$@" >"$out" 2>"$err"; status=$?; set -e
    if [ "$status" -ne 64 ] || [ -s "$out" ] || [ "$(wc -l <"$err")" -ne 1 ]; then
        echo "FAIL: rcu-stress $* -> exit $status, stdout $(wc -c <"$out") bytes, stderr: $(cat "$err")"
        failures=$((failures + 1))
    else
        echo "ok: rcu-stress $* -> $(cat "$err")"
    fi
    rm -f "$out" "$err"
}
expect_usage_error frobnicate
expect_usage_error torture --flavor nope
expect_usage_error torture --workload tree
expect_usage_error torture --faults migrate,bogus
expect_usage_error torture --duration 0
expect_usage_error torture --duration -3
expect_usage_error torture --readers 100000
expect_usage_error torture --updaters 0
expect_usage_error torture --gp sometimes
expect_usage_error torture --duration
expect_usage_error bench --suite everything
expect_usage_error bench --threads 0
expect_usage_error bench --rounds x
expect_usage_error bench --unknown 1
expect_usage_error oracle
expect_usage_error oracle --workload pointer
expect_usage_error oracle --workload hashmap --ops 0
expect_usage_error oracle --workload list --seed -1
expect_usage_error stall --inside-read --seconds 3

json="$("$bin" torture --flavor broken --duration 2 --json)"
if [[ "$json" == \{*\} ]] && [[ "$json" =~ \"violations\":[1-9] ]]; then
    echo "ok: torture --flavor broken --duration 2 --json reports violations"
else
    echo "FAIL: broken flavor not caught or not one JSON object: $json"; failures=$((failures + 1))
fi

for workload in hashmap list; do
    json="$("$bin" torture --workload "$workload" --flavor broken --duration 2 --json)"
    if [[ "$json" == \{*\} ]] && [[ "$json" =~ \"violations\":[1-9] ]]; then
        echo "ok: torture --workload $workload --flavor broken reports violations"
    else
        echo "FAIL: broken flavor not caught on $workload: $json"; failures=$((failures + 1))
    fi
    if "$bin" oracle --workload "$workload" --seed 7 --ops 100000 >/dev/null; then
        echo "ok: oracle --workload $workload --seed 7 --ops 100000: no mismatch"
    else
        echo "FAIL: oracle --workload $workload reported a mismatch"; failures=$((failures + 1))
    fi
    set +e
    diverged="$(RCU_STRESS_ORACLE_DIVERGE_AT=5000 "$bin" oracle --workload "$workload" --seed 7 --ops 100000 2>&1)"
    status=$?
    set -e
    if [ "$status" -eq 1 ] && [[ "$diverged" == *ismatch* ]]; then
        echo "ok: oracle --workload $workload catches an injected divergence: $(echo "$diverged" | grep -i mismatch | head -1 | cut -c1-120)"
    else
        echo "FAIL: oracle --workload $workload missed an injected divergence (exit $status)"; failures=$((failures + 1))
    fi
done

# The misuse release builds cannot stop must not hang silently: synchronize()
# inside its own read section is reported (and the report counts the wait).
set +e
selfwait="$(timeout 30 "$bin" stall --inside-read --timeout 0.3 2>&1)"
status=$?
set -e
if [ "$status" -eq 0 ] && [[ "$selfwait" == *"waiting inside read {} sections"* ]]; then
    echo "ok: stall --inside-read: synchronize() inside its own read section is reported"
else
    echo "FAIL: stall --inside-read exited $status: $selfwait"; failures=$((failures + 1))
fi

out="$(mktemp)"
"$bin" torture --flavor rcu --duration 60 --faults signals >"$out" 2>/dev/null &
pid=$!
sleep 2
kill -INT "$pid"
set +e; wait "$pid"; status=$?; set -e
if [ "$status" -eq 0 ] && grep -q "interrupted: partial results" "$out"; then
    echo "ok: SIGINT stops a torture run cleanly with partial results"
else
    echo "FAIL: SIGINT run exited $status: $(cat "$out")"; failures=$((failures + 1))
fi
rm -f "$out"
echo "$(( 28 - failures )) passed, $failures failed"
[ "$failures" -eq 0 ]
