// Small helpers for rcu-stress that Swift's Glibc module does not expose
// (GNU extensions, reached here through raw syscalls so this module keeps
// the same feature macros as Glibc). Not part of any library product.
#ifndef STRESS_SUPPORT_H
#define STRESS_SUPPORT_H
#include <unistd.h>
#include <sys/syscall.h>
#include <signal.h>
#include <string.h>

/// Pins the calling thread to one CPU (< 1024); returns 0 or -1.
static inline int stress_pin_to_cpu(int cpu) {
    unsigned long mask[16] = {0};
    if (cpu < 0 || cpu >= 1024) return -1;
    mask[cpu / 64] |= 1UL << (cpu % 64);
    return (int)syscall(SYS_sched_setaffinity, 0, sizeof(mask), mask);
}

/// The CPU the calling thread runs on now, or -1.
static inline int stress_current_cpu(void) {
    unsigned cpu = 0;
    return syscall(SYS_getcpu, &cpu, NULL, NULL) == 0 ? (int)cpu : -1;
}
/// The calling thread's kernel TID.
static inline int stress_gettid(void) { return (int)syscall(SYS_gettid); }

/// Pins thread `tid` to one CPU (< 1024); returns 0 or -1.
static inline int stress_pin_thread(int tid, int cpu) {
    unsigned long mask[16] = {0};
    if (cpu < 0 || cpu >= 1024) return -1;
    mask[cpu / 64] |= 1UL << (cpu % 64);
    return (int)syscall(SYS_sched_setaffinity, tid, sizeof(mask), mask);
}

/// Installs `handler` for `signal` with SA_RESTART; returns 0 or -1.
static inline int stress_install_handler(int signal, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    return sigaction(signal, &action, NULL);
}
/// futex wait/wake on a 32-bit word (private). For one-shot completions.
static inline long stress_futex_wait(unsigned int *word, unsigned int expected, long timeout_ns) {
    struct { long tv_sec; long tv_nsec; } timeout = { timeout_ns / 1000000000, timeout_ns % 1000000000 };
    return syscall(SYS_futex, word, 128 /* FUTEX_WAIT_PRIVATE */, expected, timeout_ns >= 0 ? &timeout : NULL, NULL, 0);
}
static inline long stress_futex_wake(unsigned int *word) {
    return syscall(SYS_futex, word, 129 /* FUTEX_WAKE_PRIVATE */, 0x7fffffff, NULL, NULL, 0);
}
static inline unsigned int stress_atomic_load(unsigned int *word) { return __atomic_load_n(word, __ATOMIC_SEQ_CST); }
static inline void stress_atomic_store(unsigned int *word, unsigned int value) { __atomic_store_n(word, value, __ATOMIC_SEQ_CST); }
#endif
