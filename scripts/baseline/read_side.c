// Plain C baseline for the read-side figures rcu-stress reports: liburcu-memb's
// inlined read lock/unlock (_LGPL_SOURCE) and swift-rcu's own rseq pair, from a
// C loop, so docs/benchmarks.md can show that rcu-stress's Swift loops give
// liburcu what a C user gets. Built and run by scripts/baseline/run.sh.
#define _LGPL_SOURCE 1
#define _GNU_SOURCE 1
#include <urcu/urcu-memb.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sched.h>
#include "rcu_shims.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define BATCH (1 << 14)

static double bench_liburcu(double seconds) {
    urcu_memb_register_thread();
    unsigned long long ops = 0;
    double start = now(), end;
    do {
        for (int i = 0; i < BATCH; i++) {
            urcu_memb_read_lock();
            urcu_memb_read_unlock();
        }
        ops += BATCH;
    } while ((end = now()) - start < seconds);
    urcu_memb_unregister_thread();
    return (end - start) * 1e9 / ops;
}

static double bench_rseq(rcu_shim_state *state, double seconds) {
    int64_t offset = state->header.rseq_offset;
    uint32_t bound = state->header.slot_count;
    unsigned long long ops = 0, aborts = 0;
    double start = now(), end;
    do {
        for (int i = 0; i < BATCH; i++) {
            long index;
            while ((index = rcu_shim_rseq_lock(state, offset, bound)) < 0) aborts++;
            while (rcu_shim_rseq_unlock(state, offset, bound, index) != 0) aborts++;
        }
        ops += BATCH;
    } while ((end = now()) - start < seconds);
    if (aborts * 1000 > ops) fprintf(stderr, "rseq aborted %llu times in %llu pairs\n", aborts, ops);
    return (end - start) * 1e9 / ops;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof(set), &set);
    rcu_shim_state *state = rcu_shim_state_create(rcu_shim_possible_cpus());
    if (!rcu_shim_rseq_usable()) { fprintf(stderr, "rseq unusable\n"); return 1; }
    for (int round = 0; round < rounds; round++) {
        double l = bench_liburcu(seconds / rounds);
        double r = bench_rseq(state, seconds / rounds);
        printf("round %d: liburcu-memb lock+unlock %.3f ns, swift-rcu rseq pair (C) %.3f ns\n", round + 1, l, r);
    }
    return 0;
}
