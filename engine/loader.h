/*
 * loader.h: finds plugin shared objects on the search path, dlopens them with
 * RTLD_NOW | RTLD_LOCAL, and checks the descriptor (magic first, then ABI,
 * then the rest) before the engine touches anything else in it.
 *
 * Search order: the config's plugin_path, then $INTAKE_PLUGIN_PATH (colon
 * separated), then this build's plugin folder, then the install folder. A
 * plugin named NAME lives in a file intake-NAME.so, which provides one kind
 * (ik_plugin_entry) or, since SDK 2.2, up to one of each kind
 * (ik_plugin_entries, preferred when both are exported): a stage gets the
 * descriptor of the kind it needs.
 */
#ifndef IK_LOADER_H
#define IK_LOADER_H

#include <stddef.h>

#include <intake/plugin.h>

#include "error.h"

/* One descriptor of a loaded file. A file of several kinds loads as a chain
 * in kind order (source, processor, sink): the first entry owns the rest
 * (`next`) and the dlopen handle they share. */
typedef struct ik_loaded_plugin {
    char *path;                    /* file it came from */
    void *dl;                      /* dlopen handle (the first entry's; closed with it) */
    ik_plugin desc;                /* copy: fields past the plugin's struct_size are zero;
                                      desc.options points at `options` */
    ik_option *options;            /* the option table in this engine's layout (optable.h) */
    struct ik_loaded_plugin *next; /* the file's next kind, or NULL */
} ik_loaded_plugin;

typedef struct ik_loader ik_loader;

/* extra_dirs (may be NULL) come first in the search path; copied. */
ik_loader *ik_loader_new(char *const *extra_dirs, size_t nextra);
/* dlcloses every plugin: call only after every instance is destroyed. */
void ik_loader_free(ik_loader *l);

/*
 * The descriptor of kind `kind` of plugin `name` (the file is loaded once and
 * cached: a second call returns the same entry). Errors:
 *   IK_E_NOTFOUND  no intake-NAME.so in any folder; the message lists them
 *   IK_E_IO        dlopen failed (the dynamic linker's message is quoted)
 *   IK_E_NOTPLUGIN the file exports neither ik_plugin_entries nor
 *                  ik_plugin_entry
 *   IK_E_MAGIC     a descriptor's magic number is wrong
 *   IK_E_ABI       another ABI major (1.x: rebuild against SDK 2.0), a newer
 *                  minor than this engine, or another json-c major
 *   IK_E_INVAL     a descriptor is inconsistent (name differs from file, bad
 *                  kind, missing callbacks for its kind, bad option table:
 *                  see optable.h), or the list of kinds is empty, repeats a
 *                  kind or mixes names
 *   IK_E_CONFIG    the file has no descriptor of `kind`; the message says
 *                  what it provides ("plugin 'x' is a sink and cannot be used
 *                  as a source", or for a file of several kinds "plugin 'x'
 *                  has no processor (it provides: source, sink)")
 * The returned entry is owned by the loader.
 */
int ik_loader_get(ik_loader *l, const char *name, ik_kind kind, const ik_loaded_plugin **out,
                  ik_err *err);

/* Loads one file directly, uncached, with every descriptor checked; *out is
 * its first kind (the others follow in `next`), owned by the caller
 * (ik_loaded_plugin_free). `expect_name` may be NULL. */
int ik_loader_open_file(const char *path, const char *expect_name, ik_loaded_plugin **out,
                        ik_err *err);
/* Frees a chain from its first entry (never call it on a later one). */
void ik_loaded_plugin_free(ik_loaded_plugin *p);

/* Calls fn for every intake-*.so on the search path, first folder winning for
 * a name; fn gets either a loaded plugin (once per kind the file provides) or
 * the error explaining why not. */
typedef void (*ik_loader_visit_fn)(void *arg, const char *path, const ik_loaded_plugin *p,
                                   const ik_err *err);
void ik_loader_each(ik_loader *l, ik_loader_visit_fn fn, void *arg);

/* The folders searched, in order, for messages. */
size_t ik_loader_dirs(const ik_loader *l, const char *const **dirs);

const char *ik_kind_name(ik_kind kind);

#endif
