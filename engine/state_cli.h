/*
 * state_cli.h: `intake state`, the operators' view of the state store
 * (state_cli.c): list namespaces and keys, show a value, delete a key.
 */
#ifndef IK_STATE_CLI_H
#define IK_STATE_CLI_H

/* argv[0] is "state". Returns the exit code: 0 done, 1 no such key or the
 * store failed (the message says which), 2 bad command line, 3 bad config. */
int ik_state_cli(int argc, char **argv);

#endif
