/*
 * ctl_cli.h: `intake ctl`, the client of the admin server's control routes
 * (engine/ctl_cli.c, linked into the `intake` binary only, with libcurl).
 */
#ifndef IK_CTL_CLI_H
#define IK_CTL_CLI_H

/* Exit codes of `intake ctl` beyond 0 (2xx) and 2 (bad command line). */
enum ik_ctl_exit {
    IK_CTL_EXIT_CONNECT = 7, /* no answer: connection refused, timeout, bad address */
    IK_CTL_EXIT_CLIENT = 8,  /* 4xx: unknown target, bad argument, refused, auth */
    IK_CTL_EXIT_SERVER = 9,  /* 5xx: the engine failed or is shutting down */
};

/* Runs `intake ctl ARGS` (argv[0] is "ctl"); prints the reply on stdout and
 * returns the exit code. */
int ik_ctl_main(int argc, char **argv);

#endif
