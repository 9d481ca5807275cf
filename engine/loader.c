/* loader.c: plugin discovery, dlopen and descriptor checks (see loader.h). */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "optable.h"
#include "common/buf.h"

struct ik_loader {
    char **dirs;
    size_t ndirs, capdirs;
    ik_loaded_plugin **cache;
    size_t ncache, capcache;
};

const char *ik_kind_name(ik_kind kind)
{
    switch (kind) {
    case IK_KIND_SOURCE:
        return "source";
    case IK_KIND_PROCESSOR:
        return "processor";
    case IK_KIND_SINK:
        return "sink";
    }
    return "unknown";
}

/* 1 when a and b name the same folder (equal strings, or the same folder
 * once symbolic links are resolved). */
static int same_dir(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return 1;
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

static int add_dir(ik_loader *l, const char *dir)
{
    if (!dir || !*dir)
        return 0;
    for (size_t i = 0; i < l->ndirs; i++)
        if (same_dir(l->dirs[i], dir))
            return 0;
    char **grown = ik_array_grow(l->dirs, &l->capdirs, l->ndirs + 1, sizeof *grown);
    if (!grown)
        return IK_E_NOMEM;
    l->dirs = grown;
    if (!(l->dirs[l->ndirs] = strdup(dir)))
        return IK_E_NOMEM;
    l->ndirs++;
    return 0;
}

/* 1 when path lies in folder dir (or is it); both already resolved. */
static int path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/*
 * The engine's own plugin folder, found from where the running executable
 * is (never from the working folder). An executable inside the build tree
 * (the intake binary or a test) uses the build's plugin folder; any other,
 * an installed binary, uses INTAKE_PLUGIN_INSTALL_RELDIR next to its own
 * folder (bin/intake -> bin/../lib/intake/plugins), so it never loads
 * plugins from a build folder that happens to exist. When /proc/self/exe
 * cannot be read, the install folder configured at build time.
 */
static int add_own_dir(ik_loader *l)
{
    char exe[PATH_MAX], build[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return add_dir(l, INTAKE_PLUGIN_INSTALL_DIR);
    exe[n] = '\0';
    if (realpath(INTAKE_BUILD_DIR, build) && path_under(exe, build))
        return add_dir(l, INTAKE_PLUGIN_BUILD_DIR);
    char *slash = strrchr(exe, '/');
    if (!slash)
        return add_dir(l, INTAKE_PLUGIN_INSTALL_DIR);
    *slash = '\0';
    char dir[PATH_MAX + sizeof INTAKE_PLUGIN_INSTALL_RELDIR + 1];
    snprintf(dir, sizeof dir, "%s/%s", exe, INTAKE_PLUGIN_INSTALL_RELDIR);
    char real[PATH_MAX]; /* bin/../lib/... as lib/..., for messages */
    return add_dir(l, realpath(dir, real) ? real : dir);
}

ik_loader *ik_loader_new(char *const *extra_dirs, size_t nextra)
{
    ik_loader *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    int rc = 0;
    for (size_t i = 0; i < nextra && rc == 0; i++)
        rc = add_dir(l, extra_dirs[i]);
    const char *env = getenv("INTAKE_PLUGIN_PATH");
    if (env && rc == 0) {
        char *copy = strdup(env), *save = NULL;
        if (!copy)
            rc = IK_E_NOMEM;
        for (char *tok = copy ? strtok_r(copy, ":", &save) : NULL; tok && rc == 0;
             tok = strtok_r(NULL, ":", &save))
            rc = add_dir(l, tok);
        free(copy);
    }
    if (rc == 0)
        rc = add_own_dir(l);
    if (rc != 0) {
        ik_loader_free(l);
        return NULL;
    }
    return l;
}

void ik_loaded_plugin_free(ik_loaded_plugin *p)
{
    void *dl = p ? p->dl : NULL;
    while (p) {
        ik_loaded_plugin *next = p->next;
        free(p->options);
        free(p->path);
        free(p);
        p = next;
    }
    /* Last: the entries' strings point into the object. */
    if (dl)
        dlclose(dl);
}

void ik_loader_free(ik_loader *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->ncache; i++)
        ik_loaded_plugin_free(l->cache[i]);
    free(l->cache);
    for (size_t i = 0; i < l->ndirs; i++)
        free(l->dirs[i]);
    free(l->dirs);
    free(l);
}

size_t ik_loader_dirs(const ik_loader *l, const char *const **dirs)
{
    *dirs = (const char *const *)l->dirs;
    return l->ndirs;
}

static int valid_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Checks what the engine relies on beyond magic and ABI. */
static int check_descriptor(const char *path, const ik_plugin *d, const char *expect_name,
                            ik_err *err)
{
    if (!valid_name(d->name))
        return ik_err_set(err, IK_E_INVAL, "%s: plugin name must be [a-z0-9_]+, got '%s'", path,
                          d->name ? d->name : "(null)");
    if (expect_name && strcmp(expect_name, d->name) != 0)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: file is named for plugin '%s' but its descriptor says '%s'", path,
                          expect_name, d->name);
    if (!d->create)
        return ik_err_set(err, IK_E_INVAL, "%s: plugin '%s' has no create callback", path, d->name);
    const char *missing = NULL;
    switch (d->kind) {
    case IK_KIND_SOURCE:
        missing = !d->run ? "run" : !d->settle ? "settle" : NULL;
        break;
    case IK_KIND_PROCESSOR:
        missing = !d->process ? "process" : NULL;
        break;
    case IK_KIND_SINK:
        missing = !d->write ? "write" : NULL;
        break;
    default:
        return ik_err_set(err, IK_E_INVAL, "%s: plugin '%s' has unknown kind %d", path, d->name,
                          (int)d->kind);
    }
    if (missing)
        return ik_err_set(err, IK_E_INVAL, "%s: %s plugin '%s' has no %s callback", path,
                          ik_kind_name(d->kind), d->name, missing);
    return 0;
}

