/*
 * crash.h: crash safety around plugin calls.
 *
 * Before each plugin call the engine prepares, on the calling thread, a note
 * naming the call (pipeline, stage, plugin, which callback, the ids of its
 * records, bounded). A fatal signal (SEGV, BUS, FPE, ILL, ABRT) then writes
 * that note as one line to stderr with write(2) alone, restores the default
 * action and re-raises, so the exit status still names the signal and a core
 * dump still happens where enabled. Outside any call the line says the engine
 * itself crashed. Handlers run on a per-thread alternate signal stack, so a
 * stack overflow inside a plugin still prints the line.
 *
 * The same notes let shutdown name a call that never returns
 * (ik_crash_each_running).
 */
#ifndef IK_CRASH_H
#define IK_CRASH_H

#include <stddef.h>
#include <stdint.h>

#include "instance.h"
#include "record.h"

/* Ids named in a note; the rest are counted as "+K more". */
#define IK_CRASH_IDS 16
/* Room for the whole note text; a longer text is cut at an id boundary. */
#define IK_CRASH_TEXT 1024

/* One plugin call in progress on one thread; owned by the caller (a worker's
 * struct or a stack frame) and valid from ik_crash_enter to ik_crash_leave. */
typedef struct ik_crash_note {
    struct ik_crash_note *prev; /* the call this one runs inside (same thread) */
    uint64_t since_ms;          /* ik_now_ms() at enter */
    int published;              /* enter made it the thread's current call */
    size_t len;
    char text[IK_CRASH_TEXT]; /* "plugin 'P', pipeline 'X', stage 'S', process() with ..." */
} ik_crash_note;

/* Installs the fatal-signal handlers (sigaction, SA_ONSTACK) and the calling
 * thread's alternate stack. Once per process, from main before any thread
 * starts. 0 or a negative IK_E_* code. */
int ik_crash_install(void);

/*
 * Prepares `note` for a call of `call` ("process", "settle", ...) into
 * inst's plugin with the n records recs (NULL/0 for none) and makes it the
 * calling thread's current call, until ik_crash_leave(note) on the same
 * thread. Calls nest (a source's run() emits, which may settle). Never
 * fails: without memory for the thread's bookkeeping the call is simply not
 * named.
 */
void ik_crash_enter(ik_crash_note *note, ik_instance *inst, const char *call,
                    ik_record *const *recs, size_t n);
void ik_crash_leave(ik_crash_note *note);

/* The note text alone (what ik_crash_enter prepares; for tests): "plugin
 * 'P', pipeline 'X', stage 'S', call() with N record(s): id, id +K more". */
void ik_crash_note_format(ik_crash_note *note, const char *pipeline, const char *stage,
                          const char *plugin, const char *call, ik_record *const *recs, size_t n);

/* Calls fn for every plugin call running now on any thread, innermost per
 * thread, with its note text and how long it has run (ms). fn must not
 * enter or leave calls itself. Returns how many there were. */
size_t ik_crash_each_running(void (*fn)(void *arg, const char *text, uint64_t running_ms),
                             void *arg);

#endif
