/*
 * borrow.h: in debug and sanitizer builds (IK_CHECK_BORROWED: CMAKE_BUILD_TYPE
 * Debug or INTAKE_SANITIZE=ON), catches a plugin that frees a record's
 * payload it only borrowed (json_object_put without a json_object_get of its
 * own) during process() or write().
 *
 * Before the call the engine takes its own reference on each payload (and a
 * deep copy); after it, it drops that reference: when json_object_put says
 * that freed the object, ours was the last one, so the plugin had dropped the
 * record's. The record then gets the copy back, its result becomes IK_FAIL
 * with a reason naming the plugin and the record, and an error is logged:
 * the record is dead-lettered instead of used after free. A plugin that
 * replaced the payload (record_set_payload) is not suspected. Records that
 * several sinks hold at once are not checked (two threads would share the
 * reference count). In other builds both calls are empty inline functions.
 */
#ifndef IK_BORROW_H
#define IK_BORROW_H

#include <stddef.h>

#include <intake/plugin.h>

#include "instance.h"

/* One call's references; on the caller's stack. */
typedef struct ik_borrow {
    json_object **held; /* per record: our reference, then the copy; NULL: not checking */
    size_t n;
} ik_borrow;

#ifdef IK_CHECK_BORROWED
/* Takes the references for the n records about to go into inst's plugin.
 * Without memory the call is simply not checked. */
void ik_borrow_begin(ik_borrow *b, ik_instance *inst, ik_record *const *recs, size_t n);
/* After the call: drops them and fails (in results, the engine's layout)
 * each record whose payload the plugin freed. */
void ik_borrow_end(ik_borrow *b, ik_instance *inst, ik_record *const *recs, ik_result *results);
#else
static inline void ik_borrow_begin(ik_borrow *b, ik_instance *inst, ik_record *const *recs,
                                   size_t n)
{
    (void)b, (void)inst, (void)recs, (void)n;
}
static inline void ik_borrow_end(ik_borrow *b, ik_instance *inst, ik_record *const *recs,
                                 ik_result *results)
{
    (void)b, (void)inst, (void)recs, (void)results;
}
#endif

#endif
