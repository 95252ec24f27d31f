// liburcu (memb flavor) for rcu-stress, the reference oracle. _LGPL_SOURCE
// makes the read-side fast paths static inline, exactly as a C program built
// with _LGPL_SOURCE gets them; these wrappers are always_inline so they reach
// the Swift benchmark loops inlined (checked with objdump, docs/benchmarks.md).
#ifndef CLU_SHIM_H
#define CLU_SHIM_H
#include "stress_support.h"
#define _LGPL_SOURCE 1
#include <urcu/urcu-memb.h>

#define CLU_INLINE static inline __attribute__((always_inline))

CLU_INLINE void clu_register_thread(void) { urcu_memb_register_thread(); }
CLU_INLINE void clu_unregister_thread(void) { urcu_memb_unregister_thread(); }
CLU_INLINE void clu_read_lock(void) { urcu_memb_read_lock(); }
CLU_INLINE void clu_read_unlock(void) { urcu_memb_read_unlock(); }
CLU_INLINE void clu_synchronize(void) { urcu_memb_synchronize_rcu(); }
CLU_INLINE void *clu_dereference(void **slot) { return rcu_dereference(*slot); }
CLU_INLINE void clu_assign(void **slot, void *value) { rcu_assign_pointer(*slot, value); }
#endif
