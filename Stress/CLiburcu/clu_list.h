// liburcu's RCU list (cds_list_*_rcu) for rcu-stress's list workloads.
// Filled in by the list issue.
#ifndef CLU_LIST_H
#define CLU_LIST_H
#include "clu_shim.h"
#endif
