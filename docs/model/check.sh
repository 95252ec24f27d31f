#!/usr/bin/env bash
# check.sh -- model-check the userspace RCU models (rcu.pml, retire.pml)
# with spin.
#
# Verifies safety and progress of the algorithm as implemented, in
# membarrier mode and in fence mode, the safety of the retire path
# (retire.pml: the checks named retire/...), and that every deliberately
# broken variant yields a counterexample for the expected reason.  Prints
# one line per check and a total line, and exits 0 only if every selected
# check ran, produced a result, and had its expected outcome.
#
# Models: a check whose name starts with "retire/" runs retire.pml; every
# other check runs rcu.pml.
#
# Environment:
#   JOBS=n     checks run in parallel (default 2)
#   MEMLIM=n   memory bound per verifier run, MB (default 4096)
#   KEEP=1     keep the work directory (pan outputs, counterexample trails)
#   ONLY=re    run only the checks whose name matches the regex (an invalid
#              regex, or one that matches no check, is an error: exit 2)
#   FULL=1     also run the large configuration "two readers that each run a
#              nested section"; it is too big for an exhaustive search here
#              (> 3e8 states) and uses bitstate (supertrace) hashing, i.e.
#              a partial search; ~30 min extra.  (Two readers with two
#              sections each did not finish even as bitstate: > 1.7e9
#              states after 27 min.)
#
# The default checks are all exhaustive (no bitstate, no hash compaction);
# -DCOLLAPSE only compresses stored states losslessly.  A run that hits the
# depth or memory bound is reported as INCONCLUSIVE and makes the script fail.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# model_for NAME -> the model file (in $HERE) that check NAME runs
model_for() {
	case $1 in
		retire/*) echo retire.pml ;;
		*)        echo rcu.pml ;;
	esac
}
JOBS=${JOBS:-2}
MEMLIM=${MEMLIM:-4096}
ONLY=${ONLY:-.}

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v spin >/dev/null 2>&1 || need_pkgs+=(spin)
command -v gcc  >/dev/null 2>&1 || need_pkgs+=(gcc)
if [ ${#need_pkgs[@]} -gt 0 ]; then
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
	echo "installing: ${need_pkgs[*]}"
	$SUDO apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rcu-model.XXXXXX")
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- checks
# name | kind (safety|progress|bitstate) | expected (pass|assert|cycle) | -D flags
#
# expected: pass    = no error may be found
#           assert  = an assertion violation (reader saw poison) must be found
#           reclaim = retire.pml: a violation of a reclamation assertion (a
#                     claimed slot empty after the grace period, or a claim
#                     into a chunk already recycled) must be found
#           cycle   = an acceptance cycle (synchronize never completes)
#
# Configurations: R = reader processes, G = grace periods, S = sections per
# reader, NEST = each section holds a nested pair.  Big ones are listed
# first so that the parallel runs finish together.
CHECKS=$(cat <<'EOF'
impl/mb/progress/R2G2             |progress|pass  |-DNREADERS=2 -DNGP=2
impl/fence/progress/R2G2          |progress|pass  |-DFENCE_MODE -DNREADERS=2 -DNGP=2
neg2/mb/no-C/progress/R2G2        |progress|pass  |-DNO_C -DNREADERS=2 -DNGP=2
find/fence/min/progress/R2G2      |progress|pass  |-DFENCE_MODE -DNO_A -DNO_C -DNO_D -DNREADERS=2 -DNGP=2
impl/mb/safety/R2G2               |safety  |pass  |-DNREADERS=2 -DNGP=2
impl/fence/safety/R2G2            |safety  |pass  |-DFENCE_MODE -DNREADERS=2 -DNGP=2
impl/mb-Arseq/safety/R2G2         |safety  |pass  |-DA_RSEQ -DNREADERS=2 -DNGP=2
impl/mb-Arseq/safety/R1G3S2       |safety  |pass  |-DA_RSEQ -DNREADERS=1 -DNGP=3 -DNSECT=2
impl/mb/progress/R1G3S2           |progress|pass  |-DNREADERS=1 -DNGP=3 -DNSECT=2
impl/fence/progress/R1G3S2        |progress|pass  |-DFENCE_MODE -DNREADERS=1 -DNGP=3 -DNSECT=2
impl/mb/progress/R1G3NEST         |progress|pass  |-DNREADERS=1 -DNGP=3 -DNEST
impl/fence/progress/R1G3NEST      |progress|pass  |-DFENCE_MODE -DNREADERS=1 -DNGP=3 -DNEST
impl/mb/safety/R1G3S2             |safety  |pass  |-DNREADERS=1 -DNGP=3 -DNSECT=2
impl/fence/safety/R1G3S2          |safety  |pass  |-DFENCE_MODE -DNREADERS=1 -DNGP=3 -DNSECT=2
impl/mb/safety/R1G3NEST           |safety  |pass  |-DNREADERS=1 -DNGP=3 -DNEST
impl/fence/safety/R1G3NEST        |safety  |pass  |-DFENCE_MODE -DNREADERS=1 -DNGP=3 -DNEST
neg1/mb/no-A/R1G1                 |safety  |assert|-DNO_A -DNREADERS=1 -DNGP=1
neg2/mb/no-C/safety/R2G2          |safety  |pass  |-DNO_C -DNREADERS=2 -DNGP=2
neg2/mb/no-C/safety/R1G3S2        |safety  |pass  |-DNO_C -DNREADERS=1 -DNGP=3 -DNSECT=2
neg2/mb/no-C/safety/R1G3NEST      |safety  |pass  |-DNO_C -DNREADERS=1 -DNGP=3 -DNEST
neg2/mb/no-C/progress/R1G3S2      |progress|pass  |-DNO_C -DNREADERS=1 -DNGP=3 -DNSECT=2
neg2b/mb/no-C+1phase+rseq/R1G2S2  |safety  |assert|-DNO_C -DSKIP_PHASE1 -DRSEQ_ONLY -DNREADERS=1 -DNGP=2 -DNSECT=2
neg3/mb/locks-first/R1G1NEST      |safety  |assert|-DLOCKS_FIRST -DNREADERS=1 -DNGP=1 -DNEST
neg3/mb/locks-first/R2G1          |safety  |assert|-DLOCKS_FIRST -DNREADERS=2 -DNGP=1
neg4/mb/1phase/R1G2S2             |safety  |assert|-DSKIP_PHASE1 -DNREADERS=1 -DNGP=2 -DNSECT=2
neg5/mb/period-outside+1phase/R1G2S2|safety|assert|-DPERIOD_OUTSIDE_CS -DSKIP_PHASE1 -DRSEQ_ONLY -DNREADERS=1 -DNGP=2 -DNSECT=2
neg6/fence/no-A+no-S/R1G1         |safety  |assert|-DFENCE_MODE -DNO_A -DNO_S -DNREADERS=1 -DNGP=1
neg7/fence/no-B/R1G1              |safety  |assert|-DFENCE_MODE -DNO_B -DNREADERS=1 -DNGP=1
neg8/mb/relaxed-unlock/R1G1       |safety  |assert|-DRELAXED_UNLOCK -DNREADERS=1 -DNGP=1
neg9/mb/bad-unlock-index/R1G1     |progress|cycle |-DBAD_UNLOCK_INDEX -DNREADERS=1 -DNGP=1
find/mb/no-C+no-S/safety/R2G2     |safety  |pass  |-DNO_C -DNO_S -DNREADERS=2 -DNGP=2
find/mb/no-C+no-S/safety/R1G3S2   |safety  |pass  |-DNO_C -DNO_S -DNREADERS=1 -DNGP=3 -DNSECT=2
find/mb/no-C+no-S/safety/R1G3NEST |safety  |pass  |-DNO_C -DNO_S -DNREADERS=1 -DNGP=3 -DNEST
find/fence/min/safety/R2G2        |safety  |pass  |-DFENCE_MODE -DNO_A -DNO_C -DNO_D -DNREADERS=2 -DNGP=2
find/fence/min/safety/R1G3S2      |safety  |pass  |-DFENCE_MODE -DNO_A -DNO_C -DNO_D -DNREADERS=1 -DNGP=3 -DNSECT=2
find/fence/min/safety/R1G3NEST    |safety  |pass  |-DFENCE_MODE -DNO_A -DNO_C -DNO_D -DNREADERS=1 -DNGP=3 -DNEST
find/mb/1phase+rseq/safety/R2G2   |safety  |pass  |-DSKIP_PHASE1 -DRSEQ_ONLY -DNREADERS=2 -DNGP=2
find/mb/1phase+rseq/safety/R1G3S2 |safety  |pass  |-DSKIP_PHASE1 -DRSEQ_ONLY -DNREADERS=1 -DNGP=3 -DNSECT=2
find/mb/1phase+rseq/safety/R1G3NEST|safety |pass  |-DSKIP_PHASE1 -DRSEQ_ONLY -DNREADERS=1 -DNGP=3 -DNEST
EOF
)
# retire.pml (see README.md, "The retire path").  Configurations: B =
# batches of the worker, S = read sections of the reader, L = synchronize()
# calls of a second grace-period leader (no leader without L).
CHECKS="$CHECKS
$(cat <<'EOF'
retire/mb/Pw/B2S2L2               |safety  |pass  |-DNBATCH=2 -DNSECT=2 -DNSYNC=2
retire/mb/Pw/B2S2L1               |safety  |pass  |-DNBATCH=2 -DNSECT=2 -DNSYNC=1
retire/mb/Pw/B3L1                 |safety  |pass  |-DNBATCH=3 -DNSYNC=1
retire/mb/Pw/B2S2                 |safety  |pass  |-DNBATCH=2 -DNSECT=2
retire/mb-atomic/Pw/B2L1          |safety  |pass  |-DATOMIC_MODE -DNBATCH=2 -DNSYNC=1
retire/fence/P/B2L1               |safety  |pass  |-DFENCE_MODE -DNBATCH=2 -DNSYNC=1
retire/mb/Pe/B2S2L1               |safety  |pass  |-DPE -DNBATCH=2 -DNSECT=2 -DNSYNC=1
retire/mb/no-Pw/B1                |safety  |assert|-DNO_PW -DNBATCH=1
retire/mb/no-Pw/B2L1              |safety  |assert|-DNO_PW -DNBATCH=2 -DNSYNC=1
retire/mb/Pw-before-detach/B1     |safety  |assert|-DPW_BEFORE_DETACH -DNBATCH=1
retire/mb/Pw+bad-target/B1L1      |safety  |reclaim|-DBAD_TARGET -DNBATCH=1 -DNSYNC=1
retire/find/mb/no-Pw+on-time/B2S2L1|safety |pass  |-DNO_PW -DNO_LATE -DNBATCH=2 -DNSECT=2 -DNSYNC=1
retire/find/mb-atomic/no-Pw/B2S2L1|safety  |pass  |-DNO_PW -DATOMIC_MODE -DNBATCH=2 -DNSECT=2 -DNSYNC=1
retire/find/mb/no-Pw+xchg/B2S2L1  |safety  |pass  |-DNO_PW -DXCHG_UNPUBLISH -DNBATCH=2 -DNSECT=2 -DNSYNC=1
EOF
)"

# ---------------------------------------------------------------- runner
# run_one NAME KIND EXPECT FLAGS  -> writes $WORK/<id>/result (one line)
run_one() {
	local name=$1 kind=$2 expect=$3 flags=$4
	local id=${name//\//_}
	local d="$WORK/$id"
	local model
	model=$(model_for "$name")
	mkdir -p "$d"
	cp "$HERE/$model" "$d/$model"
	local out outcome states secs cpu reason ok rc wall usr sys aexpr=''
	local TIMEFORMAT='%R %U %S'
	set +e
	{ time (
		cd "$d"
		# shellcheck disable=SC2086
		spin -a $flags "$model" >spin.log 2>&1
		if [ "$kind" = safety ]; then
			gcc -O2 -w -DSAFETY -DNOCLAIM -DCOLLAPSE -DMEMLIM="$MEMLIM" \
				-o pan pan.c >gcc.log 2>&1
			./pan -m50000 -w26 >pan.out 2>&1 || true
		elif [ "$kind" = bitstate ]; then
			gcc -O2 -w -DSAFETY -DNOCLAIM -DBITSTATE \
				-o pan pan.c >gcc.log 2>&1
			./pan -m50000 -w34 -k3 >pan.out 2>&1 || true
		else
			gcc -O2 -w -DCOLLAPSE -DNFAIR=4 -DMEMLIM="$MEMLIM" \
				-o pan pan.c >gcc.log 2>&1
			./pan -a -f -N progress -m50000 -w26 >pan.out 2>&1 || true
		fi
	) ; } 2>"$d/time.txt"
	rc=$?
	set -e
	if [ "$rc" -ne 0 ]; then
		echo "FAIL $name: spin or gcc failed (see $d)" >"$d/result"
		return 0
	fi
	read -r wall usr sys <"$d/time.txt"
	secs=$(awk -v w="$wall" 'BEGIN { printf "%.1f", w }')
	cpu=$(awk -v u="$usr" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
	out="$d/pan.out"
	states=$(awk '/states, stored/ { print $1; exit }' "$out")
	states=${states:-?}
	if grep -q -e 'max search depth too small' -e 'reached -DMEMLIM bound' \
	        -e 'out of memory' "$out"; then
		outcome=INCONCLUSIVE
	elif grep -q 'errors: 0' "$out"; then
		outcome=pass
	elif grep -q 'assertion violated' "$out"; then
		# which assertion: the reader's poison check, or (retire.pml) one
		# of the reclamation assertions
		aexpr=$(sed -n 's/.*assertion violated \(.*\) (at depth.*/\1/p' "$out" | head -1)
		case $aexpr in
			*poisoned*)        outcome=assert ;;
			*recycled*|*item*) outcome=reclaim ;;
			*)                 outcome=assert-other ;;
		esac
	elif grep -q 'acceptance cycle' "$out"; then
		outcome=cycle
	elif grep -q 'invalid end state' "$out"; then
		outcome=deadlock
	else
		outcome=unknown
	fi
	if [ "$outcome" = "$expect" ]; then ok=OK; else ok=FAIL; fi
	case $outcome in
		pass)   reason="no error"
		        if [ "$kind" = bitstate ]; then
		            reason="no error (partial search, hash factor $(awk '/hash factor/ { print $3; exit }' "$out"))"
		        fi ;;
		assert) reason="counterexample: reader saw poison" ;;
		reclaim) reason="counterexample: reclamation assertion $aexpr" ;;
		assert-other) reason="counterexample: assertion $aexpr" ;;
		cycle)  reason="counterexample: synchronize never completes" ;;
		*)      reason="$outcome" ;;
	esac
	printf '%-4s %-38s %-8s expect=%-6s got=%-6s states=%-11s wall=%6ss cpu=%6ss  %s\n' \
		"$ok" "$name" "$kind" "$expect" "$outcome" "$states" "$secs" "$cpu" "$reason" \
		>"$d/result"
	return 0
}

