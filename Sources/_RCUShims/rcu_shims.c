// Syscalls and platform facts for swift-rcu. See include/rcu_shims.h.
#define _GNU_SOURCE
#include "rcu_shims.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>
#include <pthread.h>
#include <stdint.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <linux/futex.h>
#endif
#if RCU_SHIM_HAVE_RSEQ
#include <sys/rseq.h>
#endif

__thread __attribute__((tls_model("initial-exec"))) long rcu_shim_thread_read_depth = 0;
__thread __attribute__((tls_model("initial-exec"))) int rcu_shim_thread_runs_callbacks = 0;
__thread __attribute__((tls_model("initial-exec"))) uint64_t rcu_shim_thread_in_stall_handler = 0;

uint32_t *rcu_shim_word_create(void) {
    void *memory = NULL;
    if (posix_memalign(&memory, RCU_SHIM_LINE, RCU_SHIM_LINE) != 0) return NULL;
    memset(memory, 0, RCU_SHIM_LINE);
    return memory;
}

void rcu_shim_word_destroy(uint32_t *word) {
    free(word);
}

rcu_shim_state *rcu_shim_state_create(uint32_t slot_count) {
    if (slot_count == 0) slot_count = 1;
    size_t bytes = sizeof(rcu_shim_header) + (size_t)slot_count * sizeof(rcu_shim_slot);
    void *memory = NULL;
    if (posix_memalign(&memory, RCU_SHIM_LINE, bytes) != 0) return NULL;
    memset(memory, 0, bytes);
    rcu_shim_state *state = memory;
    state->header.slot_count = slot_count;
    state->header.rseq_offset = rcu_shim_rseq_offset();
    state->header.active = (uint64_t)rcu_shim_counters_for(state, 0);
    return state;
}

void rcu_shim_set_bounds(rcu_shim_state *state, uint32_t fast_bound, uint32_t rseq_bound) {
    state->header.fast_bound = fast_bound;
    state->header.rseq_bound = rseq_bound;
}

void rcu_shim_state_destroy(rcu_shim_state *state) {
    free(state);
}

// "0-1", "0-3,8-11", "0": the highest listed CPU + 1.
uint32_t rcu_shim_possible_cpus(void) {
    long highest = -1;
    FILE *file = fopen("/sys/devices/system/cpu/possible", "re");
    if (file != NULL) {
        char text[4096];
        size_t length = fread(text, 1, sizeof(text) - 1, file);
        fclose(file);
        text[length] = '\0';
        char *cursor = text;
        while (*cursor != '\0') {
            char *end;
            long value = strtol(cursor, &end, 10);
            if (end == cursor) break;
            if (value > highest) highest = value;
            cursor = end;
            if (*cursor == '-' || *cursor == ',') cursor++;
            else break;
        }
    }
    if (highest < 0) {
        long configured = sysconf(_SC_NPROCESSORS_CONF);
        highest = configured > 0 ? configured - 1 : 0;
    }
    if (highest > 65535) highest = 65535;
    return (uint32_t)(highest + 1);
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RCU_SHIM_TSAN 1
#endif
#endif
#if !defined(RCU_SHIM_TSAN) && defined(__SANITIZE_THREAD__)
#define RCU_SHIM_TSAN 1
#endif

int rcu_shim_built_with_tsan(void) {
#ifdef RCU_SHIM_TSAN
    return 1;
#else
    return 0;
#endif
}

int rcu_shim_rseq_usable(void) {
#if RCU_SHIM_HAVE_RSEQ
    if (__rseq_size == 0) return 0;
    char *thread_pointer;
    __asm__("movq %%fs:0, %0" : "=r"(thread_pointer));
    volatile struct rseq *area = (volatile struct rseq *)(thread_pointer + __rseq_offset);
    return (int32_t)area->cpu_id >= 0 ? 1 : 0;
#else
    return 0;
#endif
}

#if RCU_SHIM_HAVE_RSEQ
/// See rcu_shim_standin_offset. cpu_id is RSEQ_CPU_ID_UNINITIALIZED.
static __thread __attribute__((tls_model("initial-exec"), aligned(32)))
struct { uint32_t cpu_id_start; uint32_t cpu_id; uint64_t rseq_cs; uint32_t flags; } rcu_shim_thread_standin = { 0, (uint32_t)-1, 0, 0 };
#endif

int64_t rcu_shim_standin_offset(void) {
#if RCU_SHIM_HAVE_RSEQ
    char *thread_pointer;
    __asm__("movq %%fs:0, %0" : "=r"(thread_pointer));
    return (int64_t)((char *)&rcu_shim_thread_standin - thread_pointer);
#else
    return 0;
#endif
}

int64_t rcu_shim_rseq_offset(void) {
#if RCU_SHIM_HAVE_RSEQ
    return __rseq_size == 0 ? 0 : (int64_t)__rseq_offset;
#else
    return 0;
#endif
}

#if defined(__linux__) && defined(__NR_membarrier)
enum {
    RCU_MB_QUERY = 0,
    RCU_MB_PRIVATE_EXPEDITED = 1 << 3,
    RCU_MB_REGISTER_PRIVATE_EXPEDITED = 1 << 4,
    RCU_MB_PRIVATE_EXPEDITED_RSEQ = 1 << 7,
    RCU_MB_REGISTER_PRIVATE_EXPEDITED_RSEQ = 1 << 8,
};

static int rcu_shim_membarrier_call(int command) {
    long result = syscall(__NR_membarrier, command, 0, 0);
    return result < 0 ? -errno : (int)result;
}

int rcu_shim_membarrier_query(void) {
    return rcu_shim_membarrier_call(RCU_MB_QUERY);
}

int rcu_shim_membarrier_register(int rseq) {
    return rcu_shim_membarrier_call(rseq ? RCU_MB_REGISTER_PRIVATE_EXPEDITED_RSEQ
                                         : RCU_MB_REGISTER_PRIVATE_EXPEDITED);
}

int rcu_shim_membarrier(int rseq) {
    return rcu_shim_membarrier_call(rseq ? RCU_MB_PRIVATE_EXPEDITED_RSEQ : RCU_MB_PRIVATE_EXPEDITED);
}
#else
int rcu_shim_membarrier_query(void) { return -ENOSYS; }
int rcu_shim_membarrier_register(int rseq) { (void)rseq; return -ENOSYS; }
int rcu_shim_membarrier(int rseq) { (void)rseq; return -ENOSYS; }
#endif

#if defined(__linux__)
int rcu_shim_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns) {
    struct timespec timeout;
    struct timespec *timeout_pointer = NULL;
    if (timeout_ns >= 0) {
        timeout.tv_sec = timeout_ns / 1000000000;
        timeout.tv_nsec = timeout_ns % 1000000000;
        timeout_pointer = &timeout;
    }
    long result = syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout_pointer, NULL, 0);
    return result < 0 ? -errno : 0;
}

