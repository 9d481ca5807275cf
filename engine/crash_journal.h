/*
 * crash_journal.h: the poison-record journal of one pipeline.
 *
 * Before each process() or write() the calling worker notes the ids of the
 * call's records in its own slot of a memory-mapped file beside the state
 * store (<state dir>/crash-journal-<pipeline>.slots) and clears the slot
 * when the call returns. A shared file mapping is the kernel's page cache,
 * so what was noted survives kill -9 and a fatal signal at the cost of a
 * memcpy (engines sharing the folder take ".1", ".2"...; a state store commit per call cost more
 * than the 5% the engine benchmark allows, and a note written later than the call would miss the
 * crash it is for). On the next start every record still noted counts one
 * crash for that (stage, source, id) in the state store, namespace
 * "intake/crash-journal/<pipeline>" (key "<stage>/<source>/<id>", value
 * the count, TTL 7 days so records that never come back are forgotten).
 * The counts are then kept in memory: a record reaching a stage is looked
 * up without the store, and the lookup is free while no count exists.
 */
#ifndef IK_CRASH_JOURNAL_H
#define IK_CRASH_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "record.h"

struct ik_state;
typedef struct ik_cjournal ik_cjournal;

/* Bytes of one worker's slot; ids past it are not noted (not counted). */
#define IK_CJ_SLOT_SIZE 65536u
/* Engines that may run one pipeline on one state folder at once. */
#define IK_CJ_FILES 16u
/* How long a crash count is kept when its record does not come back. */
#define IK_CJ_TTL_MS (7ull * 24 * 3600 * 1000)

/*
 * Opens the journal of `pipeline` in the existing folder `dir` with nslots worker slots: counts the
 * crashes the previous run's file shows into the store `st`, loads every count of the pipeline,
 * then starts a fresh file. A bad file is reported (what and where) and ignored. Fails (err filled)
 * when the file cannot be made or IK_CJ_FILES engines hold every file of the pipeline. *out:
 * ik_cjournal_close.
 */
int ik_cjournal_open(struct ik_state *st, const char *dir, const char *pipeline, size_t nslots,
                     ik_cjournal **out, ik_err *err);
void ik_cjournal_close(ik_cjournal *j);

/* Notes the n records of a call of `plugin` at `stage` in slot `slot`
 * (one worker's; never shared between threads); done() clears it. */
void ik_cjournal_note(ik_cjournal *j, size_t slot, const char *stage, const char *plugin,
                      ik_record *const *recs, size_t n);
void ik_cjournal_done(ik_cjournal *j, size_t slot);

/* Clears every slot: the calls running now are not to count as crashes
 * (an operator forced the exit). */
void ik_cjournal_clear(ik_cjournal *j);

/* Crashes counted for rec at `stage` (0 when none). Any thread. */
unsigned ik_cjournal_crashes(ik_cjournal *j, const char *stage, const ik_record *rec);
/* rec was delivered or dead-lettered: its counts are deleted. Any thread. */
void ik_cjournal_forget(ik_cjournal *j, const ik_record *rec);

/* For tests: how many counts are held in memory. */
size_t ik_cjournal_size(ik_cjournal *j);

#endif