if [ "${FULL:-0}" = 1 ]; then
	CHECKS="$(cat <<'EOF'
big/mb/safety/R2G1NEST            |bitstate|pass  |-DNREADERS=2 -DNGP=1 -DNEST
big/mb/no-C/safety/R2G1NEST       |bitstate|pass  |-DNO_C -DNREADERS=2 -DNGP=1 -DNEST
big/fence/safety/R2G1NEST         |bitstate|pass  |-DFENCE_MODE -DNREADERS=2 -DNGP=1 -DNEST
EOF
)
$CHECKS"
fi

# ---------------------------------------------------------------- selection
# The table is parsed and the selection validated before anything runs.
set +e
[[ "" =~ $ONLY ]]
only_rc=$?
set -e
if [ "$only_rc" -eq 2 ]; then
	echo "check.sh: ONLY='$ONLY' is not a valid regular expression" >&2
	exit 2
fi
rows=0
sel_name=(); sel_kind=(); sel_expect=(); sel_flags=()
declare -A seen=()
while IFS='|' read -r name kind expect flags; do
	name=$(echo "$name" | xargs); kind=$(echo "$kind" | xargs)
	expect=$(echo "$expect" | xargs); flags=$(echo "$flags" | xargs)
	[ -n "$name" ] || continue
	rows=$((rows + 1))
	if [ -n "${seen[$name]:-}" ]; then
		# two rows with one name would share a work directory and a result
		echo "check.sh: duplicate check name in the table: $name" >&2
		exit 2
	fi
	seen[$name]=1
	case $kind in safety|progress|bitstate) ;; *)
		echo "check.sh: check $name: unknown kind '$kind'" >&2; exit 2 ;;
	esac
	case $expect in pass|assert|reclaim|cycle) ;; *)
		echo "check.sh: check $name: unknown expected outcome '$expect'" >&2; exit 2 ;;
	esac
	[[ $name =~ $ONLY ]] || continue
	sel_name+=("$name"); sel_kind+=("$kind")
	sel_expect+=("$expect"); sel_flags+=("$flags")
