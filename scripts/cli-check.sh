#!/usr/bin/env bash
# Checks rcu-stress's command-line contract (shared/design/stress-contract.md)
# and that its harness can fail:
# - bad arguments: one line on stderr ("rcu-stress: ..."), nothing on stdout,
#   exit 64, a value given to an on/off flag included; help on stdout, exit 0,
#   with the accepted values of every enumerated option;
# - --impls takes the contract's names of the chosen suite, in every suite,
#   and each suite runs exactly the impls it names;
# - no result is lost: a failed write to stdout or --svg is reported on
#   stderr with a non-zero exit, an --svg path is checked before measuring,
#   and a closed stdout does not lose the isolated child's result;
# - SIGINT and SIGTERM stop every command within a bound (10 s here; the
#   contract says about a second), print what it has ("interrupted": true)
#   and exit 128 + n, which wins over the result code; the isolated child's
#   interruption is propagated;
# - stall accepts either count at an exact multiple of the timeout;
# - live progress on a terminal (a pty here), none when stderr is not one;
# - the source layout (no file over 400 lines) and that swift-argument-parser
#   is a dependency of rcu-stress only;
# - each flavor runs its mode, each canary is caught by its detector, the
#   oracles catch an injected divergence, and a release build whose
#   reclamation worker cannot start prints the library's message.
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
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

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
    local out="$work/usage.out" err="$work/usage.err" status word missing=""
    set +e; timeout 60 "$bin" "$@" >"$out" 2>"$err"; status=$?; set -e
    # NAMING="words": the line must also name each (the bad value, the accepted ones).
    for word in ${NAMING:-}; do grep -qF -- "$word" "$err" || missing+=" $word"; done
    if [ "$status" -ne 64 ] || [ -s "$out" ] || [ "$(wc -l <"$err")" -ne 1 ] || ! grep -q '^rcu-stress: ' "$err" || [ -n "$missing" ]; then
        fail "rcu-stress $* -> exit $status, stdout $(wc -c <"$out") bytes, stderr: $(cat "$err")${missing:+ (does not name:$missing)}"
    else
        pass "rcu-stress $* -> $(cat "$err")"
    fi
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
# A value given to an on/off flag is a bad argument; so is anything after
# `help` but a command's name, and an empty or foreign --impls entry.
expect_usage_error torture --json=no
expect_usage_error torture --stop-on-violation=0
expect_usage_error stall --inside-read=no
expect_usage_error --quick=yes
expect_usage_error help extra
expect_usage_error help torture extra
expect_usage_error --quick extra
expect_usage_error torture extra
expect_usage_error bench --impls rcu,,mutex
expect_usage_error bench --impls rcu,
expect_usage_error bench --suite read-side --impls RCUHashMap
expect_usage_error bench --suite hashmap --impls rcu
expect_usage_error bench --suite list --impls Mutex
expect_usage_error bench --suite snapshot --impls mutex
expect_usage_error bench --svg ''
expect_usage_error storm --stall 0
expect_usage_error stall --timeout nan
NAMING="nope rcu-seqcst broken" expect_usage_error torture --flavor nope
NAMING="rcu-seqcst broken" expect_usage_error torture --flavor
NAMING="--flavor --sabotage --stop-on-violation" expect_usage_error torture --flavour rcu
NAMING="bogus churn fork" expect_usage_error torture --faults migrate,bogus
NAMING="everything read-side all" expect_usage_error bench --suite everything
NAMING="rcu cds_lfht Mutex<Dictionary>" expect_usage_error bench --suite hashmap --impls rcu
NAMING="x integer" expect_usage_error bench --rounds x
NAMING="frobnicate torture --quick" expect_usage_error frobnicate

