// cds_lfht, liburcu's resizable lock-free hash table (memb flavor), for
// rcu-stress's hashmap torture, oracle and bench. Keys and values are 64-bit
// integers; the caller supplies the hash (rcu-stress passes Swift's
// hashValue, so both maps see the same hash). The table calls themselves
// are liburcu-cds library calls, as for any C user; the read-side lock
// around them is the inline memb one from clu_shim.h.
#ifndef CLU_LFHT_H
#define CLU_LFHT_H
#include "clu_shim.h"
#include <urcu/rculfhash.h>
#include <stdint.h>

/// An entry. `release` (optional) is called with `context` and the value
/// when the entry is freed after a grace period: the torture poisons the
/// value's lease there.
struct clu_ht_node {
    struct cds_lfht_node node;
    int64_t key;
    int64_t value;
    struct rcu_head rcu;
    void (*release)(void *context, int64_t value);
    void *context;
};

static int clu_ht_match(struct cds_lfht_node *node, const void *key) {
    return caa_container_of(node, struct clu_ht_node, node)->key == *(const int64_t *)key;
}

static void clu_ht_free_node(struct rcu_head *head) {
    struct clu_ht_node *node = caa_container_of(head, struct clu_ht_node, rcu);
    if (node->release) node->release(node->context, node->value);
    free(node);
}

/// A table that resizes itself (in liburcu's resize worker) and counts its
/// entries, as rculfhash's users configure it.
static inline struct cds_lfht *clu_ht_new(unsigned long initial_buckets) {
    return cds_lfht_new_flavor(initial_buckets, 1, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                               &urcu_memb_flavor, NULL);
}

static inline struct clu_ht_node *clu_ht_make_node(int64_t key, int64_t value,
                                                   void (*release)(void *, int64_t), void *context) {
    struct clu_ht_node *node = malloc(sizeof(*node));
    if (!node) abort();
    cds_lfht_node_init(&node->node);
    node->key = key;
    node->value = value;
    node->release = release;
    node->context = context;
    return node;
}

/// Looks `key` up; call inside a read section. Returns the entry or NULL.
static inline struct clu_ht_node *clu_ht_find(struct cds_lfht *ht, unsigned long hash, int64_t key) {
    struct cds_lfht_iter iter;
    cds_lfht_lookup(ht, hash, clu_ht_match, &key, &iter);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&iter);
    return node ? caa_container_of(node, struct clu_ht_node, node) : NULL;
}

/// A whole lookup with its own read section: the benchmark's unit.
static inline __attribute__((always_inline))
int clu_ht_lookup(struct cds_lfht *ht, unsigned long hash, int64_t key, int64_t *value) {
    urcu_memb_read_lock();
    struct clu_ht_node *node = clu_ht_find(ht, hash, key);
    if (node) *value = node->value;
    urcu_memb_read_unlock();
    return node != NULL;
}

/// Insert or replace (cds_lfht_add_replace); the replaced entry is freed
/// after a grace period. Returns 1 and its value in *old when one was
/// replaced.
static inline int clu_ht_upsert(struct cds_lfht *ht, unsigned long hash, int64_t key, int64_t value,
                                int64_t *old, void (*release)(void *, int64_t), void *context) {
    struct clu_ht_node *node = clu_ht_make_node(key, value, release, context);
    urcu_memb_read_lock();
    struct cds_lfht_node *replaced = cds_lfht_add_replace(ht, hash, clu_ht_match, &key, &node->node);
    urcu_memb_read_unlock();
    if (!replaced) return 0;
    struct clu_ht_node *previous = caa_container_of(replaced, struct clu_ht_node, node);
    *old = previous->value;
    urcu_memb_call_rcu(&previous->rcu, clu_ht_free_node);
    return 1;
}

