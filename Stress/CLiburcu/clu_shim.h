// liburcu (memb flavor) for rcu-stress, the reference oracle. _LGPL_SOURCE
// makes the read-side fast paths static inline, exactly as a C program built
// with _LGPL_SOURCE gets them; these wrappers are always_inline so they reach
// the Swift benchmark loops inlined (checked with objdump, docs/benchmarks.md).
#ifndef CLU_SHIM_H
#define CLU_SHIM_H
#include "stress_support.h"
#define _LGPL_SOURCE 1
#include <urcu/urcu-memb.h>
#include <stdlib.h>

#define CLU_INLINE static inline __attribute__((always_inline))

CLU_INLINE void clu_register_thread(void) { urcu_memb_register_thread(); }
CLU_INLINE void clu_unregister_thread(void) { urcu_memb_unregister_thread(); }
CLU_INLINE void clu_read_lock(void) { urcu_memb_read_lock(); }
CLU_INLINE void clu_read_unlock(void) { urcu_memb_read_unlock(); }
CLU_INLINE void clu_synchronize(void) { urcu_memb_synchronize_rcu(); }
CLU_INLINE void *clu_dereference(void **slot) { return rcu_dereference(*slot); }
CLU_INLINE void clu_assign(void **slot, void *value) { rcu_assign_pointer(*slot, value); }

/// call_rcu for a (context, function) pair: allocates the rcu_head the API
/// needs (a C user embeds it in the object; the allocation is counted in
/// both impls of the retire benchmark, which allocate the retired object).
struct clu_callback { struct rcu_head head; void *context; void (*function)(void *); };

static void clu_callback_trampoline(struct rcu_head *head) {
    struct clu_callback *callback = caa_container_of(head, struct clu_callback, head);
    callback->function(callback->context);
    free(callback);
}

static inline void clu_call_rcu(void *context, void (*function)(void *)) {
    struct clu_callback *callback = malloc(sizeof(*callback));
    if (!callback) abort();
    callback->context = context;
    callback->function = function;
    urcu_memb_call_rcu(&callback->head, clu_callback_trampoline);
}

/// call_rcu that frees `object` (the retire benchmark's liburcu side: the
/// object itself embeds the rcu_head, as a C user writes it).
struct clu_object { struct rcu_head head; long payload[4]; };

static void clu_free_object(struct rcu_head *head) {
    free(caa_container_of(head, struct clu_object, head));
}

static inline void clu_retire_new_object(long value) {
    struct clu_object *object = malloc(sizeof(*object));
    if (!object) abort();
    object->payload[0] = value;
    urcu_memb_call_rcu(&object->head, clu_free_object);
}

/// retire-only's liburcu side: call_rcu on a preallocated object with a
/// callback that frees nothing, so only liburcu's own cost is measured.
static void clu_ignore_object(struct rcu_head *head) { (void)head; }

CLU_INLINE void clu_retire_preallocated(struct clu_object *object) {
    urcu_memb_call_rcu(&object->head, clu_ignore_object);
}

CLU_INLINE void clu_barrier(void) { urcu_memb_barrier(); }
#endif