# Help: stdout, exit 0, nothing on stderr; every enumerated option lists its
# accepted values (torture --help: every flavor).
expect_help() {
    local out="$work/help.out" err="$work/help.err" status missing=()
    local words="$1"; shift
    set +e; timeout 60 "$bin" "$@" >"$out" 2>"$err"; status=$?; set -e
    for word in $words; do grep -qF -- "$word" "$out" || missing+=("$word"); done
    if [ "$status" -eq 0 ] && [ -s "$out" ] && [ ! -s "$err" ] && [ ${#missing[@]} -eq 0 ]; then
        pass "rcu-stress $* -> help on stdout ($(wc -l <"$out") lines, lists: ${words:-its usage})"
    else
        fail "rcu-stress $* -> exit $status, stderr $(wc -c <"$err") bytes, missing from the help: ${missing[*]:-none}"
    fi
}
expect_help "torture bench storm oracle stall tour" --help
expect_help "torture bench storm oracle stall tour" -h
expect_help "torture bench storm oracle stall tour" help
expect_help "--quick" help tour
expect_help "--quick" tour --help
expect_help "rcu rcu-atomic rcu-fence rcu-atomic-fence rcu-seqcst liburcu-memb broken pointer snapshot hashmap list sync async poll retire mixed migrate signals churn oversubscribe fork remove-stable duplicate-stable --stop-on-violation --json --dwell" torture --help
expect_help "read-side synchronize retire snapshot hashmap list all RCUSnapshot RCUReference Mutex RCUHashMap cds_lfht Mutex<Dictionary> RCUList cds_list_rcu Mutex<Array> pthread-rwlock --impls --svg" bench --help
expect_help "hashmap list --seed --ops --readers" oracle --help
expect_help "--duration --stall --bound --retirers" storm --help
expect_help "--seconds --timeout --inside-read" help stall

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

# --impls: each suite takes the contract's names and runs exactly those.
impls_of() {  # the impl names in a bench JSON object, sorted and unique
    python3 -c 'import json, sys; print(",".join(sorted({r["impl"] for r in json.load(sys.stdin)["results"]})))'
}
check_impls() {
    local suite="$1" names="$2" json got want
    set +e; json="$(timeout 120 "$bin" bench --suite "$suite" --impls "$names" --duration 0.02 --rounds 1 --threads 1 --json 2>/dev/null)"; set -e
    got="$(impls_of <<<"$json" 2>/dev/null || echo "(not JSON)")"
    want="$(tr ',' '\n' <<<"$names" | sort -u | paste -sd, -)"
    if [ "$got" = "$want" ]; then
        pass "bench --suite $suite --impls $names runs exactly $got"
    else
        fail "bench --suite $suite --impls $names ran '$got', not '$want'"
    fi
}
for name in rcu rcu-atomic rcu-fence liburcu-memb pthread-rwlock mutex; do check_impls read-side "$name"; done
check_impls synchronize rcu,mutex
check_impls retire liburcu-memb,rcu-fence
for name in RCUSnapshot RCUReference liburcu-memb Mutex; do check_impls snapshot "$name"; done
for name in RCUHashMap cds_lfht 'Mutex<Dictionary>'; do check_impls hashmap "$name"; done
for name in RCUList cds_list_rcu 'Mutex<Array>'; do check_impls list "$name"; done

# No result is lost. A failed write to stdout: a message on stderr, the
# result after it there, and a non-zero exit.
set +e
timeout 60 "$bin" torture --duration 0.3 --json >/dev/full 2>"$work/full.err"; status=$?
set -e
if [ "$status" -ne 0 ] && grep -q "cannot write to standard output" "$work/full.err" && grep -q '"passed":true' "$work/full.err"; then
    pass "torture --json >/dev/full -> exit $status: $(head -1 "$work/full.err")"
else
    fail "torture --json >/dev/full -> exit $status, stderr: $(head -c 300 "$work/full.err")"
fi
set +e
timeout 60 "$bin" torture --duration 0.3 --json 2>"$work/pipe.err" | true; status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] && grep -q "Broken pipe" "$work/pipe.err"; then
    pass "torture --json | (a reader that left) -> exit $status: $(head -1 "$work/pipe.err")"
else
    fail "torture --json into a closed pipe -> exit $status, stderr: $(head -c 300 "$work/pipe.err")"
fi
set +e
timeout 60 "$bin" bench --suite synchronize --impls rcu --duration 0.05 --rounds 1 --svg /dev/full >/dev/null 2>"$work/svg.err"; status=$?
set -e
if [ "$status" -ne 0 ] && grep -q "/dev/full" "$work/svg.err"; then
    pass "bench --svg /dev/full -> exit $status: $(cat "$work/svg.err")"
else
    fail "bench --svg /dev/full -> exit $status, stderr: $(cat "$work/svg.err")"
fi
# The path is checked before measuring: 60 s of bench must not run first.
start=$(date +%s)
set +e
timeout 60 "$bin" bench --suite read-side --duration 60 --svg /nonexistent/x.svg >"$work/svg.out" 2>"$work/svg.err"; status=$?
set -e
elapsed=$(( $(date +%s) - start ))
if [ "$status" -ne 0 ] && [ "$elapsed" -le 10 ] && [ ! -s "$work/svg.out" ] && [ "$(wc -l <"$work/svg.err")" -eq 1 ]; then
    pass "bench --svg /nonexistent/x.svg fails before measuring (exit $status after ${elapsed} s): $(cat "$work/svg.err")"
else
    fail "bench --svg /nonexistent/x.svg -> exit $status after ${elapsed} s, stdout $(wc -c <"$work/svg.out") bytes, stderr: $(cat "$work/svg.err")"
fi
set +e
timeout 60 "$bin" bench --suite synchronize --impls rcu,liburcu-memb --duration 0.05 --rounds 1 --svg "$work/chart.svg" >/dev/null 2>&1; status=$?
set -e
if [ "$status" -eq 0 ] && grep -q '^<svg' "$work/chart.svg" && grep -q 'synchronize idle' "$work/chart.svg"; then
    pass "bench --svg FILE writes the chart ($(wc -c <"$work/chart.svg") bytes)"
else
    fail "bench --svg FILE -> exit $status, file: $(head -c 200 "$work/chart.svg" 2>/dev/null)"
fi
# The isolated child's result travels on a descriptor of its own: with
# stdout closed the canary is still caught (and the lost JSON is on stderr).
set +e
timeout 60 "$bin" torture --workload list --flavor broken --duration 1 --json >&- 2>"$work/closed.err"; status=$?
set -e
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ] && grep -q '"passed":true' "$work/closed.err" \
   && grep -q '"fired":\[[^]]*"poisoned"' "$work/closed.err" && grep -q "the canary was caught" "$work/closed.err"; then
    pass "torture --workload list --flavor broken --json >&- -> exit $status (stdout lost), the canary caught: $(tail -1 "$work/closed.err")"