/// Insert unless present (cds_lfht_add_unique). Returns 1 when inserted;
/// otherwise 0 and the present value in *current.
static inline int clu_ht_insert_unique(struct cds_lfht *ht, unsigned long hash, int64_t key, int64_t value,
                                       int64_t *current, void (*release)(void *, int64_t), void *context) {
    struct clu_ht_node *node = clu_ht_make_node(key, value, release, context);
    urcu_memb_read_lock();
    struct cds_lfht_node *found = cds_lfht_add_unique(ht, hash, clu_ht_match, &key, &node->node);
    int inserted = found == &node->node;
    if (!inserted) *current = caa_container_of(found, struct clu_ht_node, node)->value;
    urcu_memb_read_unlock();
    if (!inserted) free(node);  // never published
    return inserted;
}

/// Removes `key`. Returns 1 and its value in *old when this call removed it
/// (a concurrent remover of the same entry makes it return 0).
static inline int clu_ht_remove(struct cds_lfht *ht, unsigned long hash, int64_t key, int64_t *old) {
    urcu_memb_read_lock();
    struct clu_ht_node *node = clu_ht_find(ht, hash, key);
    int removed = node && cds_lfht_del(ht, &node->node) == 0;
    if (removed) *old = node->value;
    urcu_memb_read_unlock();
    if (removed) urcu_memb_call_rcu(&node->rcu, clu_ht_free_node);
    return removed;
}

/// Adds an entry even when `key` is present (cds_lfht_add): the table then
/// holds the key twice. Only the torture's `--sabotage duplicate-stable`
/// does this, to show that its duplicate detector fires. Returns the entry,
/// for clu_ht_remove_node.
static inline struct clu_ht_node *clu_ht_add_duplicate(struct cds_lfht *ht, unsigned long hash, int64_t key,
                                                       int64_t value, void (*release)(void *, int64_t),
                                                       void *context) {
    struct clu_ht_node *node = clu_ht_make_node(key, value, release, context);
    urcu_memb_read_lock();
    cds_lfht_add(ht, hash, &node->node);
    urcu_memb_read_unlock();
    return node;
}

/// Removes the entry `node` (from clu_ht_add_duplicate) and frees it after a
/// grace period. Returns 1 when this call removed it.
static inline int clu_ht_remove_node(struct cds_lfht *ht, struct clu_ht_node *node) {
    urcu_memb_read_lock();
    int removed = cds_lfht_del(ht, &node->node) == 0;
    urcu_memb_read_unlock();
    if (removed) urcu_memb_call_rcu(&node->rcu, clu_ht_free_node);
    return removed;
}

/// The number of entries (cds_lfht_count_nodes; exact when quiescent).
static inline long clu_ht_count(struct cds_lfht *ht) {
    long before, count, after;
    urcu_memb_read_lock();
    cds_lfht_count_nodes(ht, &before, &count, &after);
    urcu_memb_read_unlock();
    return count;
}

/// Visits every entry inside one read section.
static inline void clu_ht_for_each(struct cds_lfht *ht, void *context,
                                   void (*visit)(void *context, int64_t key, int64_t value)) {
    struct cds_lfht_iter iter;
    struct clu_ht_node *node;
    urcu_memb_read_lock();
    cds_lfht_for_each_entry(ht, &iter, node, node) {
        visit(context, node->key, node->value);
    }
    urcu_memb_read_unlock();
}

/// Removes every entry (each freed after a grace period); returns how many.
static inline long clu_ht_remove_all(struct cds_lfht *ht) {
    struct cds_lfht_iter iter;
    struct clu_ht_node *node;
    long removed = 0;
    urcu_memb_read_lock();
    cds_lfht_for_each_entry(ht, &iter, node, node) {
        if (cds_lfht_del(ht, &node->node) == 0) {
            removed++;
            urcu_memb_call_rcu(&node->rcu, clu_ht_free_node);
        }
    }
    urcu_memb_read_unlock();
    return removed;
}

/// Resizes to `buckets` now (cds_lfht_resize); from a registered thread,
/// outside a read section.
static inline void clu_ht_resize(struct cds_lfht *ht, unsigned long buckets) {
    cds_lfht_resize(ht, buckets);
}

/// Empties and frees the table; not inside a read section.
static inline void clu_ht_destroy(struct cds_lfht *ht) {
    clu_ht_remove_all(ht);
    urcu_memb_barrier();
    if (cds_lfht_destroy(ht, NULL) != 0) abort();
}
#endif
