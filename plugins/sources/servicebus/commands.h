/*
 * commands.h: the `servicebus` source's control commands (receive, status,
 * peek); see commands.c.
 */
#ifndef INTAKE_SB_COMMANDS_H
#define INTAKE_SB_COMMANDS_H

#include "sb_source.h"

/* Registers the commands (from create()). 0 or an IK_E_* code. */
int sb_commands_register(sb_source *st);
/* Run thread: does what the commands asked for that needs the broker. */
void sb_commands_work(sb_source *st);

#endif