/* sizeof(ik_result) in SDK 2.0: a 2.x plugin's results are at least this. */
#define IK_RESULT_SIZE_2_0 (offsetof(ik_result, reason) + IK_REASON_MAX)

/* The sizes and library versions a 2.x descriptor records about its build. */
static int check_build(const char *path, const ik_plugin *d, ik_err *err)
{
    if (d->json_c_major != JSON_C_MAJOR_VERSION)
        return ik_err_set(err, IK_E_ABI,
                          "%s: plugin '%s' was built against json-c %d, this engine uses json-c "
                          "%d; records cross the plugin boundary as json-c objects, so rebuild "
                          "the plugin against json-c %d",
                          path, d->name ? d->name : "?", (int)d->json_c_major, JSON_C_MAJOR_VERSION,
                          JSON_C_MAJOR_VERSION);
    if (d->struct_size < offsetof(ik_plugin, write) + sizeof d->write)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: descriptor of %u bytes is smaller than an SDK 2.0 descriptor "
                          "(build it with IK_PLUGIN_HEAD)",
                          path, d->struct_size);
    if (d->result_size < IK_RESULT_SIZE_2_0)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s' declares results of %u bytes; SDK 2.0 results have at "
                          "least %zu (build it with IK_PLUGIN_HEAD)",
                          path, d->name ? d->name : "?", (unsigned)d->result_size,
                          (size_t)IK_RESULT_SIZE_2_0);
    return 0;
}

/* Most descriptors a file may list: one per kind. */
#define IK_MAX_KINDS 3

/*
 * The descriptors a file exports: those of ik_plugin_entries() when it has
 * that symbol (SDK 2.2, preferred), else the one of ik_plugin_entry(). *what
 * gets the symbol used, for messages. An empty list, or one longer than one
 * per kind, is refused. The descriptors live in the loaded object: read them
 * before dlclose.
 */
