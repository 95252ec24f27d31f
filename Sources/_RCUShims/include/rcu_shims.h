// _RCUShims: the only place where swift-rcu touches asm, syscalls and raw
// counter memory. Everything here is tiny on purpose; the algorithm and its
// correctness argument live in Sources/RCU and docs/design.md.
//
// Layout of a domain's counter block (one allocation, 128-byte aligned):
//
//   line 0          rcu_shim_header: active counter address, slot count, bounds, glibc's rseq offset
//   line 1 + cpu    rcu_shim_slot:   per-CPU counters for both period indices
//
// Each slot keeps rseq counters (plain increments committed inside a
// restartable sequence by the thread running on that CPU) apart from atomic
// counters (lock-prefixed RMWs from any CPU): the two kinds never touch the
// same word, and the grace-period scan adds both.
#ifndef RCU_SHIMS_H
#define RCU_SHIMS_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#if defined(__linux__) && defined(__x86_64__) && defined(__has_include)
#if __has_include(<sys/rseq.h>)
#define RCU_SHIM_HAVE_RSEQ 1
#endif
#endif
#ifndef RCU_SHIM_HAVE_RSEQ
#define RCU_SHIM_HAVE_RSEQ 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

/// Bytes per slot and per header: two cache lines, so the adjacent-line
/// prefetcher never makes two CPUs' slots share.
#define RCU_SHIM_LINE 128

typedef struct rcu_shim_header {
    /// The readers' word: the address of `slots[0].lock[period & 1]`, the
    /// active index's lock counter in slot 0 (a CPU's counter is this plus
    /// 128 x cpu). Written only by the grace-period leader at the flip (F),
    /// read by every reader. An address, not a bit, so the rseq commit is a
    /// base+displacement add with no index register (docs/benchmarks.md).
    uint64_t active;        // @0
    /// Number of slots (possible CPUs).
    uint32_t slot_count;    // @8
    /// Futex word: non-zero while a grace period sleeps waiting for readers.
    /// An unlock that sees it set clears it and wakes the sleeper.
    uint32_t waiters;       // @12
    /// glibc's `__rseq_offset`: the thread's `struct rseq` is at %fs:offset.
    int64_t rseq_offset;    // @16
    /// The seq_cst mode's pairing word (ThreadSanitizer builds,
    /// RCU_FORCE_SEQCST): every ordering point of that mode is a seq_cst
    /// RMW of this word. Unused by the other modes.
    uint64_t sc_word;       // @24
    /// Flips so far (the active index is `period & 1`). The leader's count;
    /// readers load `active` instead.
    uint64_t period;        // @32
    /// The bound the inlined fast path checks `cpu_id` against, as a memory
    /// operand: the slot count in the rseq+membarrier mode, 0 in every other
    /// mode (each attempt fails and the caller takes its slow path) and
    /// when a test forces every rseq attempt to fail.
    uint32_t fast_bound;    // @40
    /// The bound of the slow path's rseq attempts (rseq+fence mode): the
    /// slot count, or 0 when a test forces every rseq attempt to fail.
    uint32_t rseq_bound;    // @44
    char pad[RCU_SHIM_LINE - 48];
} rcu_shim_header;

#define RCU_SHIM_FAST_BOUND_AT "40"
#define RCU_SHIM_RSEQ_BOUND_AT "44"

typedef struct rcu_shim_slot {
    uint64_t lock[2];       // @0   rseq increments, committed by this CPU only
    uint64_t unlock[2];     // @16  rseq increments, committed by this CPU only
    uint64_t alock[2];      // @32  atomic increments (fallback path), any CPU
    uint64_t aunlock[2];    // @48  atomic increments (fallback path), any CPU
    char pad[RCU_SHIM_LINE - 64];
} rcu_shim_slot;

typedef struct rcu_shim_state {
    rcu_shim_header header;
    rcu_shim_slot slots[];
} rcu_shim_state;