else
    fail "torture --workload list --flavor broken --json >&- -> exit $status, stderr: $(head -c 400 "$work/closed.err")"
fi

# Signals: SIGINT to the process group (Ctrl-C), SIGTERM to the process (or
# to the isolated child alone). The command must exit 128 + n within 10 s of
# the signal and print what it has. setsid gives the run a process group of
# its own (same pid), so Ctrl-C reaches it and its isolated child only.
check_interrupt() {
    local signal="$1" target="$2" after="$3" pattern="$4"; shift 4
    local out="$work/int.out" pid child status waited=0 expected
    expected=$(( 128 + $(kill -l "$signal") ))
    setsid "$bin" "$@" >"$out" 2>/dev/null &
    pid=$!
    sleep "$after"
    if ! kill -0 "$pid" 2>/dev/null; then
        set +e; wait "$pid"; status=$?; set -e
        fail "'$*' ended (exit $status) before the SIG$signal it was to get after ${after} s: $(head -c 300 "$out")"
        return
    fi
    case "$target" in
        group) kill -s "$signal" -- "-$pid" 2>/dev/null || true ;;
        process) kill -s "$signal" "$pid" 2>/dev/null || true ;;
        child)  # the isolated child: a child process of one of the run's threads
            child="$(cat /proc/"$pid"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -m1 . || true)"
            if [ -z "$child" ]; then fail "'$*': no child process to signal"; kill -KILL "$pid"; wait "$pid" || true; return; fi
            kill -s "$signal" "$child" 2>/dev/null || true ;;
    esac
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    set +e; wait "$pid"; status=$?; set -e
    if [ "$status" -eq "$expected" ] && [ "$waited" -lt 100 ] && grep -q -- "$pattern" "$out"; then
        pass "SIG$signal to the $target of '$*' after ${after} s -> exit $status within $(( (waited + 1) / 10 )).$(( (waited + 1) % 10 )) s, prints '$pattern'"
    else
        fail "SIG$signal to the $target of '$*' -> exit $status (want $expected) after $(( waited / 10 )) s; output: $(head -c 300 "$out")"
    fi
}
check_interrupt TERM process 1.5 '"interrupted":true' torture --duration 60 --json
check_interrupt INT group 1.5 'interrupted: partial results' torture --duration 60 --faults signals
# A caught canary would exit 0; the signal's code wins.
check_interrupt INT group 1.5 '"passed":true' torture --flavor broken --duration 60 --json
check_interrupt INT group 1.5 '"interrupted":true' torture --workload hashmap --duration 60 --faults fork --json
check_interrupt INT group 2 '"interrupted":true' bench --suite synchronize --duration 30 --rounds 30 --json
check_interrupt TERM process 2 'interrupted: partial results' bench --suite hashmap --duration 60
check_interrupt INT group 2 '"interrupted":true' storm --duration 60 --stall 30 --json
check_interrupt TERM process 1.5 '"interrupted":true' oracle --workload hashmap --ops 1000000000 --json
check_interrupt INT group 1.5 'interrupted: partial results' oracle --workload list --ops 1000000000
check_interrupt INT group 1.5 '"interrupted":true' stall --seconds 60 --json
check_interrupt TERM process 1.5 '"interrupted":true' stall --inside-read --timeout 60 --json
check_interrupt INT group 3 'interrupted: partial results'
check_interrupt TERM process 3 'interrupted: partial results' --quick
# The isolated child (broken flavor on a container): a signal to the parent
# is forwarded, and a signal to the child alone interrupts the parent too.
# (The list, not the hashmap: the hashmap canary's child may die of its
# early frees, and so end, before the signal.)
check_interrupt TERM process 1.5 '"interrupted":true' torture --workload list --flavor broken --duration 60 --json
check_interrupt INT group 1.5 '"interrupted":true' torture --workload list --flavor broken --duration 60 --json
check_interrupt TERM child 1.5 '"interrupted":true' torture --workload list --flavor broken --duration 60 --json

