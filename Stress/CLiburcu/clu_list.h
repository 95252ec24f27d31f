// liburcu's RCU list (cds_list_*_rcu) for rcu-stress's list workloads, as a
// C user with _LGPL_SOURCE writes it: nodes embed their cds_list_head and
// rcu_head, writers serialise on a pthread mutex (as rculist's writers must),
// removed nodes are freed by call_rcu, and traversals are
// cds_list_for_each_entry_rcu inside rcu_read_lock, all static inline so
// they reach the Swift loops inlined.
#ifndef CLU_LIST_H
#define CLU_LIST_H
#include "clu_shim.h"
#include <urcu/rculist.h>
#include <pthread.h>

struct clu_list;

/// Called from the call_rcu callback that frees a node, before the free
/// (the torture poisons the node's lease here).
typedef void (*clu_list_free_hook)(void *context, long lease);

struct clu_list_node {
    struct cds_list_head link;
    long value;
    long lease;
    struct clu_list *list;
    struct rcu_head rcu;
};

struct clu_list {
    struct cds_list_head head;
    pthread_mutex_t lock;
    clu_list_free_hook hook;
    void *hook_context;
    long live_nodes;  /* allocated minus freed, atomic */
};

static inline struct clu_list *clu_list_create(clu_list_free_hook hook, void *hook_context) {
    struct clu_list *list = malloc(sizeof(*list));
    if (!list) abort();
    CDS_INIT_LIST_HEAD(&list->head);
    pthread_mutex_init(&list->lock, NULL);
    list->hook = hook;
    list->hook_context = hook_context;
    list->live_nodes = 0;
    return list;
}

/// Frees the list head; call after clu_list_remove_all and clu_barrier.
static inline void clu_list_destroy(struct clu_list *list) {
    pthread_mutex_destroy(&list->lock);
    free(list);
}

static inline long clu_list_live_nodes(struct clu_list *list) {
    return __atomic_load_n(&list->live_nodes, __ATOMIC_SEQ_CST);
}

static void clu_list_free_node(struct rcu_head *head) {
    struct clu_list_node *node = caa_container_of(head, struct clu_list_node, rcu);
    struct clu_list *list = node->list;
    if (list->hook) list->hook(list->hook_context, node->lease);
    node->value = -0xDEAD;
    __atomic_sub_fetch(&list->live_nodes, 1, __ATOMIC_SEQ_CST);
    free(node);
}

static inline struct clu_list_node *clu_list_new_node(struct clu_list *list, long value, long lease) {
    struct clu_list_node *node = malloc(sizeof(*node));
    if (!node) abort();
    node->value = value;
    node->lease = lease;
    node->list = list;
    __atomic_add_fetch(&list->live_nodes, 1, __ATOMIC_SEQ_CST);
    return node;
}

// MARK: writers (under the list's mutex)

static inline struct clu_list_node *clu_list_append(struct clu_list *list, long value, long lease) {
    struct clu_list_node *node = clu_list_new_node(list, value, lease);
    pthread_mutex_lock(&list->lock);
    cds_list_add_tail_rcu(&node->link, &list->head);
    pthread_mutex_unlock(&list->lock);
    return node;
}

static inline struct clu_list_node *clu_list_prepend(struct clu_list *list, long value, long lease) {
    struct clu_list_node *node = clu_list_new_node(list, value, lease);
    pthread_mutex_lock(&list->lock);
    cds_list_add_rcu(&node->link, &list->head);
    pthread_mutex_unlock(&list->lock);
    return node;
}

/// `anchor` must be in the list (the caller's bookkeeping guarantees it).
static inline struct clu_list_node *clu_list_insert_after(struct clu_list *list, struct clu_list_node *anchor,
                                                          long value, long lease) {
    struct clu_list_node *node = clu_list_new_node(list, value, lease);
    pthread_mutex_lock(&list->lock);
    cds_list_add_rcu(&node->link, &anchor->link);
    pthread_mutex_unlock(&list->lock);
    return node;
}

static inline struct clu_list_node *clu_list_insert_before(struct clu_list *list, struct clu_list_node *anchor,
                                                           long value, long lease) {
    struct clu_list_node *node = clu_list_new_node(list, value, lease);
    pthread_mutex_lock(&list->lock);
    cds_list_add_tail_rcu(&node->link, &anchor->link);
    pthread_mutex_unlock(&list->lock);
    return node;
}