// The asm below hard-codes this layout: the bounds' displacements, the slot
// stride (shlq $7), the unlock counters 16 bytes after the lock counters, and
// rcu_shim_index_of's >> 3.
_Static_assert(offsetof(rcu_shim_header, active) == 0, "active at @0");
_Static_assert(offsetof(rcu_shim_state, slots) == RCU_SHIM_LINE, "slot 0 one line after the header");
_Static_assert(offsetof(rcu_shim_header, fast_bound) == 40, "RCU_SHIM_FAST_BOUND_AT");
_Static_assert(offsetof(rcu_shim_header, rseq_bound) == 44, "RCU_SHIM_RSEQ_BOUND_AT");
_Static_assert(sizeof(rcu_shim_header) == RCU_SHIM_LINE, "header is one slot stride");
_Static_assert(sizeof(rcu_shim_slot) == 128 && RCU_SHIM_LINE == 128, "slot stride is 1 << 7");
_Static_assert(offsetof(rcu_shim_slot, unlock) - offsetof(rcu_shim_slot, lock) == 16, "unlock = lock + 16");
_Static_assert(sizeof(uint64_t) == 8, "index x 8");

// MARK: - Allocation and platform facts (rcu_shims.c)

/// Allocates a zeroed counter block with `slot_count` slots; NULL on failure.
rcu_shim_state *rcu_shim_state_create(uint32_t slot_count);
/// Sets the header's `fast_bound` and `rseq_bound` (before the domain is
/// shared).
void rcu_shim_set_bounds(rcu_shim_state *state, uint32_t fast_bound, uint32_t rseq_bound);
void rcu_shim_state_destroy(rcu_shim_state *state);

/// Possible CPUs (from /sys/devices/system/cpu/possible), at least 1.
uint32_t rcu_shim_possible_cpus(void);

/// 1 when glibc registered an rseq area for the calling thread and the kernel
/// reports a CPU for it (`__rseq_size > 0` and `cpu_id >= 0`); 0 otherwise,
/// including on every architecture but x86_64.
int rcu_shim_rseq_usable(void);
/// glibc's `__rseq_offset`, or 0 when rseq is unusable.
int64_t rcu_shim_rseq_offset(void);

/// 1 when this C target was compiled with ThreadSanitizer (-fsanitize=thread,
/// which `swift build --sanitize=thread` passes to every C target), else 0.
int rcu_shim_built_with_tsan(void);

/// membarrier(2). `query` returns the supported-command mask or -errno.
int rcu_shim_membarrier_query(void);
/// Registers PRIVATE_EXPEDITED (rseq == 0) or PRIVATE_EXPEDITED_RSEQ
/// (rseq != 0) for the process. Returns 0 or -errno.
int rcu_shim_membarrier_register(int rseq);
/// Issues PRIVATE_EXPEDITED (rseq == 0) or PRIVATE_EXPEDITED_RSEQ (rseq != 0).
/// Returns 0 or -errno.
int rcu_shim_membarrier(int rseq);

/// futex(2) on a 32-bit word, private to the process. `wait` returns 0 when
/// woken, -errno otherwise (EAGAIN: the word differed; ETIMEDOUT; EINTR).
/// `timeout_ns` < 0 waits without a timeout.
int rcu_shim_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);
int rcu_shim_futex_wake(uint32_t *word, int32_t count);

/// Sleeps for `ns` nanoseconds (nanosleep), restarting after signals.
void rcu_shim_sleep_ns(int64_t ns);
/// Locks `mutex` (a pthread_mutex_t *), waiting at most `ns` from now on
/// CLOCK_MONOTONIC: pthread_mutex_clocklock where glibc has it (2.30+), a
/// trylock loop elsewhere and under ThreadSanitizer. Returns 0, ETIMEDOUT or
/// another errno.
int rcu_shim_mutex_lock_within(void *mutex, int64_t ns);
/// sched_yield(2).
void rcu_shim_yield(void);

// MARK: - fork (rcu_shims.c)

/// pthread_atfork, for the library's fork handlers.
int rcu_shim_install_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));
/// In a forked child: count `count` open sections of `index` as ended.
void rcu_shim_forgive_sections(rcu_shim_state *state, long index, uint64_t count);
/// In a forked child: no grace period sleeps any more.
void rcu_shim_reset_waiters(rcu_shim_state *state);

// MARK: - Counter access shared by the read side and the scan

