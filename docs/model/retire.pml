/*
 * retire.pml -- Promela model of the retire path of the userspace RCU:
 * a retiring thread that is not the grace-period leader, the reclamation
 * worker's detach + grace period + free, a reader, and optionally a
 * synchronize() caller that shares grace periods with the worker; over
 * x86-TSO.
 *
 * Checked with spin; see check.sh (the checks named retire/...) and
 * README.md ("The retire path") in this directory.  The grace-period
 * algorithm itself (two indices, flip, rseq aborts, migration, nesting) is
 * modelled in rcu.pml; this model keeps only what the retire question
 * needs, and README.md explains why each simplification is faithful for it.
 *
 * Threads (each on its own CPU):
 *   W  retirer()  unpublishes A (gp = B), then retire(A) -> enqueue: read
 *                 lock, load shard.current, claim a slot in the chunk it
 *                 loaded (an atomic RMW on chunk.claimed), store the item
 *                 into the slot, read unlock.  If the worker detached the
 *                 chunk between W's load of current and W's claim, the claim
 *                 lands in the detached chunk: a "late claim".
 *   R  reader()   read lock, (B), load gp, use the object (assert that it
 *                 is not poisoned), (D), read unlock.
 *   K  worker()   per batch (processBatch): detach (exchange of
 *                 shard.current), (P-w) or (P), read the grace-period
 *                 sequence, _waitForSequence (under gpLock, run grace
 *                 periods until the target is reached: seq += 1, (A), scans
 *                 of unlock sums, (S), lock sums until balanced, (E) seq +=
 *                 1), then the free: read the detached chunk's claim count
 *                 and slot, poison the object found there (object A),
 *                 recycle the chunk.
 *   L  leader()   (with NSYNC > 0) NSYNC synchronize() calls: (P), read the
 *                 sequence, _waitForSequence.  It can lead the grace period
 *                 the worker's batch waits for, so that (A) is issued by
 *                 another thread than the worker.
 *   memory()      commits the oldest entry of any store buffer at any time.
 *
 * Configuration (-D macros):
 *   NBATCH=n        batches the worker processes (default 2): batch b
 *                   detaches chunk b and installs chunk b+1
 *   NSECT=n         read sections the reader runs (default 1)
 *   NSYNC=n         synchronize() calls of the leader (default 0: no leader)
 *
 *   The worker's ordering point before its grace period (default: the fix)
 *     (default)       (P-w): membarrier() after the detach, before reading
 *                     the sequence (the worker's remote (P))
 *     NO_PW           the worker's (P) is a plain full fence, as before the
 *                     fix                                      -> fails
 *     PE              NO_PW, plus a full fence (P-e) at the top of enqueue
 *                     in the retiring thread (the alternative fix)
 *
 *   Mode of the read-side counters
 *     (default)       rseq+membarrier: each lock / unlock increment is the
 *                     rseq commit, a plain store, or (nondeterministically)
 *                     the atomic fallback path's lock xadd
 *     ATOMIC_MODE     atomic+membarrier: every increment is a lock xadd (a
 *                     full barrier on x86)
 *     FENCE_MODE      rseq+fence / atomic+fence: (P) and (A) are fences in
 *                     the worker (and the leader), (B) and (D) seq_cst
 *                     fences in R and W
 *
 *   Further variants (see README.md)
 *     NO_LATE         W's load of current and its claim are one step, so a
 *                     claim is never late: it lands in the chunk that is
 *                     current at the claim
 *     XCHG_UNPUBLISH  W unpublishes with an atomic exchange (as
 *                     RCUReference.store does): an RMW, so a full barrier
 *     PW_BEFORE_DETACH  MUTANT: the worker's membarrier comes just before
 *                     the detach instead of after it           -> fails
 *     BAD_TARGET      MUTANT: the snapshot's target is (s + 2) & ~1, which
 *                     accepts the end of a grace period already running
 *                     when the snapshot was taken (fails with NSYNC > 0)
 *
 * Properties (safety; pan -DSAFETY):
 *   - the reader never sees the object it loaded from gp poisoned;
 *   - the worker never finds a claimed slot empty after the grace period
 *     (the precondition in processBatch);
 *   - no claim lands in a chunk the worker has already recycled;
 *   - no invalid end state.
 *
 * Memory model: x86-TSO, as in rcu.pml.  Every thread stores into its own
 * FIFO store buffer (a channel); memory() commits the oldest entry of any
 * buffer at any time; loads read memory.  A thread must read its own
 * buffered stores first (store-to-load forwarding), but here no thread
 * loads a location while it may have a store to it buffered: W and R never
 * load what they store; the grace-period sequence is loaded by its writers
 * only after a full barrier ((P) / (P-w) before the snapshot) or inside
 * gpLock, where the holder keeps its own value in a local (`lseq`), read
 * from memory by the lock's RMW, which drains the buffer.  So loads read
 * memory only.  An atomic RMW (lock-prefixed: the claim, the exchange of
 * current, the atomic counter path, gpLock's lock and unlock, which glibc
 * does with lock cmpxchg and xchg) drains the own buffer first and is
 * performed at once.  A membarrier drains the caller's buffer (syscall
 * entry), then runs on every other thread's CPU an IPI that drains that
 * thread's buffer; the IPIs reach the CPUs one at a time, in any order,
 * each a separate step (the other threads and memory() run in between),
 * and the call returns only after all of them.
 */