/// Unlinks `node` and call_rcu-frees it; returns its value.
static inline long clu_list_remove(struct clu_list *list, struct clu_list_node *node) {
    pthread_mutex_lock(&list->lock);
    cds_list_del_rcu(&node->link);
    pthread_mutex_unlock(&list->lock);
    long value = node->value;
    urcu_memb_call_rcu(&node->rcu, clu_list_free_node);
    return value;
}

/// Replaces `old` by a new node; writes the old value to *old_value.
static inline struct clu_list_node *clu_list_replace(struct clu_list *list, struct clu_list_node *old,
                                                     long value, long lease, long *old_value) {
    struct clu_list_node *node = clu_list_new_node(list, value, lease);
    pthread_mutex_lock(&list->lock);
    cds_list_replace_rcu(&old->link, &node->link);
    pthread_mutex_unlock(&list->lock);
    *old_value = old->value;
    urcu_memb_call_rcu(&old->rcu, clu_list_free_node);
    return node;
}

/// Removes the first node whose value is a multiple of `divisor`; returns 1
/// and its value in *value, or 0.
static inline int clu_list_remove_first_multiple(struct clu_list *list, long divisor, long *value) {
    struct clu_list_node *node, *found = NULL;
    pthread_mutex_lock(&list->lock);
    cds_list_for_each_entry(node, &list->head, link) {
        if (node->value % divisor == 0) { found = node; break; }
    }
    if (found) cds_list_del_rcu(&found->link);
    pthread_mutex_unlock(&list->lock);
    if (!found) return 0;
    *value = found->value;
    urcu_memb_call_rcu(&found->rcu, clu_list_free_node);
    return 1;
}

/// Removes the first node; returns 1 and its value in *value, or 0.
static inline int clu_list_pop_first(struct clu_list *list, long *value) {
    struct clu_list_node *found = NULL;
    pthread_mutex_lock(&list->lock);
    if (!cds_list_empty(&list->head)) {
        found = cds_list_entry(list->head.next, struct clu_list_node, link);
        cds_list_del_rcu(&found->link);
    }
    pthread_mutex_unlock(&list->lock);
    if (!found) return 0;
    *value = found->value;
    urcu_memb_call_rcu(&found->rcu, clu_list_free_node);
    return 1;
}

/// Unlinks every node and call_rcu-frees each; returns how many.
static inline long clu_list_remove_all(struct clu_list *list) {
    struct clu_list_node *node, *next;
    long count = 0;
    pthread_mutex_lock(&list->lock);
    cds_list_for_each_entry_safe(node, next, &list->head, link) {
        cds_list_del_rcu(&node->link);
        urcu_memb_call_rcu(&node->rcu, clu_list_free_node);
        count++;
    }
    pthread_mutex_unlock(&list->lock);
    return count;
}

// MARK: readers

/// One traversal summing every value, inside one read section: the
/// benchmark's unit of work, as a C user writes it.
CLU_INLINE long clu_list_sum(struct clu_list *list) {
    struct clu_list_node *node;
    long sum = 0;
    urcu_memb_read_lock();
    cds_list_for_each_entry_rcu(node, &list->head, link) {
        sum += node->value;
    }
    urcu_memb_read_unlock();
    return sum;
}

/// Copies up to `capacity` values into `buffer`, inside one read section;
/// returns how many the list had (may exceed capacity).
static inline long clu_list_collect(struct clu_list *list, long *buffer, long capacity) {
    struct clu_list_node *node;
    long count = 0;
    urcu_memb_read_lock();
    cds_list_for_each_entry_rcu(node, &list->head, link) {
        if (count < capacity) buffer[count] = node->value;
        count++;
    }
    urcu_memb_read_unlock();
    return count;
}

/// Step-by-step traversal for Swift readers (inside clu_read_lock): the
/// first node, or NULL when empty.
CLU_INLINE struct clu_list_node *clu_list_first(struct clu_list *list) {
    struct cds_list_head *next = rcu_dereference(list->head.next);
    return next == &list->head ? NULL : cds_list_entry(next, struct clu_list_node, link);
}

/// The node after `node`, or NULL at the end (inside clu_read_lock).
CLU_INLINE struct clu_list_node *clu_list_next(struct clu_list *list, struct clu_list_node *node) {
    struct cds_list_head *next = rcu_dereference(node->link.next);
    return next == &list->head ? NULL : cds_list_entry(next, struct clu_list_node, link);
}
#endif