static inline __attribute__((always_inline))
rcu_shim_slot *rcu_shim_slot_at(rcu_shim_state *state, uint32_t index) {
    return &state->slots[index];
}

/// A CPU-local slot for the atomic path: glibc's `cpu_id_start` when rseq is
/// registered (always a valid possible CPU), else a hash of the thread
/// pointer. Only a contention hint: any slot is correct for atomic counters.
static inline __attribute__((always_inline))
uint32_t rcu_shim_slot_hint(const rcu_shim_state *state) {
    uint32_t n = state->header.slot_count;
#if RCU_SHIM_HAVE_RSEQ
    if (state->header.rseq_offset != 0) {
        uint32_t cpu;
        __asm__ __volatile__("movl %%fs:(%1), %0" : "=r"(cpu) : "r"(state->header.rseq_offset));
        if (cpu < n) return cpu;
    }
#endif
    uintptr_t tp;
#if defined(__x86_64__)
    __asm__("movq %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
    __asm__("mrs %0, tpidr_el0" : "=r"(tp));
#else
    static __thread char rcu_shim_thread_marker;
    tp = (uintptr_t)&rcu_shim_thread_marker;
#endif
    tp ^= tp >> 17;
    tp *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)((tp >> 32) % n);
}

/// The active index's slot-0 lock counter (see `header.active`), with
/// acquire: a reader that sees a flipped period also sees every store the
/// grace-period leader made before flipping (release in rcu_shim_flip).
static inline __attribute__((always_inline))
uintptr_t rcu_shim_load_active(const rcu_shim_state *state) {
    return (uintptr_t)__atomic_load_n(&state->header.active, __ATOMIC_ACQUIRE);
}

/// The address of slot 0's lock counter for `index`: what `active` holds
/// while `index` is the active index, and what a token carries.
static inline __attribute__((always_inline))
uintptr_t rcu_shim_counters_for(const rcu_shim_state *state, long index) {
    return (uintptr_t)&state->slots[0].lock[index & 1];
}

/// The period index a counter address (from `active` or a token) stands for.
static inline __attribute__((always_inline))
long rcu_shim_index_of(const rcu_shim_state *state, uintptr_t counters) {
    return (long)((counters - (uintptr_t)&state->slots[0].lock[0]) >> 3) & 1;
}

/// The leader's flip count (the active index is its low bit). Acquire:
/// pairs with the release store in rcu_shim_flip, so a reader of the new
/// count also reads the new `active`.
static inline __attribute__((always_inline))
uint64_t rcu_shim_load_period(const rcu_shim_state *state) {
    return __atomic_load_n(&state->header.period, __ATOMIC_ACQUIRE);
}

/// (F): the flip. New readers count under the other index from the release
/// store of `active` on. Called by the grace-period leader only.
static inline __attribute__((always_inline))
void rcu_shim_flip(rcu_shim_state *state) {
    uint64_t period = state->header.period + 1;
    __atomic_store_n(&state->header.active, (uint64_t)rcu_shim_counters_for(state, (long)(period & 1)), __ATOMIC_RELEASE);
    // After `active`, with release: whoever sees the new count (tests
    // waiting for a flip) also sees the new `active`.
    __atomic_store_n(&state->header.period, period, __ATOMIC_RELEASE);
}

/// Atomic-path lock increment. Relaxed: the ordering comes from the caller
/// (compiler barrier paired with membarrier, or a seq_cst fence).
static inline __attribute__((always_inline))
void rcu_shim_atomic_lock(rcu_shim_state *state, uint32_t slot, long index) {
    __atomic_fetch_add(&state->slots[slot].alock[index & 1], 1, __ATOMIC_RELAXED);
    __asm__ __volatile__("" ::: "memory");
}

/// Atomic-path unlock increment, with release order: the section's accesses
/// happen before a scan that reads this increment with acquire.
static inline __attribute__((always_inline))
void rcu_shim_atomic_unlock(rcu_shim_state *state, uint32_t slot, long index) {
    __asm__ __volatile__("" ::: "memory");
    __atomic_fetch_add(&state->slots[slot].aunlock[index & 1], 1, __ATOMIC_RELEASE);
}