static int file_entries(void *dl, const char *path, const ik_plugin *list[IK_MAX_KINDS], size_t *n,
                        const char **what, ik_err *err)
{
    ik_plugin_entries_fn entries;
    *(void **)&entries = dlsym(dl, IK_PLUGIN_ENTRIES_NAME);
    if (entries) {
        *what = IK_PLUGIN_ENTRIES_NAME;
        const ik_plugin *const *all = entries();
        size_t k = 0;
        for (; all && all[k]; k++) {
            if (k == IK_MAX_KINDS)
                return ik_err_set(err, IK_E_INVAL,
                                  "%s: %s() lists more than %d descriptors; a plugin file "
                                  "provides at most one of each kind (source, processor, sink)",
                                  path, IK_PLUGIN_ENTRIES_NAME, IK_MAX_KINDS);
            list[k] = all[k];
        }
        if (k == 0)
            return ik_err_set(err, IK_E_INVAL,
                              "%s: %s() lists no descriptor; a plugin file provides at least one "
                              "kind",
                              path, IK_PLUGIN_ENTRIES_NAME);
        *n = k;
        return 0;
    }
    ik_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, IK_PLUGIN_ENTRY_NAME);
    if (!entry)
        return ik_err_set(err, IK_E_NOTPLUGIN,
                          "%s is not an Intake plugin: it does not export %s() (build it with "
                          "IK_PLUGIN_EXPORT from <intake/plugin.h>) or %s() "
                          "(IK_PLUGIN_EXPORT_KINDS)",
                          path, IK_PLUGIN_ENTRY_NAME, IK_PLUGIN_ENTRIES_NAME);
    *what = IK_PLUGIN_ENTRY_NAME;
    list[0] = entry();
    *n = 1;
    return 0;
}

/* Magic, ABI and build record of one descriptor (d may be NULL): what must
 * hold before any other field of it is read. */
static int check_head(const char *path, const char *what, const ik_plugin *d, ik_err *err)
{
    if (!d || d->magic != IK_PLUGIN_MAGIC)
        return ik_err_set(err, IK_E_MAGIC,
                          "%s: %s() returned a descriptor with magic 0x%08x, expected 0x%08x: "
                          "not an Intake plugin descriptor",
                          path, what, d ? d->magic : 0u, IK_PLUGIN_MAGIC);
    if (d->abi_major != IK_ABI_MAJOR || d->abi_minor > IK_ABI_MINOR)
        return ik_err_set(err, IK_E_ABI,
                          "%s: plugin was built for Intake plugin ABI %u.%u, this engine "
                          "speaks ABI %d.%d; rebuild the plugin against SDK %d.%d (this "
                          "engine's <intake/plugin.h>)",
                          path, d->abi_major, d->abi_minor, IK_ABI_MAJOR, IK_ABI_MINOR,
                          IK_ABI_MAJOR, IK_ABI_MINOR);
    return check_build(path, d, err);
}

/* The descriptors of one file, heads already checked, belong together: one
 * name, at most one of each kind. */
static int check_set(const char *path, const char *what, const ik_plugin *const *list, size_t n,
                     ik_err *err)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            const char *a = list[j]->name, *b = list[i]->name;
            if (a && b && strcmp(a, b) != 0)
                return ik_err_set(err, IK_E_INVAL,
                                  "%s: %s() lists plugins named '%s' and '%s'; every kind in "
                                  "one file has the one name of the file",
                                  path, what, a, b);
            if (list[i]->kind == list[j]->kind)
                return ik_err_set(err, IK_E_INVAL,
                                  "%s: %s() lists two %s descriptors of plugin '%s' (entries "
                                  "%zu and %zu); a file provides at most one of each kind",
                                  path, what, ik_kind_name(list[i]->kind), a ? a : "?", j, i);
        }
    return 0;
}

/* Copies and checks one descriptor into a new entry (*out, owned by the
 * caller; its dl is left NULL: the caller owns the handle). */