done <<<"$CHECKS"
expected=${#sel_name[@]}
if [ "$expected" -eq 0 ]; then
	echo "check.sh: ONLY='$ONLY' matches none of the $rows checks; nothing was checked" >&2
	exit 2
fi

# ---------------------------------------------------------------- run
running=0
launched=0
start=$(date +%s)
for i in "${!sel_name[@]}"; do
	run_one "${sel_name[$i]}" "${sel_kind[$i]}" "${sel_expect[$i]}" "${sel_flags[$i]}" &
	launched=$((launched + 1))
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done
wait || true

echo "spin: $(spin -V 2>&1 | head -1)"
echo "models: $HERE/rcu.pml, $HERE/retire.pml (the checks named retire/...)"
bad=0
results=0
ok=0
for name in "${sel_name[@]}"; do
	r="$WORK/${name//\//_}/result"
	if [ -f "$r" ]; then
		cat "$r"
		results=$((results + 1))
		if grep -q '^OK ' "$r"; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
	else
		echo "FAIL $name: no result"
		bad=$((bad + 1))
	fi
done
if [ "$ONLY" = . ]; then
	what="all $rows table rows"
else
	what="the rows matching ONLY='$ONLY', of $rows"
fi
echo "total wall time: $(( $(date +%s) - start ))s, checks expected: $expected ($what), run: $launched, results: $results, OK: $ok, unexpected: $bad"
if [ "$launched" -ne "$expected" ] || [ "$results" -ne "$expected" ] || [ "$ok" -ne "$expected" ]; then
	echo "FAIL: $expected checks expected, $launched run, $results with a result, $ok with the expected outcome" >&2
	if [ "$bad" -eq 0 ]; then bad=1; fi
fi
if [ "$bad" -ne 0 ]; then
	KEEP=1
	exit 1
fi
exit 0
