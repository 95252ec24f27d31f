// cds_lfht (liburcu's resizable lock-free hash table) for rcu-stress's
// hashmap workloads. Filled in by the hashmap issue.
#ifndef CLU_LFHT_H
#define CLU_LFHT_H
#include "clu_shim.h"
#endif
