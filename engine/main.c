/*
 * main.c: the `intake` command line: run, validate, plugins, --version, --help.
 * Everything it does is delegated to engine modules; this file only parses
 * arguments, prints, and maps outcomes to the documented exit codes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "crash.h"
#include "ctl_cli.h"
#include "engine.h"
#include "loader.h"
#include "log.h"
#include "optlimits.h"
#include "options.h"
#include "state_cli.h"

static const char usage_text[] =
    "usage: intake [--version] [--help] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  run [OPTIONS] FILE       run the pipelines of FILE until every source is drained,\n"
    "                           or until SIGINT/SIGTERM (a second signal exits at once)\n"
    "  validate FILE            check FILE, its plugins and their options; start nothing\n"
    "  plugins [--json] [--config FILE]\n"
    "                           list every plugin on the search path with its options\n"
    "  state [--config FILE | --state-dir DIR] list [NAMESPACE] | get NAMESPACE KEY |\n"
    "        delete NAMESPACE KEY\n"
    "                           look into the state store (intake state --help)\n"
    "  ctl [--admin HOST:PORT] PIPELINE INSTANCE COMMAND [JSON] | list\n"
    "                           run a control command on a running engine, or list them\n"
    "                           (token from $INTAKE_ADMIN_TOKEN; 'intake ctl --help')\n"
    "\n"
    "run options:\n"
    "  --log-level LEVEL        error, warn, info (default), debug, trace\n"
    "  --log-format FORMAT      text (default) or json\n"
    "  --admin HOST:PORT|off    admin HTTP server address (overrides admin.listen)\n"
    "\n"
    "plugin search path: the config's plugin_path, then $INTAKE_PLUGIN_PATH\n"
    "(colon-separated), then the installed plugins: <folder of this "
    "binary>/" INTAKE_PLUGIN_INSTALL_RELDIR "\n"
    "(in the build tree: " INTAKE_PLUGIN_BUILD_DIR "). A plugin name found twice: the first wins,\n"
    "with a warning.\n"
    "\n"
    "exit codes:\n"
    "  0  finished, or stopped cleanly by a signal\n"
    "  1  a source failed while running\n"
    "  2  bad command line\n"
    "  3  invalid config, plugin or option (nothing was started)\n"
    "  4  a plugin, the admin server or the state store failed to start\n"
    "  5  forced exit by a second signal\n"
    "  6  finished, but some records were not stored: a source could not carry out\n"
    "     their outcome (say, write a dead letter) and keeps them for the next run\n"
    "  7  stopped by a signal, but a plugin call did not return within shutdown_timeout\n"
    "     plus 2 s: every record was released, the stuck call is named in the log\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "intake: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nRun 'intake --help' for usage.\n");
    return IK_EXIT_USAGE;
}

/* Loads the config and the engine (plugins resolved, options checked).
 * Prints the error and returns IK_EXIT_CONFIG on failure. */
static int load(const char *path, ik_config **cfg, ik_engine **engine)
{
    ik_err err = {0};
    if (ik_config_load(path, cfg, &err) != 0) {
        ik_logf(IK_LOG_ERROR, NULL, NULL, "%s", err.msg);
        return IK_EXIT_CONFIG;
    }
    if (ik_engine_new(*cfg, engine, &err) != 0) {
        ik_logf(IK_LOG_ERROR, NULL, NULL, "%s", err.msg);
        ik_config_free(*cfg);
        *cfg = NULL;
        return IK_EXIT_CONFIG;
    }
    return IK_EXIT_OK;
}

static void print_line(void *arg, const char *text)
{
    fprintf(arg, "  %s\n", text);
}

static int cmd_validate(int argc, char **argv)
{
    if (argc != 2)
        return usage_error("%s", "validate takes exactly one FILE");
    ik_config *cfg = NULL;
    ik_engine *engine = NULL;
    int rc = load(argv[1], &cfg, &engine);
    if (rc != IK_EXIT_OK)
        return rc;
    printf("%s: OK\n", argv[1]);
    ik_engine_describe(engine, print_line, stdout);
    ik_engine_free(engine);
    ik_config_free(cfg);
    return IK_EXIT_OK;
}

