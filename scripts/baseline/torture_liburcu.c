// Plain C twin of `rcu-stress torture --flavor liburcu-memb --workload pointer`
// (no faults): the same ring, the same reader loop (dwell re-reads, age and
// state checks), the same updater steps, with liburcu-memb's read lock and
// synchronize_rcu. docs/testing.md compares its rates with rcu-stress's to
// show the Swift harness gives liburcu what a C program gets.
#define _LGPL_SOURCE 1
#define _GNU_SOURCE 1
#include <urcu/urcu-memb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LIVE 0x5AFE
#define POISON (-0xDEAD)
#define RECYCLE_AGE 8
#define MAX_ELEMENTS 64

struct element { _Atomic long age; _Atomic long state; };
static struct element ring[MAX_ELEMENTS];
static int ring_count;
static _Atomic int current;
static pthread_mutex_t book_lock = PTHREAD_MUTEX_INITIALIZER;
static int free_list[MAX_ELEMENTS], free_count;
static int retired[MAX_ELEMENTS], retired_count;
static _Atomic int stop;
static _Atomic long reads, updates, violations;
static int dwell = 64;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *reader(void *arg) {
    (void)arg;
    urcu_memb_register_thread();
    long local = 0, bad = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 64; i++) {
            urcu_memb_read_lock();
            struct element *e = &ring[atomic_load_explicit(&current, memory_order_acquire)];
            long state = atomic_load_explicit(&e->state, memory_order_relaxed);
            for (int spins = 0; spins < dwell && state == LIVE; spins++)
                state = atomic_load_explicit(&e->state, memory_order_relaxed);
            long age = atomic_load_explicit(&e->age, memory_order_relaxed);
            if (state != LIVE || age >= 2) bad++;
            urcu_memb_read_unlock();
        }
        local += 64;
    }
    atomic_fetch_add(&reads, local);
    atomic_fetch_add(&violations, bad);
    urcu_memb_unregister_thread();
    return NULL;
}

static void update_once(void) {
    int waiting[MAX_ELEMENTS], waiting_count = 0;
    pthread_mutex_lock(&book_lock);
    if (free_count > 0) {
        int fresh = free_list[0];
        memmove(free_list, free_list + 1, (size_t)(--free_count) * sizeof(int));
        atomic_store_explicit(&ring[fresh].age, 0, memory_order_relaxed);
        atomic_store_explicit(&ring[fresh].state, LIVE, memory_order_relaxed);
        int old = atomic_exchange_explicit(&current, fresh, memory_order_acq_rel);
        atomic_store_explicit(&ring[old].age, 1, memory_order_relaxed);
        retired[retired_count++] = old;
        memcpy(waiting, retired, (size_t)retired_count * sizeof(int));
        waiting_count = retired_count;
    }
    pthread_mutex_unlock(&book_lock);
    urcu_memb_synchronize_rcu();
    pthread_mutex_lock(&book_lock);
    int still = 0;
    for (int i = 0; i < retired_count; i++) {
        int index = retired[i];
        long age = atomic_load_explicit(&ring[index].age, memory_order_relaxed);
        for (int w = 0; w < waiting_count; w++) {
            if (waiting[w] == index) {
                atomic_store_explicit(&ring[index].age, ++age, memory_order_relaxed);
                break;
            }
        }
        if (age >= 2) atomic_store_explicit(&ring[index].state, POISON, memory_order_relaxed);
        if (age >= RECYCLE_AGE) free_list[free_count++] = index;
        else retired[still++] = index;
    }
    retired_count = still;
    pthread_mutex_unlock(&book_lock);
    atomic_fetch_add(&updates, 1);
}

static void *updater(void *arg) {
    (void)arg;
    urcu_memb_register_thread();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) update_once();
    urcu_memb_unregister_thread();
    return NULL;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 4;
    int readers = argc > 2 ? atoi(argv[2]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    int updaters = argc > 3 ? atoi(argv[3]) : 1;
    ring_count = 16 + 16 * updaters;
    if (ring_count > MAX_ELEMENTS) ring_count = MAX_ELEMENTS;
    for (int i = 0; i < ring_count; i++) {
        atomic_store(&ring[i].state, i == 0 ? LIVE : POISON);
        if (i > 0) free_list[free_count++] = i;
    }
    pthread_t threads[256];
    int count = 0;
    double start = now();
    for (int i = 0; i < readers; i++) pthread_create(&threads[count++], NULL, reader, NULL);
    for (int i = 0; i < updaters; i++) pthread_create(&threads[count++], NULL, updater, NULL);
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, 1);
    for (int i = 0; i < count; i++) pthread_join(threads[i], NULL);
    double elapsed = now() - start;
    printf("C liburcu-memb torture: %d readers, %d updaters, %.2f s: reads/s %.4g, updates/s %.4g, violations %ld\n",
           readers, updaters, elapsed, reads / elapsed, updates / elapsed, (long)violations);
    return violations == 0 ? 0 : 1;
}