/* ------------------------------------------------------------------ */
/* configuration                                                       */
/* ------------------------------------------------------------------ */
#ifndef NBATCH
#define NBATCH 2
#endif
#ifndef NSECT
#define NSECT 1
#endif
#ifndef NSYNC
#define NSYNC 0
#endif
#if defined(PE) && !defined(NO_PW)
#define NO_PW
#endif

/* thread ids; R and W are also the CPU slots of the read-side counters */
#define TR 0                 /* reader R */
#define TW 1                 /* retiring thread W */
#define TK 2                 /* reclamation worker */
#define TL 3                 /* synchronize() caller (NSYNC > 0) */
#if NSYNC > 0
#define NTHREADS 4
#else
#define NTHREADS 3
#endif

/* ------------------------------------------------------------------ */
/* shared memory                                                       */
/* ------------------------------------------------------------------ */

/* objects: A is published at the start and retired by W; B replaces it */
#define OBJ_A 0
#define OBJ_B 1
byte gp = OBJ_A;
bit  poisoned[2];

/*
 * Read-side counters: one lock and one unlock word per CPU slot (R's and
 * W's), summed over the slots by each scan.  One index only (README.md
 * explains why that is faithful here: think of each word as the sum of
 * both indices' words, and of the drain as a fast path that retries until
 * it balances).  Threads do not migrate (rcu.pml covers that).
 */
byte lock[2];
byte unlock[2];
byte first;                  /* the slot the scans visit first */

/* The shard: `current` names the chunk being filled; chunks 0..NBATCH.
 * claimed[c] is chunk c's claim counter, item[c] its (only used) slot: W
 * queues one item, so its claim always gets slot 0 and capacity never
 * matters.  recycled[c] (a ghost): the worker has processed and recycled
 * chunk c. */
byte current = 0;
byte claimed[NBATCH + 1];
bit  item[NBATCH + 1];
bit  recycled[NBATCH + 1];

/* grace periods: the sequence (odd while one runs) and gpLock */
byte seq = 0;
bit  gpLock = 0;

/* Store buffer entries. */
#define S_GP     0           /* gp = B          (W's unpublish) */
#define S_LOCK   1           /* lock[me] += 1   (rseq commit: plain store) */
#define S_UNLOCK 2           /* unlock[me] += 1 (rseq commit: plain store) */
#define S_SEQ    3           /* seq += 1        (GP start, relaxed; (E), release) */
#define S_POISON 4           /* poisoned[A] = 1 (the free) */
#define S_ITEM   5           /* S_ITEM + c: item[c] = 1 (release store of A) */
/* W buffers at most 4 stores (gp, lock, item, unlock); R 2 per section;
 * a grace-period runner 2 (its seq stores) plus the poison.  A full
 * buffer stalls its thread, as a real one does. */
#define BUFSZ 4
chan buf[NTHREADS] = [BUFSZ] of { byte };

/* ------------------------------------------------------------------ */
/* store buffers                                                       */
/* ------------------------------------------------------------------ */

/* Commit one buffered store x of thread t (inside atomic).  Counter
 * entries are deltas: each word has one writer thread here. */
inline commit(t, x) {
	if
	:: x == S_GP     -> gp = OBJ_B
	:: x == S_LOCK   -> lock[t]++
	:: x == S_UNLOCK -> unlock[t]++
	:: x == S_SEQ    -> seq++
	:: x == S_POISON -> poisoned[OBJ_A] = 1
	:: x >= S_ITEM   -> item[x - S_ITEM] = 1
	fi
}

/* Empty thread t's store buffer (inside atomic): a full barrier on t's
 * CPU (mfence, a lock-prefixed RMW, a membarrier IPI or syscall entry). */
inline drain_body(t) {
	do
	:: buf[t]?e -> commit(t, e)
	:: empty(buf[t]) -> break
	od;
	e = 0
}