int rcu_shim_futex_wake(uint32_t *word, int32_t count) {
    long result = syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
    return result < 0 ? -errno : (int)result;
}
#else
int rcu_shim_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns) {
    (void)word; (void)expected;
    rcu_shim_sleep_ns(timeout_ns < 0 || timeout_ns > 1000000 ? 1000000 : timeout_ns);
    return -EAGAIN;
}
int rcu_shim_futex_wake(uint32_t *word, int32_t count) { (void)word; (void)count; return 0; }
#endif

int rcu_shim_mutex_lock_within(void *mutex, int64_t ns) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (ns < 0) ns = 0;
    int64_t total = (int64_t)deadline.tv_nsec + ns % 1000000000;
    deadline.tv_sec += (time_t)(ns / 1000000000 + total / 1000000000);
    deadline.tv_nsec = (long)(total % 1000000000);
#if defined(__GLIBC__) && !defined(RCU_SHIM_TSAN)
#if __GLIBC_PREREQ(2, 30)
#define RCU_SHIM_HAVE_CLOCKLOCK 1
#endif
#endif
#ifndef RCU_SHIM_HAVE_CLOCKLOCK
    // ThreadSanitizer may not intercept pthread_mutex_clocklock, and glibc
    // before 2.30 (and musl) lacks it: poll with trylock.
    for (;;) {
        int status = pthread_mutex_trylock((pthread_mutex_t *)mutex);
        if (status != EBUSY) return status;  // 0, or an error to report as such
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
            return ETIMEDOUT;
        rcu_shim_sleep_ns(100000);
    }
#else
    int status;
    do {
        status = pthread_mutex_clocklock((pthread_mutex_t *)mutex, CLOCK_MONOTONIC, &deadline);
    } while (status == EINTR);
    return status;
#endif
}

void rcu_shim_sleep_ns(int64_t ns) {
    if (ns <= 0) return;
    struct timespec request = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
    struct timespec remaining;
    while (nanosleep(&request, &remaining) != 0 && errno == EINTR) request = remaining;
}

void rcu_shim_yield(void) {
    sched_yield();
}

void rcu_shim_wake_updater(rcu_shim_state *state) {
    if (__atomic_exchange_n(&state->header.waiters, 0, __ATOMIC_RELAXED) != 0) {
        rcu_shim_futex_wake(&state->header.waiters, INT32_MAX);
    }
}

void rcu_shim_arm_waiter(rcu_shim_state *state) {
    __atomic_store_n(&state->header.waiters, 1, __ATOMIC_RELAXED);
}

void rcu_shim_disarm_waiter(rcu_shim_state *state) {
    __atomic_store_n(&state->header.waiters, 0, __ATOMIC_RELAXED);
}

void rcu_shim_wait_for_readers(rcu_shim_state *state, int64_t timeout_ns) {
    rcu_shim_futex_wait(&state->header.waiters, 1, timeout_ns);
}

// MARK: - fork

int rcu_shim_install_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
    return pthread_atfork(prepare, parent, child);
}

void rcu_shim_forgive_sections(rcu_shim_state *state, long index, uint64_t count) {
    // The child has only the forking thread; sections other threads had
    // open at fork() will never end. Count them as ended, on slot 0.
    __atomic_fetch_add(&state->slots[0].aunlock[index & 1], count, __ATOMIC_RELEASE);
}

void rcu_shim_reset_waiters(rcu_shim_state *state) {
    __atomic_store_n(&state->header.waiters, 0, __ATOMIC_RELAXED);
}
