/*
 * commands.h: the `file` source's control commands (commands.c):
 *   rescan               look at the input folder now, not at the next poll
 *   replay_dead_letters  move dead letters back into the input folder
 * The source embeds one fs_ctl in its state, fills it in create() and
 * waits between polls with fs_ctl_wait(), which a rescan cuts short.
 */
#ifndef INTAKE_FILE_COMMANDS_H
#define INTAKE_FILE_COMMANDS_H

#include <stdatomic.h>
#include <stdint.h>

#include <intake/plugin.h>

typedef struct fs_ctl {
    const ik_host *host;
    ik_instance *self;
    const char *folder;   /* the input folder (borrowed from the source) */
    const char *dead_dir; /* its dead-letter folder (borrowed) */
    int single;           /* the source reads one file, not the folder */
    int follow;           /* it polls the folder */
    /* 1 when the source reads a file of this name (its pattern). */
    int (*reads_name)(const void *source, const char *name);
    const void *source;
    atomic_int rescan;   /* a rescan was asked for; run() takes it */
    atomic_int run_done; /* run() has returned */
    atomic_ulong seq;    /* numbers replayed files */
} fs_ctl;

/* Registers both commands on c->self (from create()). 0, or the host's error
 * code (logged by the engine). A host without command_register: 0. */
int fs_ctl_register(fs_ctl *c);

/* Waits up to ms between polls, in slices, returning early (0) when a
 * rescan was asked for; 1 when the engine is stopping. Run thread only. */
int fs_ctl_wait(fs_ctl *c, uint64_t ms);

#endif