# stall: at an exact multiple of the timeout the last report races the
# reader's exit, so either count is accepted, and the output says so.
check_stall() {
    local words="$1"; shift
    set +e; out="$(timeout 60 "$bin" stall "$@" 2>/dev/null)"; status=$?; set -e
    if [ "$status" -eq 0 ] && [[ "$out" == *"$words"* ]] && [[ "$out" == *PASS* ]]; then
        pass "stall $* -> PASS, $(grep -o 'stall report(s), expected [0-9]*\( or [0-9]*\)\?' <<<"$out")"
    else
        fail "stall $* -> exit $status: $out"
    fi
}
check_stall "expected 2 or 3" --seconds 3 --timeout 1
check_stall "expected 0 or 1" --seconds 3 --timeout 3
check_stall "expected 2" --seconds 2.5 --timeout 1

# Progress: a live line on a terminal (a pty from script(1)) whose counts
# move during the run; none when stderr is not a terminal.
check_progress() {
    local label="$1" pattern="$2"; shift 2
    local transcript lines
    # The transcript of the command on a pty, one line per redraw.
    transcript="$(timeout 120 script -qec "$(printf '%q ' "$@")" /dev/null </dev/null 2>&1 | tr '\r' '\n' || true)"
    lines="$(grep -a -c -- "$pattern" <<<"$transcript" || true)"
    if [ "$lines" -ge 1 ]; then
        pass "$label: $lines live line(s) on a terminal, e.g. '$(grep -a -- "$pattern" <<<"$transcript" | tail -1 | tr -cd '[:print:]' | cut -c1-110)'"
    else
        fail "$label: no live line matching '$pattern' on a terminal: $(tr -cd '[:print:]\n' <<<"$transcript" | head -c 300)"
    fi
}
if command -v script >/dev/null; then
    # Reads must be non-zero before the run ends (readers publish per batch).
    check_progress "torture" '\[rcu\] [0-9.]*s reads [1-9][0-9]* updates [0-9]* grace periods [0-9]* violations 0' \
        "$bin" torture --duration 1.5
    check_progress "torture --workload list" '\[rcu\] [0-9.]*s reads [1-9][0-9]* updates [1-9][0-9]* grace periods [1-9]' \
        "$bin" torture --workload list --duration 1.5
    check_progress "bench" 'synchronize idle x1 round 2/2 rcu' \
        "$bin" bench --suite synchronize --impls rcu,mutex --duration 0.2 --rounds 2
    check_progress "storm" 'storm [0-9.]*s deinitialised [0-9]* outstanding' "$bin" storm --duration 1.5 --stall 0.5
    check_progress "oracle hashmap" 'oracle hashmap: [1-9][0-9]* of 2000000 operations' \
        "$bin" oracle --workload hashmap --ops 2000000
    check_progress "oracle list" 'oracle list: [1-9][0-9]* of 2000000 operations' \
        "$bin" oracle --workload list --ops 2000000 --readers 0