static int load_one(const char *path, const ik_plugin *d, const char *expect_name,
                    ik_loaded_plugin **out, ik_err *err)
{
    ik_loaded_plugin *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path))) {
        free(p);
        return ik_err_set(err, IK_E_NOMEM, "out of memory loading %s", path);
    }
    /* Read only the bytes the plugin says it has: older plugins have fewer fields. */
    size_t n = d->struct_size < sizeof p->desc ? d->struct_size : sizeof p->desc;
    memcpy(&p->desc, d, n);
    int rc = check_descriptor(path, &p->desc, expect_name, err);
    if (rc == 0)
        rc = ik_optable_load(&p->desc, path, &p->options, err);
    /* From here on the engine reads the copy, in its own layout. */
    p->desc.options = p->options;
    if (rc != 0) {
        ik_loaded_plugin_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* Loads every descriptor of the list into a chain in kind order (*out, owned
 * by the caller), each sharing the handle dl once all loaded. */
static int load_chain(const char *path, void *dl, const ik_plugin *const *list, size_t n,
                      const char *expect_name, ik_loaded_plugin **out, ik_err *err)
{
    ik_loaded_plugin *head = NULL;
    for (size_t i = 0; i < n; i++) {
        ik_loaded_plugin *p = NULL;
        int rc = load_one(path, list[i], expect_name, &p, err);
        if (rc != 0) {
            ik_loaded_plugin_free(head); /* dl still NULL: not closed here */
            return rc;
        }
        ik_loaded_plugin **at = &head;
        while (*at && (*at)->desc.kind < p->desc.kind)
            at = &(*at)->next;
        p->next = *at;
        *at = p;
    }
    for (ik_loaded_plugin *p = head; p; p = p->next)
        p->dl = dl;
    *out = head;
    return 0;
}

int ik_loader_open_file(const char *path, const char *expect_name, ik_loaded_plugin **out,
                        ik_err *err)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        return ik_err_set(err, IK_E_IO, "cannot load %s: %s", path, dlerror());
    const ik_plugin *list[IK_MAX_KINDS];
    size_t n = 0;
    const char *what = IK_PLUGIN_ENTRY_NAME;
    int rc = file_entries(dl, path, list, &n, &what, err);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = check_head(path, what, list[i], err);
    if (rc == 0)
        rc = check_set(path, what, list, n, err);
    ik_loaded_plugin *head = NULL;
    if (rc == 0)
        rc = load_chain(path, dl, list, n, expect_name, &head, err);
    if (rc != 0) {
        /* Messages are formatted by now: the descriptors die with the object. */
        dlclose(dl);
        return rc;
    }
    *out = head;
    return 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A plugin name found in folder `won` (as path) may also be in folders after
 * it on the search path: a warning names both files, so that a stale copy
 * is not loaded unnoticed. */
static void warn_shadowed(const ik_loader *l, size_t won, const char *name, const char *path)
{
    char other[4096];
    for (size_t j = won + 1; j < l->ndirs; j++) {
        snprintf(other, sizeof other, "%s/intake-%s.so", l->dirs[j], name);
        if (file_exists(other))
            ik_logf(IK_LOG_WARN, NULL, NULL,
                    "plugin '%s' is in two folders of the plugin search path: using %s, not %s",
                    name, path, other);
    }
}

/*
 * The entry of `kind` in a loaded file's chain, or IK_E_CONFIG saying what
 * the file provides instead (a file of one kind keeps the message of the
 * engines before SDK 2.2).
 */
static int pick_kind(const ik_loaded_plugin *file, ik_kind kind, const ik_loaded_plugin **out,
                     ik_err *err)
{
    for (const ik_loaded_plugin *p = file; p; p = p->next)
        if (p->desc.kind == kind) {
            *out = p;
            return 0;
        }
    const char *name = file->desc.name;
    if (!file->next)
        return ik_err_set(err, IK_E_CONFIG, "plugin '%s' is a %s and cannot be used as a %s", name,
                          ik_kind_name(file->desc.kind), ik_kind_name(kind));
    char kinds[64];
    size_t off = 0;
    kinds[0] = '\0';
    for (const ik_loaded_plugin *p = file; p && off < sizeof kinds; p = p->next)
        off += (size_t)snprintf(kinds + off, sizeof kinds - off, "%s%s", p == file ? "" : ", ",
                                ik_kind_name(p->desc.kind));
    return ik_err_set(err, IK_E_CONFIG, "plugin '%s' has no %s (it provides: %s)", name,
                      ik_kind_name(kind), kinds);
}

/* Finds intake-NAME.so on the search path, loads it and caches its chain
 * (*out, owned by the loader). */
static int load_file(ik_loader *l, const char *name, const ik_loaded_plugin **out, ik_err *err)
{
    if (!valid_name(name))
        return ik_err_set(err, IK_E_NOTFOUND,
                          "no plugin '%s': plugin names are lower-case letters, digits and '_'",
                          name);
    char path[4096];
    for (size_t i = 0; i < l->ndirs; i++) {
        snprintf(path, sizeof path, "%s/intake-%s.so", l->dirs[i], name);
        if (!file_exists(path))
            continue;
        warn_shadowed(l, i, name, path);
        ik_loaded_plugin *p = NULL;
        int rc = ik_loader_open_file(path, name, &p, err);
        if (rc != 0)
            return rc;
        ik_loaded_plugin **grown =
            ik_array_grow(l->cache, &l->capcache, l->ncache + 1, sizeof *grown);
        if (!grown) {
            ik_loaded_plugin_free(p);
            return ik_err_set(err, IK_E_NOMEM, "out of memory");
        }
        l->cache = grown;
        l->cache[l->ncache++] = p;
        *out = p;
        return 0;
    }
    char where[IK_ERR_MAX / 2];
    size_t off = 0;
    where[0] = '\0';
    for (size_t i = 0; i < l->ndirs && off < sizeof where; i++)
        off += (size_t)snprintf(where + off, sizeof where - off, "%s%s", i ? ", " : "", l->dirs[i]);
    return ik_err_set(err, IK_E_NOTFOUND,
                      "plugin '%s' not found: no intake-%s.so in %s (set plugin_path in the config "
                      "or INTAKE_PLUGIN_PATH)",
                      name, name, where);
}

int ik_loader_get(ik_loader *l, const char *name, ik_kind kind, const ik_loaded_plugin **out,
                  ik_err *err)
{
    const ik_loaded_plugin *file = NULL;
    for (size_t i = 0; i < l->ncache && !file; i++)
        if (strcmp(l->cache[i]->desc.name, name) == 0)
            file = l->cache[i];
    int rc = file ? 0 : load_file(l, name, &file, err);
    return rc != 0 ? rc : pick_kind(file, kind, out, err);
}

static int name_seen(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ik_loader_each(ik_loader *l, ik_loader_visit_fn fn, void *arg)
{
    char **seen = NULL;
    size_t nseen = 0, capseen = 0;
    for (size_t i = 0; i < l->ndirs; i++) {
        DIR *d = opendir(l->dirs[i]);
        if (!d)
            continue;
        char **files = NULL;
        size_t nfiles = 0, capfiles = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (len < 11 || strncmp(e->d_name, "intake-", 7) != 0 ||
                strcmp(e->d_name + len - 3, ".so") != 0)
                continue;
            char **grown = ik_array_grow(files, &capfiles, nfiles + 1, sizeof *grown);
            if (!grown)
                break;
            files = grown;
            if (!(files[nfiles] = strndup(e->d_name + 7, len - 10)))
                break;
            nfiles++;
        }
        closedir(d);
        qsort(files, nfiles, sizeof *files, cmp_str);
        for (size_t f = 0; f < nfiles; f++) {
            if (name_seen(seen, nseen, files[f])) {
                free(files[f]);
                continue;
            }
            char path[4096];
            snprintf(path, sizeof path, "%s/intake-%s.so", l->dirs[i], files[f]);
            warn_shadowed(l, i, files[f], path);
            ik_loaded_plugin *p = NULL;
            ik_err err = {0};
            ik_loader_open_file(path, files[f], &p, &err);
            if (!p)
                fn(arg, path, NULL, &err);
            for (const ik_loaded_plugin *k = p; k; k = k->next)
                fn(arg, path, k, NULL);
            ik_loaded_plugin_free(p);
            char **grown = ik_array_grow(seen, &capseen, nseen + 1, sizeof *grown);
            if (grown) {
                seen = grown;
                seen[nseen++] = files[f];
            } else {
                free(files[f]);
            }
        }
        free(files);
    }
    for (size_t i = 0; i < nseen; i++)
        free(seen[i]);
    free(seen);
}