proctype memory() {
	byte e;
end:
	do
	:: atomic { buf[TR]?e -> commit(TR, e); e = 0 }
	:: atomic { buf[TW]?e -> commit(TW, e); e = 0 }
	:: atomic { buf[TK]?e -> commit(TK, e); e = 0 }
#if NSYNC > 0
	:: atomic { buf[TL]?e -> commit(TL, e); e = 0 }
#endif
	od
}

/* ------------------------------------------------------------------ */
/* read side (used by R and by W's enqueue)                            */
/* ------------------------------------------------------------------ */

/*
 * Lock increment.  rseq mode: the restartable section's single commit
 * store, buffered.  An abort (spontaneous, or by the IPI of a membarrier
 * issued with PRIVATE_EXPEDITED_RSEQ) comes before the commit, stores
 * nothing and restarts, so it is the same as the section starting later:
 * no modelling needed (there is no period to re-read: one index).  Or the
 * atomic fallback path: lock xadd, which drains the buffer first.
 */
inline read_lock(t) {
#if defined(ATOMIC_MODE)
	atomic { drain_body(t); lock[t]++ };
#else
	if
	:: buf[t]!S_LOCK                          /* rseq commit */
	:: atomic { drain_body(t); lock[t]++ }    /* atomic fallback */
	fi;
#endif
#ifdef FENCE_MODE
	/* (B) seq_cst fence after the lock increment */
	atomic { drain_body(t) }
#else
	/* (B) compiler barrier only: program order, no hardware order */
	skip
#endif
}

inline read_unlock(t) {
#ifdef FENCE_MODE
	/* (D) seq_cst fence before the unlock increment */
	atomic { drain_body(t) };
#else
	/* (D) compiler barrier; on TSO the unlock store is a release */
	skip;
#endif
#if defined(ATOMIC_MODE)
	atomic { drain_body(t); unlock[t]++ }
#else
	if
	:: buf[t]!S_UNLOCK                        /* rseq commit */
	:: atomic { drain_body(t); unlock[t]++ }  /* atomic fallback */
	fi
#endif
}

/* ------------------------------------------------------------------ */
/* R: a reader of gp                                                   */
/* ------------------------------------------------------------------ */

proctype reader() {
	byte e, o, s = 0;
	do
	:: s < NSECT ->
		read_lock(TR);
		o = gp;                               /* rcu_dereference(gp) */
		assert(poisoned[o] == 0);             /* use the object */
		read_unlock(TR);
		o = 0; s++
	:: else -> break
	od
}

/* ------------------------------------------------------------------ */
/* W: unpublish A, then retire(A)                                      */
/* ------------------------------------------------------------------ */

proctype retirer() {
	byte e, c;

	/* the unpublish: a plain or release store (e.g. an unlink) */
#ifdef XCHG_UNPUBLISH
	atomic { drain_body(TW); gp = OBJ_B };    /* xchg: an RMW */
#else
	buf[TW]!S_GP;
#endif

	/* retire(A) -> enqueue(A) */
#ifdef PE
	/* (P-e) the alternative fix: a full fence at the top of enqueue, so
	 * the unpublish is visible before the load of current */
	atomic { drain_body(TW) };
#endif
	read_lock(TW);                            /* domain._lockUntracked() */
#ifdef NO_LATE
	/* control: the load of current and the claim in one step */
	atomic {
		drain_body(TW); c = current;
		assert(recycled[c] == 0);
		claimed[c]++
	};
#else
	c = current;                              /* shard.current (acquire) */
	/* ...the worker may detach the chunk here: then the claim is late... */
	atomic {
		/* chunk.claimed.wrappingAdd(1, seq_cst): lock xadd */
		drain_body(TW);
		assert(recycled[c] == 0);
		claimed[c]++
	};
#endif
	buf[TW]!S_ITEM + c;                       /* items[slot].store(A, release) */
	c = 0;
	read_unlock(TW)                           /* domain.unlock(token) */
}

/* ------------------------------------------------------------------ */
/* grace periods (used by the worker and the leader)                   */
/* ------------------------------------------------------------------ */

/*
 * membarrier() called by thread me: the syscall entry is a full barrier
 * for the caller; then an IPI on each other thread's CPU, one at a time,
 * in any order, with the threads running in between; the call returns
 * after all of them.  `pend` is the set of CPUs still to be reached.
 */