// MARK: - The seq_cst mode (ThreadSanitizer)
//
// ThreadSanitizer sees neither the rseq commits (asm), nor membarrier(2), nor
// standalone fences. In this mode every pairing of the algorithm is between
// atomic read-modify-writes it models: the counters are seq_cst RMWs, and
// each fence of the fence mode becomes a seq_cst RMW of the one word
// `header.sc_word`, so the two sides of each store-buffering pair (reader
// (B) against updater (A), (C), (W), (P)) synchronise through that word in
// C11 as in TSan: whichever RMW comes second in its modification order
// acquires the other's history. docs/design.md §8.

/// An ordering point of the seq_cst mode: a seq_cst RMW of `sc_word`.
static inline __attribute__((always_inline))
void rcu_shim_sc_point(rcu_shim_state *state) {
    __atomic_fetch_add(&state->header.sc_word, 1, __ATOMIC_SEQ_CST);
}

/// seq_cst-mode lock increment (the caller then issues rcu_shim_sc_point, (B)).
static inline __attribute__((always_inline))
void rcu_shim_sc_lock(rcu_shim_state *state, uint32_t slot, long index) {
    __atomic_fetch_add(&state->slots[slot].alock[index & 1], 1, __ATOMIC_SEQ_CST);
}

/// seq_cst-mode unlock increment: (D) itself, a release (seq_cst) RMW
/// paired with the scans' acquire loads.
static inline __attribute__((always_inline))
void rcu_shim_sc_unlock(rcu_shim_state *state, uint32_t slot, long index) {
    __atomic_fetch_add(&state->slots[slot].aunlock[index & 1], 1, __ATOMIC_SEQ_CST);
}

/// Sum over every slot of the unlock counts (rseq + atomic) for `index`.
/// Acquire loads: pair with the release of each unlock increment.
static inline uint64_t rcu_shim_sum_unlocks(const rcu_shim_state *state, long index) {
    uint64_t sum = 0;
    uint32_t n = state->header.slot_count;
    for (uint32_t i = 0; i < n; i++) {
        sum += __atomic_load_n(&state->slots[i].unlock[index & 1], __ATOMIC_ACQUIRE);
        sum += __atomic_load_n(&state->slots[i].aunlock[index & 1], __ATOMIC_ACQUIRE);
    }
    return sum;
}

/// Sum over every slot of the lock counts (rseq + atomic) for `index`.
static inline uint64_t rcu_shim_sum_locks(const rcu_shim_state *state, long index) {
    uint64_t sum = 0;
    uint32_t n = state->header.slot_count;
    for (uint32_t i = 0; i < n; i++) {
        sum += __atomic_load_n(&state->slots[i].lock[index & 1], __ATOMIC_ACQUIRE);
        sum += __atomic_load_n(&state->slots[i].alock[index & 1], __ATOMIC_ACQUIRE);
    }
    return sum;
}

/// Locks minus unlocks of `index` on one slot (rseq + atomic), for stall
/// reports: diagnostic only, the loads are relaxed.
static inline int64_t rcu_shim_slot_balance(const rcu_shim_state *state, uint32_t slot, long index) {
    const rcu_shim_slot *s = &state->slots[slot];
    uint64_t locks = __atomic_load_n(&s->lock[index & 1], __ATOMIC_RELAXED)
        + __atomic_load_n(&s->alock[index & 1], __ATOMIC_RELAXED);
    uint64_t unlocks = __atomic_load_n(&s->unlock[index & 1], __ATOMIC_RELAXED)
        + __atomic_load_n(&s->aunlock[index & 1], __ATOMIC_RELAXED);
    return (int64_t)(locks - unlocks);
}

/// Whether a grace period is sleeping on this domain (relaxed load; the
/// unlock that sees it set wakes the sleeper, see rcu_shim_wake_updater).
static inline __attribute__((always_inline))
uint32_t rcu_shim_waiters(const rcu_shim_state *state) {
    return __atomic_load_n(&state->header.waiters, __ATOMIC_RELAXED);
}

