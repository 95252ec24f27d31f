// Exit-test children (Swift Testing spawns them from this process) start
// with glibc's per-thread cache of freed chunks made large, so that a chunk a
// thread frees stays in that thread's cache instead of going back to the
// arena another thread allocates from.
//
// Why: the canary children of the container tortures free nodes that
// readers still walk (grace periods that wait for nobody). Their detectors
// (a value's poisoned lease) fire only while freed memory still holds the
// freed node; once another thread recycles it, a reader follows a garbage
// link and the child crashes first, which does not count as caught. With
// reclamation fast enough, that happened in all 8 attempts of a loaded CI
// run. The correct modes' children are unaffected (they free nothing early),
// and this process itself does not change: glibc reads tunables at startup.
//
// The constructor runs before main, while the process has one thread.
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

__attribute__((constructor))
static void rcu_tests_configure_exit_test_children(void) {
    const char *tunable = "glibc.malloc.tcache_count=65535";
    const char *existing = getenv("GLIBC_TUNABLES");
    if (existing == NULL || existing[0] == '\0') {
        setenv("GLIBC_TUNABLES", tunable, 1);
    } else if (strstr(existing, "glibc.malloc.tcache_count") == NULL) {
        char combined[4096];
        if (snprintf(combined, sizeof combined, "%s:%s", existing, tunable) < (int)sizeof combined) {
            setenv("GLIBC_TUNABLES", combined, 1);
        }
    }
}