else
    fail "progress: script(1) (util-linux) is missing, so no terminal to check on"
fi
set +e; timeout 60 "$bin" torture --duration 1 >/dev/null 2>"$work/quiet.err"; set -e
if [ ! -s "$work/quiet.err" ]; then
    pass "no progress line when stderr is not a terminal"
else
    fail "torture wrote to a non-terminal stderr: $(head -c 200 "$work/quiet.err" | tr -cd '[:print:]')"
fi

# Layout: folders by what a reader looks for, no file over 400 lines.
long="$(find Stress/rcu-stress -name '*.swift' -exec wc -l {} + | awk '$2 != "total" && $1 > 400 { print $2 " (" $1 ")" }')"
missing=""
for dir in Commands Harness Workloads/Pointer Workloads/Snapshot Workloads/HashMap Workloads/List; do
    [ -d "Stress/rcu-stress/$dir" ] || missing+=" $dir"
done
if [ -z "$long" ] && [ -z "$missing" ]; then
    pass "layout: Commands, Harness, Workloads/{Pointer,Snapshot,HashMap,List}; longest file $(find Stress/rcu-stress -name '*.swift' -exec wc -l {} + | sort -n | grep -v total | tail -1 | awk '{ print $2 " (" $1 " lines)" }')"
else
    fail "layout: missing folders:${missing:- none}; files over 400 lines: ${long:-none}"
fi
# swift-argument-parser is rcu-stress's dependency only.
if deps="$(swift package dump-package 2>/dev/null | python3 -c '
import json, sys
package = json.load(sys.stdin)
for target in package["targets"]:
    products = [d["product"][0] for d in target.get("dependencies", []) if "product" in d]
    print(target["name"] + ":" + ",".join(products))
')"; then
    if grep -qx 'rcu-stress:ArgumentParser' <<<"$deps" && ! grep -v '^rcu-stress:' <<<"$deps" | grep -q ':.\+'; then
        pass "swift-argument-parser is a dependency of rcu-stress only ($(tr '\n' ' ' <<<"$deps"))"
    else
        fail "package dependencies: $(tr '\n' ' ' <<<"$deps")"
    fi
else
    fail "swift package dump-package failed"
fi

check_worker_start
summary