/// Clears the waiter word and, if it was set, wakes the sleeping updater.
void rcu_shim_wake_updater(rcu_shim_state *state);
/// Marks an updater as about to sleep (the caller fences, then rescans).
void rcu_shim_arm_waiter(rcu_shim_state *state);
/// Clears the waiter word without waking (the rescan found the index drained).
void rcu_shim_disarm_waiter(rcu_shim_state *state);
/// Sleeps while the waiter word is still set, at most `timeout_ns`.
void rcu_shim_wait_for_readers(rcu_shim_state *state, int64_t timeout_ns);

/// Read sections opened with `read {}` on this thread, over all domains.
/// Retire never waits for memory while it is nonzero, fork() refuses to run,
/// and stall reports count the waits made meanwhile. Initial-exec TLS.
extern __thread __attribute__((tls_model("initial-exec"))) long rcu_shim_thread_read_depth;

static inline __attribute__((always_inline))
long rcu_shim_depth(void) { return rcu_shim_thread_read_depth; }
/// `read {}` saves the depth, stores it plus one and stores the saved value
/// back: plain stores, with no read-modify-write chained from one section
/// to the next (docs/benchmarks.md, "read {}'s depth").
static inline __attribute__((always_inline))
void rcu_shim_set_depth(long depth) { rcu_shim_thread_read_depth = depth; }

/// Non-zero on a reclamation worker thread while it runs callbacks.
extern __thread __attribute__((tls_model("initial-exec"))) int rcu_shim_thread_runs_callbacks;
static inline int rcu_shim_runs_callbacks(void) { return rcu_shim_thread_runs_callbacks; }
static inline void rcu_shim_set_runs_callbacks(int value) { rcu_shim_thread_runs_callbacks = value; }

/// The id of the domain whose stall handler this thread is running (it runs
/// with that domain's grace-period lock held), 0 when none.
extern __thread __attribute__((tls_model("initial-exec"))) uint64_t rcu_shim_thread_in_stall_handler;
static inline uint64_t rcu_shim_in_stall_handler(void) { return rcu_shim_thread_in_stall_handler; }
static inline void rcu_shim_set_in_stall_handler(uint64_t domain) { rcu_shim_thread_in_stall_handler = domain; }

/// A 32-bit futex word in its own cache line (calloc'd, never moves).
uint32_t *rcu_shim_word_create(void);
void rcu_shim_word_destroy(uint32_t *word);
static inline uint32_t rcu_shim_word_load(uint32_t *word) { return __atomic_load_n(word, __ATOMIC_SEQ_CST); }
static inline void rcu_shim_word_store(uint32_t *word, uint32_t value) { __atomic_store_n(word, value, __ATOMIC_SEQ_CST); }
static inline uint32_t rcu_shim_word_increment(uint32_t *word) { return __atomic_add_fetch(word, 1, __ATOMIC_SEQ_CST); }

/// Full hardware + compiler fence (seq_cst).
static inline __attribute__((always_inline))
void rcu_shim_full_fence(void) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/// Spin-loop hint.
static inline __attribute__((always_inline))
void rcu_shim_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

// MARK: - rseq critical sections (x86_64 only)
//
// Each sequence arms the thread's rseq area with a descriptor placed in the
// __rseq_cs section, then runs [1, 2): load cpu_id, bounds-check it against a
// header field, form the counter's address in one register, and commit one
// `addq $1` to it. If the kernel preempts, migrates, signals, or IPIs
// (membarrier RSEQ) the thread inside [1, 2), it resumes at the abort handler
// (label 4, preceded by the RSEQ_SIG signature), which jumps to the C label
// `aborted`; so does an out-of-range cpu_id (rseq unregistered: -1/-2, or a
// bound of 0). Nothing was stored on failure, so the caller may retry or fall
// back. The "memory" clobber makes each a compiler barrier: (B) after the
// lock increment, paired with the updater's membarriers (A), (C) and (W); and
// (D) before the unlock increment, which with x86-TSO makes that increment a
// release, paired with the scans' acquire loads. See docs/design.md.
//
// The commit is `addq $1, disp(%reg)`, base + displacement: each section's
// commit reads the counter the previous section's commit wrote, and on the
// cores measured an RMW addressed with an index register misses the fast
// store-to-load forwarding that a base+displacement one gets (2.4 ns against
// 0.4 ns a section in a C loop; docs/benchmarks.md).
//
// asm goto: the abort edge is a jump to C, so the success path has no test
// of a returned flag. Numeric local labels only: inlining may duplicate the
// asm.

