/*
 * rcu.pml -- Promela model of the two-index, per-CPU-counter userspace RCU
 * (rseq fast path + atomic fallback, membarrier or fence mode).
 *
 * Checked with spin; see check.sh and README.md in this directory.
 *
 * One file, many configurations.  Everything is selected with -D macros:
 *
 *   Shape of the run
 *     NREADERS=n      reader processes (1 or 2; default 2)
 *     NGP=n           grace periods performed by the updater (default 2)
 *     NSECT=n         read-side critical sections per reader (default 1)
 *     NEST            every section contains one nested lock/unlock pair
 *     MAXABORT=n      rseq lock aborts (spontaneous or by the (C) IPI) after
 *                     which a reader takes the atomic path (default 2);
 *                     spontaneous aborts are only possible below this bound
 *     RSEQ_ONLY       readers never use the atomic fallback words
 *                     (lock retries rseq; unlock always uses rseq)
 *
 *   Updater details
 *     FASTSCANS=n     scans the fast path tries before flipping (default 2;
 *                     the implementation tries 8, each one a full scan)
 *     A_RSEQ          (A) uses MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, as the
 *                     implementation does whenever rseq is registered (the
 *                     brief describes plain PRIVATE_EXPEDITED; both behave
 *                     the same here: an abort at (A) only restarts a section
 *                     that then reads the same period)
 *
 *   Barrier mode
 *     FENCE_MODE      (A) and (C) are seq_cst fences in the updater and the
 *                     reader's (B)/(D) compiler barriers become seq_cst
 *                     fences; no IPIs, no rseq aborts from the updater.
 *                     Default: membarrier mode.
 *
 *   Variants asked for in the brief (see README.md for the outcomes)
 *     NO_A            drop membarrier (A)                      -> fails
 *     NO_C            drop membarrier (C)  -> does NOT fail: (C) is redundant
 *                     while phase 1 is kept; fails with SKIP_PHASE1
 *                     (rseq-only readers), see README.md
 *     LOCKS_FIRST     every scan sums the lock words before the unlock words
 *     SKIP_PHASE1     updater does not wait for index 1-c before the flip
 *                     (fails with atomic-path readers)
 *     PERIOD_OUTSIDE_CS  the rseq lock path reads `period` before entering
 *                     the restartable section (it is then neither restarted
 *                     nor re-read after an abort); fails with SKIP_PHASE1
 *
 *   Further mutants (see README.md)
 *     NO_B            FENCE_MODE only: drop the reader's fence (B) after lock
 *     NO_D            FENCE_MODE only: drop the reader's fence (D) before unlock
 *     RELAXED_UNLOCK  the unlock increment is not a release: the section's
 *                     last load (the use of the object) is performed after
 *                     the unlock store, as a non-TSO CPU may do with a plain
 *                     store (or a compiler without the barrier (D))
 *     NO_S            drop the updater's fence (S) between the two sums
 *     BAD_UNLOCK_INDEX  unlock increments the other index (progress sanity
 *                     check: synchronize can then never complete)
 *
 * Properties
 *   - safety: assert() in the reader -- a reader never observes the
 *     poisoned flag of the object it obtained from gp;
 *   - progress: `ltl progress { <> done }` (run with -a and weak fairness);
 *     for pure safety runs compile pan with -DNOCLAIM.
 *
 * Memory model: x86-TSO.
 *   Every process that stores has a FIFO store buffer (a channel).  A store
 *   is appended to the buffer; the process `memory` moves the oldest entry
 *   of any buffer to shared memory at an arbitrary later time.  Loads read
 *   shared memory, except that a process must see its own buffered stores:
 *   the only location a process both stores to and loads is `period` in the
 *   updater, which is the sole writer of it and therefore keeps its own
 *   latest value in a local (store-to-load forwarding).  Loads are performed
 *   in program order and at once, so load->load, load->store and
 *   store->store order hold and only store->load reordering is possible,
 *   which is exactly TSO.  A full fence (mfence, a locked instruction, a
 *   membarrier IPI, the membarrier syscall itself) empties the buffer.
 */