static int cmd_run(int argc, char **argv)
{
    const char *file = NULL, *admin = NULL;
    int level = -1, format = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--log-level") || !strcmp(a, "--log-format") || !strcmp(a, "--admin")) &&
            i + 1 >= argc)
            return usage_error("%s needs a value", a);
        if (!strcmp(a, "--log-level")) {
            if ((level = ik_log_level_parse(argv[++i])) < 0)
                return usage_error("unknown log level '%s'", argv[i]);
        } else if (!strcmp(a, "--log-format")) {
            if ((format = ik_log_format_parse(argv[++i])) < 0)
                return usage_error("unknown log format '%s'", argv[i]);
        } else if (!strcmp(a, "--admin")) {
            admin = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s' for run", a);
        } else if (file) {
            return usage_error("%s", "run takes exactly one FILE");
        } else {
            file = a;
        }
    }
    if (!file)
        return usage_error("%s", "run needs a pipeline FILE");
    if (level >= 0 || format >= 0)
        ik_log_configure(format >= 0 ? (ik_log_format)format : IK_LOG_TEXT,
                         level >= 0 ? (ik_log_level)level : IK_LOG_INFO);

    ik_config *cfg = NULL;
    ik_engine *engine = NULL;
    int rc = load(file, &cfg, &engine);
    if (rc != IK_EXIT_OK)
        return rc;
    /* The config's log settings apply unless the command line set them. */
    ik_log_configure(format >= 0 ? (ik_log_format)format
                                 : (cfg->log_json ? IK_LOG_JSON : IK_LOG_TEXT),
                     level >= 0 ? (ik_log_level)level : cfg->log_level);
    rc = ik_engine_run(engine, admin);
    if (rc == IK_EXIT_FORCED || rc == IK_EXIT_STUCK)
        return rc; /* threads may be inside plugin calls: do not free under them */
    ik_engine_free(engine);
    ik_config_free(cfg);
    return rc;
}

typedef struct plugin_listing {
    int json;
    json_object *array;
} plugin_listing;

static void option_default(const ik_option *o, char *buf, size_t len)
{
    if (o->flags & IK_OPT_SECRET)
        snprintf(buf, len, "%s", o->default_value ? "<secret>" : "-");
    else if (o->default_value)
        snprintf(buf, len, "\"%s\"", o->default_value);
    else
        snprintf(buf, len, "%s", (o->flags & IK_OPT_REQUIRED) ? "(required)" : "-");
}

/* The allowed values of a choice option as a JSON array; NULL for other types. */
static json_object *choices_json(const ik_option *opt)
{
    if (opt->type != IK_OPT_CHOICE)
        return NULL;
    json_object *a = json_object_new_array();
    for (const char *const *c = opt->choices; a && c && *c; c++)
        json_object_array_add(a, json_object_new_string(*c));
    return a;
}

static void list_one(void *arg, const char *path, const ik_loaded_plugin *p, const ik_err *err)
{
    plugin_listing *l = arg;
    if (l->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(path));
        if (!p) {
            json_object_object_add(o, "error", json_object_new_string(err->msg));
            json_object_array_add(l->array, o);
            return;
        }
        const ik_plugin *d = &p->desc;
        char abi[32];
        snprintf(abi, sizeof abi, "%u.%u", d->abi_major, d->abi_minor);
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "kind", json_object_new_string(ik_kind_name(d->kind)));
        json_object_object_add(o, "version", json_object_new_string(d->version ? d->version : ""));
        json_object_object_add(o, "abi", json_object_new_string(abi));
        json_object_object_add(o, "description",
                               json_object_new_string(d->description ? d->description : ""));
        json_object *opts = json_object_new_array();
        for (const ik_option *opt = d->options; opt && opt->name; opt++) {
            json_object *jo = json_object_new_object();
            json_object_object_add(jo, "name", json_object_new_string(opt->name));
            json_object_object_add(jo, "type", json_object_new_string(ik_opt_type_name(opt->type)));
            json_object_object_add(jo, "default",
                                   opt->default_value && !(opt->flags & IK_OPT_SECRET)
                                       ? json_object_new_string(opt->default_value)
                                       : NULL);
            json_object_object_add(jo, "required",
                                   json_object_new_boolean(opt->flags & IK_OPT_REQUIRED));
            json_object_object_add(jo, "secret",
                                   json_object_new_boolean(opt->flags & IK_OPT_SECRET));
            json_object_object_add(jo, "help", json_object_new_string(opt->help ? opt->help : ""));
            int lim = ik_limit_has(opt);
            json_object_object_add(jo, "min",
                                   lim && opt->min ? json_object_new_string(opt->min) : NULL);
            json_object_object_add(jo, "max",
                                   lim && opt->max ? json_object_new_string(opt->max) : NULL);
            json_object_object_add(jo, "choices", choices_json(opt));
            json_object_array_add(opts, jo);
        }
        json_object_object_add(o, "options", opts);
        json_object_array_add(l->array, o);
        return;
    }
    if (!p) {
        printf("not loadable: %s\n\n", err->msg); /* the message names the file */
        return;
    }
    const ik_plugin *d = &p->desc;
    printf("%s (%s, version %s, ABI %u.%u)\n  %s\n  %s\n", d->name, ik_kind_name(d->kind),
           d->version ? d->version : "?", d->abi_major, d->abi_minor,
           d->description ? d->description : "", path);
    if (!d->options || !d->options->name)
        printf("  options: none\n");
    else
        printf("  options:\n");
    for (const ik_option *opt = d->options; opt && opt->name; opt++) {
        char def[128], range[512] = "";
        option_default(opt, def, sizeof def);
        if (ik_limit_has(opt)) {
            char text[160];
            ik_limit_describe(opt, text, sizeof text);
            snprintf(range, sizeof range, " (range: %s)", text);
        } else if (opt->type == IK_OPT_CHOICE) {
            size_t off = (size_t)snprintf(range, sizeof range, " (one of:");
            for (const char *const *c = opt->choices; c && *c && off < sizeof range; c++)
                off += (size_t)snprintf(range + off, sizeof range - off, " %s", *c);
            if (off < sizeof range)
                snprintf(range + off, sizeof range - off, ")");
        }
        printf("    %-18s %-9s %-18s %s%s%s\n", opt->name, ik_opt_type_name(opt->type), def,
               opt->help ? opt->help : "", range, (opt->flags & IK_OPT_SECRET) ? " (secret)" : "");
    }
    printf("\n");
}