#if RCU_SHIM_HAVE_RSEQ
#define RCU_SHIM_RSEQ_SIG 0x53053053

// The success path's result is never 0 (a counter address): telling the
// optimiser lets it drop the caller's test on that path.
#if defined(__has_builtin)
#if __has_builtin(__builtin_assume)
#define RCU_SHIM_ASSUME(condition) __builtin_assume(condition)
#endif
#endif
#ifndef RCU_SHIM_ASSUME
#define RCU_SHIM_ASSUME(condition) ((void)0)
#endif

#define RCU_SHIM_RSEQ_DESCRIPTOR                                              \
    ".pushsection __rseq_cs, \"aw\"\n\t"                                      \
    ".balign 32\n\t"                                                          \
    "3:\n\t"                                                                  \
    ".long 0x0, 0x0\n\t"                  /* version, flags */                \
    ".quad 1f, (2f - 1f), 4f\n\t"         /* start_ip, post_commit_offset, abort_ip */ \
    ".popsection\n\t"

#define RCU_SHIM_RSEQ_ABORT_HANDLER                                           \
    ".pushsection __rseq_failure, \"ax\"\n\t"                                 \
    ".byte 0x0f, 0xb9, 0x3d\n\t"          /* ud1 <sig>(%%rip), %%edi: traps if ever executed */ \
    ".long 0x53053053\n\t"                /* RSEQ_SIG, checked by the kernel before abort_ip */ \
    "4:\n\t"                                                                  \
    "jmp %l[aborted]\n\t"                                                     \
    ".popsection\n\t"

/// Lock increment on this CPU's counter of the active index. Returns the
/// counter address for slot 0 (`header.active` as loaded inside the
/// sequence: what the token carries), or 0 on abort. `bound_at` names the
/// header field bounding cpu_id: RCU_SHIM_FAST_BOUND_AT for the inlined
/// fast path, RCU_SHIM_RSEQ_BOUND_AT for the slow path's attempts.
#define RCU_SHIM_DEFINE_RSEQ_LOCK(name, bound_at)                             \
static inline __attribute__((always_inline))                                  \
uintptr_t name(rcu_shim_state *state, int64_t rseq_offset) {                  \
    uintptr_t counters;                                                       \
    uint64_t cpu;                                                             \
    __asm__ goto(                                                             \
        RCU_SHIM_RSEQ_DESCRIPTOR                                              \
        "leaq 3b(%%rip), %[cpu]\n\t"                                          \
        "movq %[cpu], %%fs:8(%[offset])\n\t"  /* rseq->rseq_cs = &descriptor */ \
        "1:\n\t"                                                              \
        "movl %%fs:4(%[offset]), %k[cpu]\n\t" /* cpu_id (-1/-2 when unregistered) */ \
        "cmpl " bound_at "(%[state]), %k[cpu]\n\t" /* unsigned: negatives fail too */ \
        "jae 4f\n\t"                                                          \
        "movq (%[state]), %[counters]\n\t"    /* active, loaded inside the sequence */ \
        "shlq $7, %[cpu]\n\t"                                                 \
        "addq %[counters], %[cpu]\n\t"                                        \
        "addq $1, (%[cpu])\n\t"               /* commit: slots[cpu].lock[index]++ */ \
        "2:\n\t"                                                              \
        RCU_SHIM_RSEQ_ABORT_HANDLER                                           \
        : [counters] "=&r"(counters), [cpu] "=&r"(cpu)                        \
        : [state] "r"(state), [offset] "r"(rseq_offset)                       \
        : "memory", "cc"                                                      \
        : aborted);                                                           \
    RCU_SHIM_ASSUME(counters != 0);                                           \
    return counters;                                                          \
aborted:                                                                      \
    return 0;                                                                 \
}

