#!/usr/bin/env bash
# Checks rcu-stress's command-line contract: every bad argument prints one
# line on stderr, nothing on stdout, and exits 64; --json prints one object;
# each canary is caught by the detector it is aimed at; SIGINT stops a run
# cleanly with partial results; a release build whose reclamation worker
# cannot start prints the library's message.
#
#   scripts/cli-check.sh                 every check
#   scripts/cli-check.sh worker-start    only the worker-start check
#   RCU_STRESS=path scripts/cli-check.sh ...   check another rcu-stress binary
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${RCU_STRESS:-.build/release/rcu-stress}"
[ -x "$bin" ] || swift build -c release --product rcu-stress >/dev/null
failures=0
passes=0
pass() { echo "ok: $*"; passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
summary() {
    echo "$passes passed, $failures failed"
    [ "$failures" -eq 0 ]
}

# Release builds must keep the library's failure messages. The worker of a
# domain's reclamation cannot start when pthread_create fails, here under
# RLIMIT_NPROC as an unprivileged user: rcu-stress storm retires (and so
# starts the worker) on its main thread before it starts any thread of its
# own, so a limit of the user's tasks that exist now plus one makes the
# worker's pthread_create the first to fail. The limit counts every task of
# the user (real uid), other processes' threads included, hence the count.
# The run must die with the library's message, not a bare trap.
check_worker_start() {
    local as_root="" uid=65534 dir tasks limit out status
    if [ "$(id -u)" -ne 0 ]; then
        if sudo -n true 2>/dev/null; then as_root="sudo -n"; else
            echo "SKIP: worker-start check: needs root or passwordless sudo (setpriv to uid $uid)"; return
        fi
    fi
    dir="$(mktemp -d)"
    cp "$bin" "$dir/rcu-stress"
    chmod 755 "$dir" "$dir/rcu-stress"
    tasks="$( (ps -L -U "$uid" --no-headers 2>/dev/null || true) | wc -l)"
    limit=$((tasks + 1))
    set +e
    out="$(cd "$dir" && SWIFT_BACKTRACE=enable=no timeout 60 $as_root setpriv --reuid="$uid" --regid="$uid" --clear-groups \
        prlimit --nproc="$limit:$limit" ./rcu-stress storm --duration 1 --stall 0.2 2>&1)"
    status=$?
    set -e
    rm -rf "$dir"
    if [ "$status" -ne 0 ] && [[ "$out" == *"cannot start the reclamation worker"* ]]; then
        pass "worker-start: with RLIMIT_NPROC=$limit the release build stops with the library's message: $(grep -o 'swift-rcu: cannot start the reclamation worker[^;]*' <<<"$out" | head -1)"
    else
        fail "worker-start: with RLIMIT_NPROC=$limit rcu-stress storm exited $status without the library's message ('cannot start the reclamation worker'); output: $(head -c 300 <<<"$out")"
    fi
}
if [ "${1:-}" = worker-start ]; then
    check_worker_start
    summary
    exit
fi

expect_usage_error() {
    local out err status
    out="$(mktemp)"; err="$(mktemp)"
    set +e; "$bin" "$@" >"$out" 2>"$err"; status=$?; set -e
    if [ "$status" -ne 64 ] || [ -s "$out" ] || [ "$(wc -l <"$err")" -ne 1 ]; then
        fail "rcu-stress $* -> exit $status, stdout $(wc -c <"$out") bytes, stderr: $(cat "$err")"
    else
        pass "rcu-stress $* -> $(cat "$err")"
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
expect_usage_error storm --bound 0
expect_usage_error torture --sabotage sometimes
expect_usage_error torture --workload pointer --sabotage remove-stable
expect_usage_error torture --workload hashmap --sabotage duplicate-stable
expect_usage_error torture --workload list --flavor broken --sabotage remove-stable

# Every flavor of the library runs the mode it asks for.
for flavor_mode in rcu:rseq+membarrier rcu-atomic:atomic+membarrier rcu-fence:rseq+fence \
                   rcu-atomic-fence:atomic+fence rcu-seqcst:atomic+seqcst; do
    flavor="${flavor_mode%%:*}"; mode="${flavor_mode#*:}"
    json="$("$bin" torture --flavor "$flavor" --duration 0.3 --json)"
    if [[ "$json" == *"\"mode\":\"$mode\""* ]] && [[ "$json" == *'"passed":true'* ]]; then
        pass "torture --flavor $flavor runs $mode"
    else
        fail "torture --flavor $flavor did not run $mode cleanly: $json"
    fi
done

# Bounds below the library's guarantee (1,024 per possible CPU) are run,
# reported and not judged; every retired object must still be deinitialised.
json="$("$bin" storm --bound 1 --duration 0.5 --stall 0.2 --retirers 2 --json)"
if [[ "$json" == *'"bound":1,'* ]] && [[ "$json" == *'"leaked":0'* ]] && [[ "$json" == *'"bound_guaranteed":false'* ]]; then
    pass "storm --bound 1 runs: $(grep -o '"peak_pending_exact":[0-9]*' <<<"$json")"
else
    fail "storm --bound 1: $json"
fi

json="$("$bin" torture --flavor broken --duration 2 --json)"
if [[ "$json" == \{*\} ]] && [[ "$json" =~ \"violations\":[1-9] ]]; then
    pass "torture --flavor broken --duration 2 --json reports violations"
else
    fail "broken flavor not caught or not one JSON object: $json"
fi

# The container canaries must be caught by the detector each is aimed at.
for canary in "hashmap broken - poisoned" "list broken - poisoned" \
              "hashmap rcu remove-stable missed_stable" "hashmap liburcu-memb duplicate-stable duplicates" \
              "list rcu-atomic remove-stable missed_stable" "list liburcu-memb duplicate-stable out_of_order"; do
    read -r workload flavor sabotage detector <<<"$canary"
    args=(torture --workload "$workload" --flavor "$flavor" --duration 2 --stop-on-violation --json)
    label="torture --workload $workload --flavor $flavor"
    [ "$sabotage" = - ] || { args+=(--sabotage "$sabotage"); label+=" --sabotage $sabotage"; }
    set +e; json="$("$bin" "${args[@]}")"; status=$?; set -e
    if [ "$status" -eq 0 ] && [[ "$json" == \{*\} ]] && [[ "$json" =~ \"fired\":\[[^]]*\"$detector\" ]]; then
        pass "$label is caught by $detector ($(grep -o '"fired":\[[^]]*\]' <<<"$json"))"
    else
        fail "${args[*]} not caught by $detector (exit $status): $json"
    fi
done

for workload in hashmap list; do
    if "$bin" oracle --workload "$workload" --seed 7 --ops 100000 >/dev/null; then
        pass "oracle --workload $workload --seed 7 --ops 100000: no mismatch"
    else
        fail "oracle --workload $workload reported a mismatch"
    fi
    set +e
    diverged="$(RCU_STRESS_ORACLE_DIVERGE_AT=5000 "$bin" oracle --workload "$workload" --seed 7 --ops 100000 2>&1)"
    status=$?
    set -e
    if [ "$status" -eq 1 ] && [[ "$diverged" == *ismatch* ]]; then
        pass "oracle --workload $workload catches an injected divergence: $(echo "$diverged" | grep -i mismatch | head -1 | cut -c1-120)"
    else
        fail "oracle --workload $workload missed an injected divergence (exit $status)"
    fi
done

# The misuse release builds cannot stop must not hang silently: synchronize()
# inside its own read section is reported (and the report counts the wait).
set +e
selfwait="$(timeout 30 "$bin" stall --inside-read --timeout 0.3 2>&1)"
status=$?
set -e
if [ "$status" -eq 0 ] && [[ "$selfwait" == *"waiting inside read {} sections"* ]]; then
    pass "stall --inside-read: synchronize() inside its own read section is reported"
else
    fail "stall --inside-read exited $status: $selfwait"
fi

out="$(mktemp)"
"$bin" torture --flavor rcu --duration 60 --faults signals >"$out" 2>/dev/null &
pid=$!
sleep 2
kill -INT "$pid"
set +e; wait "$pid"; status=$?; set -e
if [ "$status" -eq 0 ] && grep -q "interrupted: partial results" "$out"; then
    pass "SIGINT stops a torture run cleanly with partial results"
else
    fail "SIGINT run exited $status: $(cat "$out")"
fi
rm -f "$out"

check_worker_start
summary