/* ------------------------------------------------------------------ */
/* configuration defaults                                              */
/* ------------------------------------------------------------------ */
#ifndef NREADERS
#define NREADERS 2
#endif
#ifndef NGP
#define NGP 2
#endif
#ifndef NSECT
#define NSECT 1
#endif
#ifndef FASTSCANS
#define FASTSCANS 2
#endif
#ifdef A_RSEQ
#define ARSEQ 1
#else
#define ARSEQ 0
#endif
#ifndef MAXABORT
#define MAXABORT 2
#endif
#ifdef NEST
#define PAIRS 2
#else
#define PAIRS 1
#endif
#ifdef NO_S
#define NOS true
#else
#define NOS false
#endif
#ifdef RSEQ_ONLY
#define ATOMIC_OK false
#else
#define ATOMIC_OK true
#endif

/* A reader has at most one buffered increment per lock and per unlock. */
#define RBUF (2 * NSECT * PAIRS)
/* Updater stores: gp, period, poison.  Four entries are enough for every
 * variant; a full buffer would stall the storing process, as real store
 * buffers do. */
#define UBUF 4

/* ------------------------------------------------------------------ */
/* shared memory                                                       */
/* ------------------------------------------------------------------ */

/*
 * Reader counters: one flat array of 16 words,
 *   kind LK  = rseq lock[cpu][idx]      (single committing store)
 *   kind UL  = rseq unlock[cpu][idx]
 *   kind ALK = atomic alock[slot][idx]   (lock xadd)
 *   kind AUL = atomic aunlock[slot][idx]
 * Counter wrap is not modelled: the counts stay tiny.
 */
#define LK  0
#define UL  1
#define ALK 2
#define AUL 3
#define CID(kind, cpu, idx) ((kind) * 4 + (cpu) * 2 + (idx))
byte cnt[16];

byte period = 0;             /* active index = period & 1 */
byte gp = 0;                 /* index of the published object */
bit  poisoned[NGP + 1];      /* object k's poison flag; object 0 is initial */

/* Updater store buffer entries: (location, value). */
#define V_GP     0
#define V_PERIOD 1
#define V_POISON 2           /* V_POISON + k = poisoned[k] */
chan ubuf = [UBUF] of { byte, byte };

/* Reader store buffers: each entry names one counter to increment.  The
 * increment is recorded as a delta: rseq makes the read-modify-write on a
 * per-CPU word atomic with respect to every other thread that can write that
 * word, so the only thing that can be delayed is its visibility. */
chan rbuf[NREADERS] = [RBUF] of { byte };

/* rseq bookkeeping for the membarrier-RSEQ IPI of (C) */
bit in_cs[NREADERS];         /* reader is inside an uncommitted rseq section */
bit abortreq[NREADERS];      /* kernel has aborted that section */

bit done = 0;                /* ghost: the updater has finished all its work */

ltl progress { <> done }

/* ------------------------------------------------------------------ */
/* store buffers                                                       */
/* ------------------------------------------------------------------ */

/* Commit one updater store to memory (called inside atomic). */
inline ucommit(loc, val) {
	if
	:: loc == V_GP     -> gp = val
	:: loc == V_PERIOD -> period = val
	:: loc >= V_POISON -> poisoned[loc - V_POISON] = val
	fi
}

/* Empty the updater's store buffer (mfence / syscall entry). */
inline udrain_body() {
	do
	:: ubuf?uloc, uval -> ucommit(uloc, uval)
	:: empty(ubuf) -> break
	od;
	uloc = 0; uval = 0                  /* dead: reset to keep states few */
}
inline udrain() {
	atomic { udrain_body() }
}

/* Empty reader r's store buffer; used inside atomic blocks only. */
inline rdrain_body(r) {
	do
	:: rbuf[r]?rv -> cnt[rv]++
	:: empty(rbuf[r]) -> break
	od;
	rv = 0
}

/*
 * The memory subsystem: drains the oldest entry of any store buffer at any
 * time.  Weak fairness makes it eventually run while buffers are non-empty.
 */