/// Unlock increment on this CPU's counter for the token's `counters`
/// (slot 0's lock counter of its index). Returns 0, or -1 on abort. The
/// commit is a plain RMW after a compiler barrier: on x86-TSO its store is
/// a release, so the section's accesses are ordered before it.
#define RCU_SHIM_DEFINE_RSEQ_UNLOCK(name, bound_at)                           \
static inline __attribute__((always_inline))                                  \
int name(rcu_shim_state *state, int64_t rseq_offset, uintptr_t counters) {    \
    uint64_t cpu;                                                             \
    __asm__ goto(                                                             \
        RCU_SHIM_RSEQ_DESCRIPTOR                                              \
        "leaq 3b(%%rip), %[cpu]\n\t"                                          \
        "movq %[cpu], %%fs:8(%[offset])\n\t"                                  \
        "1:\n\t"                                                              \
        "movl %%fs:4(%[offset]), %k[cpu]\n\t"                                 \
        "cmpl " bound_at "(%[state]), %k[cpu]\n\t"                            \
        "jae 4f\n\t"                                                          \
        "shlq $7, %[cpu]\n\t"                                                 \
        "addq %[counters], %[cpu]\n\t"                                        \
        "addq $1, 16(%[cpu])\n\t"             /* commit: slots[cpu].unlock[index]++ */ \
        "2:\n\t"                                                              \
        RCU_SHIM_RSEQ_ABORT_HANDLER                                           \
        : [cpu] "=&r"(cpu)                                                    \
        : [state] "r"(state), [offset] "r"(rseq_offset), [counters] "r"(counters) \
        : "memory", "cc"                                                      \
        : aborted);                                                           \
    return 0;                                                                 \
aborted:                                                                      \
    return -1;                                                                \
}

/// The inlined fast path: bounded by `fast_bound` (0 outside the
/// rseq+membarrier mode, so every attempt fails there).
RCU_SHIM_DEFINE_RSEQ_LOCK(rcu_shim_rseq_lock, RCU_SHIM_FAST_BOUND_AT)
RCU_SHIM_DEFINE_RSEQ_UNLOCK(rcu_shim_rseq_unlock, RCU_SHIM_FAST_BOUND_AT)
/// The slow path's attempts: bounded by `rseq_bound`.
RCU_SHIM_DEFINE_RSEQ_LOCK(rcu_shim_rseq_lock_slow, RCU_SHIM_RSEQ_BOUND_AT)
RCU_SHIM_DEFINE_RSEQ_UNLOCK(rcu_shim_rseq_unlock_slow, RCU_SHIM_RSEQ_BOUND_AT)
#else
static inline __attribute__((always_inline))
uintptr_t rcu_shim_rseq_lock(rcu_shim_state *state, int64_t rseq_offset) { (void)state; (void)rseq_offset; __asm__ __volatile__("" ::: "memory"); return 0; }
static inline __attribute__((always_inline))
int rcu_shim_rseq_unlock(rcu_shim_state *state, int64_t rseq_offset, uintptr_t counters) { (void)state; (void)rseq_offset; (void)counters; __asm__ __volatile__("" ::: "memory"); return -1; }
static inline __attribute__((always_inline))
uintptr_t rcu_shim_rseq_lock_slow(rcu_shim_state *state, int64_t rseq_offset) { (void)state; (void)rseq_offset; __asm__ __volatile__("" ::: "memory"); return 0; }
static inline __attribute__((always_inline))
int rcu_shim_rseq_unlock_slow(rcu_shim_state *state, int64_t rseq_offset, uintptr_t counters) { (void)state; (void)rseq_offset; (void)counters; __asm__ __volatile__("" ::: "memory"); return -1; }
#endif

/// The offset from the thread pointer of a per-thread stand-in for glibc's
/// rseq area, which the inlined fast path arms in every mode but
/// rseq+membarrier: its stores must land in memory of this thread's, and
/// glibc's area may not exist (offset 0 would name the TCB itself). The
/// fast path's bound is 0 in those modes, so it never commits; the
/// stand-in's cpu_id is out of range as well. Initial-exec TLS, so the
/// offset is the same on every thread. 0 where rseq is not compiled.
int64_t rcu_shim_standin_offset(void);

/// 1 when this build contains the rseq critical sections (x86_64 Linux).
static inline int rcu_shim_rseq_compiled(void) { return RCU_SHIM_HAVE_RSEQ; }

#ifdef __cplusplus
}
#endif
#endif