static int cmd_plugins(int argc, char **argv)
{
    plugin_listing l = {0};
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            l.json = 1;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            config = argv[++i];
        else
            return usage_error("unknown argument '%s' for plugins", argv[i]);
    }
    ik_config *cfg = NULL;
    ik_err err = {0};
    if (config && ik_config_load(config, &cfg, &err) != 0) {
        ik_logf(IK_LOG_ERROR, NULL, NULL, "%s", err.msg);
        return IK_EXIT_CONFIG;
    }
    ik_loader *loader = ik_loader_new(cfg ? cfg->plugin_path : NULL, cfg ? cfg->nplugin_path : 0);
    if (!loader) {
        ik_config_free(cfg);
        return IK_EXIT_RUNTIME;
    }
    if (l.json)
        l.array = json_object_new_array();
    ik_loader_each(loader, list_one, &l);
    if (l.json) {
        printf("%s\n", json_object_to_json_string_ext(l.array, JSON_C_TO_STRING_PRETTY |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(l.array);
    }
    ik_loader_free(loader);
    ik_config_free(cfg);
    return IK_EXIT_OK;
}

int main(int argc, char **argv)
{
    /* Signals are taken synchronously by the engine's run loop (sigtimedwait):
     * block them before any thread exists so every thread inherits the mask.
     * A closed stdout must show up as EPIPE in the sink, not kill the process. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (ik_crash_install() != 0) /* a fatal signal names the plugin call (crash.h) */
        fputs("intake: warning: the crash handler could not be installed\n", stderr);

    if (argc < 2) {
        fputs(usage_text, stderr);
        return IK_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    int rc;
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        rc = IK_EXIT_OK;
    } else if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("intake %s (plugin ABI %d.%d)\n", INTAKE_VERSION, IK_ABI_MAJOR, IK_ABI_MINOR);
        rc = IK_EXIT_OK;
    } else if (!strcmp(cmd, "run")) {
        rc = cmd_run(argc - 1, argv + 1);
    } else if (!strcmp(cmd, "validate")) {
        rc = cmd_validate(argc - 1, argv + 1);
    } else if (!strcmp(cmd, "plugins")) {
        rc = cmd_plugins(argc - 1, argv + 1);
    } else if (!strcmp(cmd, "state")) {
        rc = ik_state_cli(argc - 1, argv + 1);
    } else if (!strcmp(cmd, "ctl")) {
        rc = ik_ctl_main(argc - 1, argv + 1);
    } else {
        rc = usage_error("unknown command '%s'", cmd);
    }
    if (rc == IK_EXIT_FORCED || rc == IK_EXIT_STUCK) {
        /* Threads may still be inside plugin calls: leave without running
         * exit handlers or freeing anything under them. */
        fflush(NULL);
        _exit(rc);
    }
    ik_log_shutdown();
    return rc;
}