active proctype memory() {
	byte m, v;
end:
	do
	:: atomic { ubuf?m, v -> ucommit(m, v); m = 0; v = 0 }
	:: atomic { rbuf[0]?m -> cnt[m]++; m = 0 }
#if NREADERS > 1
	:: atomic { rbuf[1]?m -> cnt[m]++; m = 0 }
#endif
	od
}

/* ------------------------------------------------------------------ */
/* readers                                                             */
/* ------------------------------------------------------------------ */

inline pick(x) {
	if
	:: x = 0
	:: x = 1
	fi
}

/*
 * rcu_read_lock: leaves the chosen index in `ix`.
 */
inline read_lock(ix) {
	aborts = 0;
#ifdef PERIOD_OUTSIDE_CS
	/* BROKEN variant 5: the index is chosen before the restartable section,
	 * so a delay here is not cut short by (C) and an abort does not make
	 * the reader look at `period` again. */
	ix = period & 1;
#endif
	do
	:: (aborts < MAXABORT || !ATOMIC_OK) ->
		/* ---- rseq path: one restartable critical section ---- */
		/* enter the section (arm rseq_cs), read the cpu, load period.
		 * Arming rseq_cs is thread-local and invisible to everybody but
		 * the kernel, so it is folded into the period load (an IPI in
		 * between would only abort an attempt that has done nothing). */
		atomic {
			in_cs[me] = 1; abortreq[me] = 0; pick(cpu);
#ifndef PERIOD_OUTSIDE_CS
			ix = period & 1             /* load period inside the section */
#else
			skip
#endif
		};
		if
		:: atomic {
			/* commit: lock[cpu][ix] += 1 is the single store that ends the
			 * section; it goes into the store buffer like any store. */
			abortreq[me] == 0 ->
			rbuf[me]!CID(LK, cpu, ix);
			in_cs[me] = 0; cpu = 0; aborts = 0
		   };
		   break
		:: atomic {
			/* aborted by the (C) IPI: nothing was stored, restart */
			abortreq[me] == 1 ->
			in_cs[me] = 0; aborts++
		   }
		:: atomic {
			/* aborted by preemption / migration / signal before the commit */
			aborts < MAXABORT ->
			in_cs[me] = 0; aborts++
		   }
		fi
	:: (aborts >= MAXABORT && ATOMIC_OK) ->
		/* ---- atomic fallback path ---- */
#ifndef PERIOD_OUTSIDE_CS
		ix = period & 1;                    /* relaxed load of period */
#endif
		/* ...the reader may be delayed arbitrarily here... */
		/* fetch_add(relaxed) on alock[slot][ix], slot = any (a stale cpu
		 * number); `lock xadd` on x86, hence also a full barrier */
		atomic {
			pick(cpu); rdrain_body(me); cnt[CID(ALK, cpu, ix)]++;
			cpu = 0; aborts = 0
		};
		break
	od;
#if defined(FENCE_MODE) && defined(NO_B)
	skip;                                   /* BROKEN: (B) removed */
#elif defined(FENCE_MODE)
	/* (B) seq_cst fence after the lock increment; pairs with the updater's
	 * fence (A) (and with (C), which is also a fence in this mode). */
	atomic { rdrain_body(me) }
#else
	/* (B) compiler barrier only.  The hardware ordering it would need is
	 * supplied by membarrier (A) (and (C)) running on this CPU. */
	skip
#endif
}

/*
 * rcu_read_unlock for index ix: may run on another CPU than the lock.
 */