inline membarrier(me) {
	atomic { drain_body(me); pend = ((1 << NTHREADS) - 1) & ~(1 << me) };
	do
	:: atomic { (pend & 1) != 0 -> drain_body(TR); pend = pend & ~1 }
	:: atomic { (pend & 2) != 0 -> drain_body(TW); pend = pend & ~2 }
	:: atomic { (pend & 4) != 0 -> drain_body(TK); pend = pend & ~4 }
#if NSYNC > 0
	:: atomic { (pend & 8) != 0 -> drain_body(TL); pend = pend & ~8 }
#endif
	:: pend == 0 -> break
	od
}

/*
 * One grace period (_runGracePeriod), gpLock held; lseq is the holder's
 * view of the sequence.
 */
inline grace_period(me) {
	/* gpSequence += 1 (relaxed; "(A) orders it") */
	lseq++; buf[me]!S_SEQ;
	/* (A) */
#ifdef FENCE_MODE
	atomic { drain_body(me) };
#else
	membarrier(me);
#endif
	/* wait until the counters balance: the unlock sum, (S), the lock sum;
	 * each word a separate load */
	do
	:: U = unlock[first];
	   U = U + unlock[1 - first];
	   atomic { drain_body(me); L = lock[first] };     /* (S) + first lock load */
	   L = L + lock[1 - first];
	   if
	   :: U == L -> U = 0; L = 0; break
	   :: else -> U = 0; L = 0
	   fi
	od;
	/* (E) gpSequence += 1 (release) */
	lseq++; buf[me]!S_SEQ
}

/*
 * (P) or (P-w), then the snapshot: target = (s + 3) & ~1, then
 * _waitForSequence(target): under gpLock, run grace periods until the
 * sequence reaches the target.  gpLock's lock and unlock are RMWs.
 */
inline wait_for_sequence(me) {
	target = seq;                              /* _gpSequence (acquire) */
#ifdef BAD_TARGET
	/* MUTANT: (s + 2) & ~1: while a grace period runs (s odd), its own end
	 * is taken as the target, although it began before the snapshot */
	target = (target + 2) & 254;
#else
	target = (target + 3) & 254;               /* _gracePeriodTarget */
#endif
	/* gpLock.lock(), an RMW; the holder then reads the sequence */
	atomic { gpLock == 0 -> drain_body(me); gpLock = 1; lseq = seq };
	do
	:: lseq < target -> grace_period(me)
	:: else -> break
	od;
	atomic { drain_body(me); gpLock = 0; target = 0; lseq = 0 }
}

/* ------------------------------------------------------------------ */
/* the worker: detach, (P-w), grace period, free                       */
/* ------------------------------------------------------------------ */

proctype worker() {
	byte e, pend, b = 0, old, lseq, target, U, L;

	do
	:: b < NBATCH ->
#ifdef PW_BEFORE_DETACH
		/* MUTANT: the membarrier before the detach instead of after it */
		membarrier(TK);
#endif
		/* detach: shard.current.exchange(fresh, acq_rel), an RMW */
		atomic { drain_body(TK); old = current; current = b + 1 };

		/* domain._snapshotState() */
#if defined(FENCE_MODE) || defined(NO_PW) || defined(PW_BEFORE_DETACH)
		/* (P) a plain full fence: orders the worker's own accesses only */
		atomic { drain_body(TK) };
#else
		/* (P-w) the worker's remote (P): membarrier().  W's load of
		 * current that returned the old chunk was performed before the
		 * exchange, so the barrier this runs on W's CPU comes after that
		 * load in W's program order, hence after W's unpublish, which is
		 * therefore visible when this returns. */
		membarrier(TK);
#endif
		wait_for_sequence(TK);

		/* the free: chunk.claimed (acquire), then each claimed slot */
		atomic {
			if
			:: claimed[old] > 0 ->
				/* precondition: no slot is empty after the grace period */
				assert(item[old] == 1);
				buf[TK]!S_POISON                  /* release / free A */
			:: else -> skip
			fi;
			recycled[old] = 1;                    /* recycle(chunk) */
			old = 0
		};
		b++
	:: else -> break
	od
}

/* ------------------------------------------------------------------ */
/* a synchronize() caller that shares grace periods with the worker    */
/* ------------------------------------------------------------------ */

#if NSYNC > 0
proctype leader() {
	byte e, pend, n = 0, lseq, target, U, L;
	do
	:: n < NSYNC ->
		atomic { drain_body(TL) };            /* (P) full fence */
		wait_for_sequence(TL);
		n++
	:: else -> break
	od
}
#endif

init {
	atomic {
		/* which slot the scans visit first (the code scans in slot
		 * order; whether R's or W's CPU comes first is free) */
		if
		:: first = TR
		:: first = TW
		fi;
		run memory();
		run reader();
		run retirer();
		run worker();
#if NSYNC > 0
		run leader()
#endif
	}
}
