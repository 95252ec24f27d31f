// _RCUShims: the only place where swift-rcu touches asm, syscalls and raw
// counter memory. Everything here is tiny on purpose; the algorithm and its
// correctness argument live in Sources/RCU and docs/design.md.
//
// Layout of a domain's counter block (one allocation, 128-byte aligned):
//
//   line 0          rcu_shim_header: period, slot count, glibc's rseq offset
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
    /// Grace-period phase; the active index is `period & 1`. Written only by
    /// the grace-period leader, read by every reader.
    uint64_t period;        // @0
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
    char pad[RCU_SHIM_LINE - 32];
} rcu_shim_header;

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

// MARK: - Allocation and platform facts (rcu_shims.c)

/// Allocates a zeroed counter block with `slot_count` slots; NULL on failure.
rcu_shim_state *rcu_shim_state_create(uint32_t slot_count);
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

static inline __attribute__((always_inline))
uint64_t rcu_shim_load_period(const rcu_shim_state *state) {
    // Acquire: a reader that sees a flipped period also sees every store the
    // grace-period leader made before flipping (release in rcu_shim_store_period).
    return __atomic_load_n(&state->header.period, __ATOMIC_ACQUIRE);
}

static inline __attribute__((always_inline))
void rcu_shim_store_period(rcu_shim_state *state, uint64_t value) {
    __atomic_store_n(&state->header.period, value, __ATOMIC_RELEASE);
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
/// Used only to decide whether a retire may wait for memory (it never waits
/// inside a read section). Initial-exec TLS: one %fs-relative add.
extern __thread __attribute__((tls_model("initial-exec"))) long rcu_shim_thread_read_depth;

static inline __attribute__((always_inline))
void rcu_shim_depth_enter(void) { rcu_shim_thread_read_depth += 1; }
static inline __attribute__((always_inline))
void rcu_shim_depth_exit(void) { rcu_shim_thread_read_depth -= 1; }
static inline __attribute__((always_inline))
long rcu_shim_depth(void) { return rcu_shim_thread_read_depth; }

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
// Each function arms glibc's per-thread rseq area with a descriptor placed in
// the __rseq_cs section, then runs [1, 2): load cpu_id, bounds-check it, and
// commit one `addq $1` to this CPU's slot. If the kernel preempts, migrates,
// signals, or IPIs (membarrier RSEQ) the thread inside [1, 2), it resumes at
// the abort handler (label 4, preceded by the RSEQ_SIG signature), which
// reports failure; so does an out-of-range cpu_id (rseq unregistered: -1/-2).
// Nothing was stored on failure, so the caller may retry or fall back.
// The "memory" clobber makes each a compiler barrier: (B) after the lock
// increment, paired with the updater's membarriers (A), (C) and (W); and (D)
// before the unlock increment, which with x86-TSO makes that increment a
// release, paired with the scans' acquire loads. See docs/design.md.
// Numeric local labels only: inlining may duplicate the asm.

#if RCU_SHIM_HAVE_RSEQ
#define RCU_SHIM_RSEQ_SIG 0x53053053

/// Lock increment. Returns the period index used (0 or 1), or -1 on abort.
/// `rseq_offset` is glibc's `__rseq_offset` and `bound` the number of slots
/// (or 0 to make every attempt fail, a test hook); callers pass both from immutable fields so the
/// compiler keeps them in registers across a loop of sections.
/// The success path falls straight through; failures run in __rseq_failure.
static inline __attribute__((always_inline))
long rcu_shim_rseq_lock(rcu_shim_state *state, int64_t rseq_offset, uint32_t bound) {
    long index;
    uint64_t scratch;
    __asm__ __volatile__(
        ".pushsection __rseq_cs, \"aw\"\n\t"
        ".balign 32\n\t"
        "3:\n\t"
        ".long 0x0, 0x0\n\t"                  // version, flags
        ".quad 1f, (2f - 1f), 4f\n\t"         // start_ip, post_commit_offset, abort_ip
        ".popsection\n\t"
        "leaq 3b(%%rip), %[scratch]\n\t"
        "movq %[scratch], %%fs:8(%[offset])\n\t"   // rseq->rseq_cs = &descriptor
        "1:\n\t"
        "movl %%fs:4(%[offset]), %k[scratch]\n\t" // cpu_id (-1/-2 when unregistered)
        "cmpl %[bound], %k[scratch]\n\t"          // unsigned: negatives fail too
        "jae 4f\n\t"
        "movq (%[state]), %[index]\n\t"           // period, loaded inside the section
        "andl $1, %k[index]\n\t"
        "shlq $7, %[scratch]\n\t"
        "addq %[state], %[scratch]\n\t"
        "addq $1, 128(%[scratch], %[index], 8)\n\t" // commit: slots[cpu].lock[index]++
        "2:\n\t"
        ".pushsection __rseq_failure, \"ax\"\n\t"
        ".byte 0x0f, 0xb9, 0x3d\n\t"              // ud1 <sig>(%%rip), %%edi: traps if ever executed
        ".long 0x53053053\n\t"                    // RSEQ_SIG, checked by the kernel before abort_ip
        "4:\n\t"
        "movq $-1, %[index]\n\t"
        "jmp 2b\n\t"
        ".popsection\n\t"
        : [index] "=&r"(index), [scratch] "=&r"(scratch)
        : [state] "r"(state), [offset] "r"(rseq_offset), [bound] "r"(bound)
        : "memory", "cc");
    return index;
}

/// Unlock increment for `index` on the current CPU. Returns 0, or -1 on abort.
/// The commit is a plain store after a compiler barrier: on x86-TSO that is a
/// release, so the section's accesses are ordered before it.
static inline __attribute__((always_inline))
int rcu_shim_rseq_unlock(rcu_shim_state *state, int64_t rseq_offset, uint32_t bound, long index) {
    int result;
    uint64_t scratch;
    __asm__ __volatile__(
        ".pushsection __rseq_cs, \"aw\"\n\t"
        ".balign 32\n\t"
        "3:\n\t"
        ".long 0x0, 0x0\n\t"
        ".quad 1f, (2f - 1f), 4f\n\t"
        ".popsection\n\t"
        "xorl %[result], %[result]\n\t"
        "leaq 3b(%%rip), %[scratch]\n\t"
        "movq %[scratch], %%fs:8(%[offset])\n\t"
        "1:\n\t"
        "movl %%fs:4(%[offset]), %k[scratch]\n\t"
        "cmpl %[bound], %k[scratch]\n\t"
        "jae 4f\n\t"
        "shlq $7, %[scratch]\n\t"
        "addq %[state], %[scratch]\n\t"
        "addq $1, 144(%[scratch], %[index], 8)\n\t" // commit: slots[cpu].unlock[index]++
        "2:\n\t"
        ".pushsection __rseq_failure, \"ax\"\n\t"
        ".byte 0x0f, 0xb9, 0x3d\n\t"
        ".long 0x53053053\n\t"
        "4:\n\t"
        "movl $-1, %[result]\n\t"
        "jmp 2b\n\t"
        ".popsection\n\t"
        : [result] "=&r"(result), [scratch] "=&r"(scratch)
        : [state] "r"(state), [offset] "r"(rseq_offset), [bound] "r"(bound), [index] "r"(index & 1)
        : "memory", "cc");
    return result;
}
#else
static inline __attribute__((always_inline))
long rcu_shim_rseq_lock(rcu_shim_state *state, int64_t rseq_offset, uint32_t bound) { (void)state; (void)rseq_offset; (void)bound; __asm__ __volatile__("" ::: "memory"); return -1; }
static inline __attribute__((always_inline))
int rcu_shim_rseq_unlock(rcu_shim_state *state, int64_t rseq_offset, uint32_t bound, long index) { (void)state; (void)rseq_offset; (void)bound; (void)index; __asm__ __volatile__("" ::: "memory"); return -1; }
#endif

/// 1 when this build contains the rseq critical sections (x86_64 Linux).
static inline int rcu_shim_rseq_compiled(void) { return RCU_SHIM_HAVE_RSEQ; }

#ifdef __cplusplus
}
#endif
#endif