inline read_unlock(ix) {
#if defined(FENCE_MODE) && defined(NO_D)
	skip;                                   /* MUTANT: (D) removed */
#elif defined(FENCE_MODE)
	/* (D) seq_cst fence before the unlock increment; pairs with the
	 * updater's scan fence (S) and its acquire loads. */
	atomic { rdrain_body(me) }
#else
	/* (D) compiler barrier only.  On TSO the unlock store is a release:
	 * every earlier load of the section is already performed, and every
	 * earlier store is ahead of it in the FIFO buffer.  Pairs with the
	 * updater's acquire loads of the unlock words (no trailing membarrier). */
	skip;
#endif
	/* cpu' may differ from the lock's cpu.  An aborted rseq unlock just
	 * retries the same increment (the index is carried), so aborts of the
	 * unlock section need no modelling beyond the free choice of cpu'
	 * and of the path. */
#ifdef BAD_UNLOCK_INDEX
	ix = 1 - ix;                            /* BROKEN: wrong index */
#endif
	if
	:: atomic { pick(cpu); rbuf[me]!CID(UL, cpu, ix); cpu = 0; ix = 0 }
	                                         /* rseq: plain store */
	:: ATOMIC_OK ->                          /* atomic, release: lock xadd */
		atomic {
			pick(cpu); rdrain_body(me); cnt[CID(AUL, cpu, ix)]++;
			cpu = 0; ix = 0
		}
	fi
}

proctype reader(byte me) {
	byte cpu, aborts, rv, s = 0;
	byte idx, nidx;      /* index of the outer / nested pair */
	byte o;              /* object obtained from gp */

	do
	:: s < NSECT ->
		read_lock(idx);
		/* body: rcu_dereference(gp), then use the object */
		o = gp;
#ifndef RELAXED_UNLOCK
		assert(poisoned[o] == 0);
#endif
#ifdef NEST
		read_lock(nidx);
		assert(poisoned[o] == 0);
		read_unlock(nidx);
		/* still inside the outer section: the object must still be valid */
		assert(poisoned[o] == 0);
#endif
		read_unlock(idx);
#ifdef RELAXED_UNLOCK
		/* BROKEN: the section's use of the object is reordered after the
		 * unlock store (load->store reordering, impossible on TSO) */
		assert(poisoned[o] == 0);
#endif
		o = 0;
		s++
	:: else -> break
	od
}

/* ------------------------------------------------------------------ */
/* updater                                                             */
/* ------------------------------------------------------------------ */

/*
 * Sum the four words (rseq and atomic, both slots) of one kind for index x.
 * Each term is a separate load (a separate step), so readers may run,
 * migrate and have their stores drained between them.  When F is set, the
 * full fence (S) is executed immediately before the first load, in the same
 * step: a fence followed by a load can be merged into one step without
 * losing behaviours, because no other process can observe the gap.
 */
inline sum_unlock(x, S, F) {
	atomic {
		if
		:: F && !NOS -> udrain_body()
		:: else -> skip
		fi;
		S = cnt[CID(UL, 0, x)]
	};
	S = S + cnt[CID(UL, 1, x)];
	S = S + cnt[CID(AUL, 0, x)];
	S = S + cnt[CID(AUL, 1, x)]
}
inline sum_lock(x, S, F) {
	atomic {
		if
		:: F && !NOS -> udrain_body()
		:: else -> skip
		fi;
		S = cnt[CID(LK, 0, x)]
	};
	S = S + cnt[CID(LK, 1, x)];
	S = S + cnt[CID(ALK, 0, x)];
	S = S + cnt[CID(ALK, 1, x)]
}

/*
 * One scan of index x: unlock sum (acquire loads), full fence (S), lock sum.
 * (S) pairs with the order of each reader's own lock and unlock increments
 * (program order + FIFO store buffer, or the full barrier of lock xadd): an
 * unlock counted before (S) implies that its lock is counted after (S), so
 * U == L means every lock counted has had its unlock counted too.
 */
inline scan(x, U, L) {
#ifdef LOCKS_FIRST
	/* BROKEN variant 3: locks first, then (S), then unlocks */
	sum_lock(x, L, false);
	sum_unlock(x, U, true)                      /* (S) + unlock loads */
#else
	sum_unlock(x, U, false);
	sum_lock(x, L, true)                        /* (S) + lock loads */
#endif
}

/* Wait until index x has drained. */
inline wait_index(x) {
	do
	:: scan(x, U, L);
		if
		:: U == L -> U = 0; L = 0; break
		:: else -> skip
		fi
	od
}

/*
 * membarrier(): the syscall itself is a full barrier for the caller, then
 * every reader CPU executes a full barrier at some point during the call
 * (one step per reader, so readers run in between).  With RSEQ the IPI
 * also aborts a reader that is inside an uncommitted rseq section.
 */
inline ipi(r, rseq) {
	atomic {
		rdrain_body(r);
		if
		:: rseq && in_cs[r] -> abortreq[r] = 1
		:: else -> skip
		fi
	}
}
inline membarrier(rseq) {
	udrain();
	ipi(0, rseq);
#if NREADERS > 1
	ipi(1, rseq);
#endif
	/* the syscall's exit barrier would drain the caller's buffer again;
	 * the updater stored nothing since the entry barrier, so it is a no-op */
}

active proctype updater() {
	byte g = 1;          /* object being published */
	byte per = 0;        /* updater's own view of period (forwarding) */
	byte c, U, L, U1, L1, fs = 0;
	byte uloc, uval, rv;

	do
	:: g <= NGP ->
		/* 1. publish the new object (this also unpublishes g-1) */
		ubuf!V_GP, g;

		/* 2. synchronize_rcu() */
#ifdef NO_A
		/* BROKEN variant 1: no (A) */
		skip;
#elif defined(FENCE_MODE)
		/* (A) seq_cst fence; pairs with the reader's fence (B).  (The
		 * fast path's fence (S) sits between the gp store and the lock
		 * loads as well, which is why the model finds (A) redundant in
		 * this mode.) */
		udrain();
#else
		/* (A) membarrier(PRIVATE_EXPEDITED); pairs with the reader's
		 * compiler barrier (B) after the lock increment: either a reader's
		 * gp load comes after this IPI (and sees the new gp), or its lock
		 * increment precedes the IPI and is drained by it. */
		membarrier(ARSEQ);
#endif

		/* fast path: both indices at once, up to FASTSCANS scans (any
		 * scan after (A) is as good as the first) */
		do
		:: fs < FASTSCANS ->
#ifdef LOCKS_FIRST
			sum_lock(0, L, false); sum_lock(1, L1, false);
			sum_unlock(0, U, true); sum_unlock(1, U1, false);   /* (S) first */
#else
			sum_unlock(0, U, false); sum_unlock(1, U1, false);
			sum_lock(0, L, true); sum_lock(1, L1, false);       /* (S) first */
#endif
			if
			:: U == L && U1 == L1 ->
				U = 0; L = 0; U1 = 0; L1 = 0; fs = 0; goto poison
			:: else -> U = 0; L = 0; U1 = 0; L1 = 0; fs++
			fi
		:: else -> fs = 0; break
		od;

		c = per & 1;
#ifndef SKIP_PHASE1
		/* phase 1: wait for stragglers on the inactive index */
		wait_index(1 - c);
#endif
		/* flip */
		per++;
		ubuf!V_PERIOD, per;

#ifdef NO_C
		/* BROKEN variant 2: no (C) */
		skip;
#elif defined(FENCE_MODE)
		/* (C) seq_cst fence: publishes the flip; pairs with (B).  No
		 * rseq aborts in this mode. */
		udrain();
#else
		/* (C) membarrier(PRIVATE_EXPEDITED_RSEQ): publishes the flip, then
		 * every reader CPU runs a full barrier (pairs with (B): committed
		 * lock increments on the old index become visible to phase 2) and
		 * every uncommitted rseq lock section restarts and re-reads period. */
		membarrier(1);
#endif
		/* phase 2: wait for the old index */
		wait_index(c);

poison:
		/* 3. poison the old object.  No membarrier after phase 2: this
		 * relies on the reader's unlock increment being a release (D) that
		 * the scan's acquire loads observed: every load of that section was
		 * performed before the unlock became visible, hence before this
		 * store.  (RELAXED_UNLOCK shows what happens without the release.) */
		atomic { ubuf!V_POISON + g - 1, 1; g++; c = 0 }
	:: else -> break
	od;
	done = 1
}

init {
	byte i = 0;
	atomic {
		do
		:: i < NREADERS -> run reader(i); i++
		:: else -> break
		od
	}
}
