/*
 * intake/plugin.h: the whole contract between the Intake engine and a plugin.
 *
 * A plugin is a shared object (intake-<name>.so) that exports one symbol,
 * IK_PLUGIN_ENTRY_NAME, a function returning a pointer to a static ik_plugin
 * descriptor; or, since SDK 2.2, IK_PLUGIN_ENTRIES_NAME, returning one
 * descriptor per kind it provides under its one name (a source and a sink
 * of the same service, say: see IK_PLUGIN_EXPORT_KINDS below). The engine
 * checks magic and ABI version before reading anything
 * else, checks the option table, validates the pipeline's options against it
 * and writes them into a config struct of the plugin's own type (options are
 * bound by offset, see IK_OPT_AT), calls check() (`intake validate` stops
 * there), then create() with a host function table and that config. From
 * then on the plugin reaches the engine only through that table.
 *
 * Versioning: IK_ABI_MAJOR changes when a layout or meaning changes; the engine
 * refuses a plugin with another major (an ABI 1.x plugin must be rebuilt
 * against SDK 2.0). IK_ABI_MINOR grows when fields are added at the end of
 * ik_plugin, ik_host, ik_option or ik_result, or an optional export is
 * added (2.1: the state store and control commands in ik_host; 2.2:
 * IK_PLUGIN_ENTRIES, several kinds in one file). The descriptor records
 * sizeof(ik_plugin), sizeof(ik_option) and sizeof(ik_result) as the plugin
 * was built (IK_PLUGIN_HEAD fills them), and the engine reads the option
 * table and lays out results with the plugin's sizes, so each side reads only
 * what the other has. A plugin built against minor N runs on an engine of
 * minor >= N.
 *
 * json-c is part of the contract: records carry json_object trees across the
 * boundary, so a plugin must be built against the json-c major the engine
 * uses (IK_PLUGIN_HEAD records JSON_C_MAJOR_VERSION; a mismatch is refused at
 * load). json_object_to_json_string() and its _ext variant are NOT read-only:
 * they cache the text inside the object. Two sinks (or a sink and anything
 * else) printing one record's payload at once race on that cache; a sink
 * serializes with host->json_write(), which never writes to the object.
 *
 * Threading: check/create/destroy run on the engine's main thread. A source's
 * run() has a thread of its own. process() and write() run on worker threads,
 * up to the stage's `concurrency` at once; each worker has its own
 * worker_state (worker_init), so per-worker scratch needs no lock. settle()
 * may be called from any engine thread, concurrently. Everything a plugin
 * keeps hangs off its state pointers: no global mutable state, so two
 * instances of one plugin never interfere.
 *
 * Long calls: a process() or write() that waits (an HTTP call, a Batch API
 * job, a backoff) must wait in slices and poll host->stopping(), or sleep
 * with host->wait_ms(), which wakes early on shutdown. On SIGINT/SIGTERM the
 * engine stops input and lets in-flight work finish for up to the config's
 * shutdown_timeout; then it releases every queued record to its source and
 * waits, without a limit, for calls still running (logging every 5 s how
 * many records are inside plugin calls). When such a call returns, a sink's
 * IK_OK still counts as delivered and every other result becomes
 * IK_RELEASE. A call that never returns keeps the process alive until a
 * second signal: then the engine releases the records of that call to their
 * source at once, does not touch them again, and exits with code 5 without
 * calling destroy().
 */
#ifndef INTAKE_PLUGIN_H
#define INTAKE_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <intake/buf.h>
#include <intake/state.h>
#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IK_PLUGIN_MAGIC      0x494b504cu /* "IKPL" */
#define IK_ABI_MAJOR         2
#define IK_ABI_MINOR         2
#define IK_PLUGIN_ENTRY      ik_plugin_entry
#define IK_PLUGIN_ENTRY_NAME "ik_plugin_entry"
/* SDK 2.2: the optional export listing one descriptor per kind (see
 * IK_PLUGIN_EXPORT_KINDS). */
#define IK_PLUGIN_ENTRIES      ik_plugin_entries
#define IK_PLUGIN_ENTRIES_NAME "ik_plugin_entries"

/* Longest reason text a processor or sink can attach to one record. */
#define IK_REASON_MAX 512

/* Error codes: every function that can fail returns 0 or one of these. */
enum ik_error {
    IK_OK_CODE = 0,
    IK_E_NOMEM = -1,        /* out of memory */
    IK_E_INVAL = -2,        /* invalid argument or input */
    IK_E_IO = -3,           /* I/O error; errno-style detail is in the log */
    IK_E_BUSY = -4,         /* in-flight limit reached (try_emit) */
    IK_E_STOPPING = -5,     /* the pipeline is shutting down */
    IK_E_NOTFOUND = -6,     /* no such file, option, plugin or key */
    IK_E_CONFIG = -7,       /* configuration error */
    IK_E_NOTPLUGIN = -8,    /* shared object without the entry symbol */
    IK_E_MAGIC = -9,        /* descriptor with a wrong magic number */
    IK_E_ABI = -10,         /* plugin built for another ABI major */
    IK_E_UNSUPPORTED = -11, /* the plugin or kind does not do this */
    IK_E_PARSE = -12,       /* malformed outside input */
    IK_E_TIMEOUT = -13,     /* an operation ran out of time */
    IK_E_TOOBIG = -14,      /* input larger than its limit */
    IK_E_STATE = -15,       /* call not allowed in the current state */
    IK_E_CONFLICT = -16,    /* state store: compare-and-set found another version */
};

typedef enum ik_kind {
    IK_KIND_SOURCE = 1,
    IK_KIND_PROCESSOR = 2,
    IK_KIND_SINK = 3,
} ik_kind;

/* Option types. Values in the config may also be strings (after ${VAR}
 * substitution) that parse completely as the declared type. Each type is
 * written into the config struct member named by the option's offset as the
 * C type given here. */
typedef enum ik_opt_type {
    IK_OPT_STRING = 1,   /* const char *: owned by the engine until destroy(); NULL when
                            unset without default */
    IK_OPT_INT = 2,      /* int64_t */
    IK_OPT_BOOL = 3,     /* int (0 or 1): true/false, "true"/"false"/"yes"/"no"/"1"/"0" */
    IK_OPT_DOUBLE = 4,   /* double */
    IK_OPT_DURATION = 5, /* uint64_t ms: seconds, or "250ms", "30s", "5m", "1h" */
    IK_OPT_SIZE = 6,     /* uint64_t bytes: "512", "256K", "4M", "1G" */
    IK_OPT_CHOICE = 7,   /* int: index into `choices` of the value given (a string) */
} ik_opt_type;

#define IK_OPT_REQUIRED 0x1u /* the config must set it */
#define IK_OPT_SECRET   0x2u /* never printed: redacted from logs, errors, metrics, docs */

/* Binds an option to `member` of the plugin's config struct: a designated
 * initializer of ik_option.offset, written after the help text:
 *   {"path", IK_OPT_STRING, NULL, IK_OPT_REQUIRED, "Input.", IK_OPT_AT(my_config, path)},
 * A misspelt member is a compile error. */
#define IK_OPT_AT(type, member) .offset = offsetof(type, member)

/*
 * One entry of a plugin's option table; the table ends with a zeroed entry.
 * default_value is text in the same syntax as the config (NULL: no default).
 *
 * The engine checks every value wherever it checks options (`intake
 * validate` as well as `run`) and writes it into the config struct at
 * `offset` (a member of the C type ik_opt_type gives), so create() can rely
 * on it. `min`/`max` bound a numeric option (INT, DOUBLE, DURATION, SIZE),
 * inclusive, written as the config would write them ("0", "10ms", "1K",
 * "0.5"); NULL leaves that side open. `choices` (IK_OPT_CHOICE only) lists
 * the allowed values, NULL-terminated; the member gets the index of the one
 * given. A value out of range or not among the choices is a config error
 * naming file:line, the option and what is allowed.
 *
 * The engine refuses to load a plugin whose table names an option twice,
 * uses one of the engine's stage keys (plugin, name, concurrency, batch),
 * has options but no config struct (config_size 0), has an offset whose
 * member does not fit in config_size (or is misaligned),
 * has bounds on a non-numeric option, bounds that do not parse or min > max,
 * a default (without ${VAR}) outside its bounds or not among its choices,
 * a CHOICE without choices, or a required option with a default.
 */
typedef struct ik_option {
    const char *name;
    ik_opt_type type;
    const char *default_value;
    unsigned flags;
    const char *help;
    size_t offset;              /* IK_OPT_AT(struct, member) */
    const char *min;            /* numeric types: lower bound, or NULL */
    const char *max;            /* numeric types: upper bound, or NULL */
    const char *const *choices; /* IK_OPT_CHOICE: allowed values, NULL-terminated */
} ik_option;

/*
 * Per-record status returned by processors and sinks.
 *
 * IK_DOWN says the record was not handled because the destination (the API,
 * the database) is unavailable, for every record, not for this one: the
 * engine keeps the record (back at the head of the stage's queue, in order,
 * no attempt counted), pauses the whole stage and probes it with backoff
 * (see probe() in ik_plugin); the reason is the stage's down reason, shown
 * in the log and /health (never put a secret in it). Use IK_RETRY for a
 * failure of one record or one request, IK_DOWN when nothing can get
 * through until the peer is back (credentials refused, quota exhausted,
 * service gone). During shutdown an IK_DOWN record is released.
 */
typedef enum ik_status {
    IK_OK = 0,      /* done; the record moves on */
    IK_RETRY = 1,   /* transient (429, 5xx, timeout): retried with backoff */
    IK_FAIL = 2,    /* permanent (invalid input, 4xx): dead-lettered */
    IK_RELEASE = 3, /* give it back to the source untouched */
    IK_DOWN = 4,    /* not handled: the destination is unavailable; keep it, pause the stage */
} ik_status;

/* One record's result; the engine zeroes the array before each call, so a
 * plugin that leaves an entry alone reports IK_OK with no reason. The engine
 * reads at most IK_REASON_MAX bytes of reason (an unterminated one is cut
 * there); fill it with ik_result_setf(). A status outside ik_status is
 * logged (plugin, record id, value) and treated as IK_FAIL. The engine lays
 * the array out with the plugin's sizeof(ik_result): index it as a C array. */
typedef struct ik_result {
    ik_status status;
    char reason[IK_REASON_MAX];
} ik_result;

/* Sets r's status and its reason from a printf format, cut (always
 * terminated) at IK_REASON_MAX - 1 bytes. */
static inline void ik_result_setf(ik_result *r, ik_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void ik_result_setf(ik_result *r, ik_status status, const char *fmt, ...)
{
    va_list ap;
    r->status = status;
    va_start(ap, fmt);
    if (vsnprintf(r->reason, sizeof r->reason, fmt, ap) < 0)
        r->reason[0] = '\0';
    va_end(ap);
}

/* Terminal outcome of a record, told to its source exactly once. A source
 * that cannot carry one out says so with host->settle_failed(). */
typedef enum ik_outcome {
    IK_DELIVERED = 1,     /* every sink accepted it: acknowledge it */
    IK_DEAD_LETTERED = 2, /* permanent failure or retries exhausted */
    IK_RELEASED = 3,      /* not finished (shutdown, release): give it back */
} ik_outcome;

/* Why a record was dead-lettered. `stored` is 1 when the pipeline's
 * dead_letter sink already holds it (the source then only acknowledges), 0
 * when the source must put it in its own dead-letter place. */
typedef struct ik_failure {
    const char *reason; /* what went wrong, for a person */
    const char *stage;  /* instance name of the stage that failed */
    unsigned attempts;  /* attempts made at that stage */
    int stored;
} ik_failure;

/* A plugin's report for GET /health. */
typedef struct ik_health {
    int ok;                     /* 1 healthy, 0 not */
    char reason[IK_REASON_MAX]; /* why not, or a short status */
} ik_health;

typedef enum ik_log_level {
    IK_LOG_ERROR = 0,
    IK_LOG_WARN = 1,
    IK_LOG_INFO = 2,
    IK_LOG_DEBUG = 3,
    IK_LOG_TRACE = 4,
} ik_log_level;

/* Opaque engine objects. */
typedef struct ik_instance ik_instance; /* one configured plugin instance */
typedef struct ik_record ik_record;     /* one unit of work (one email) */
typedef struct ik_timer ik_timer;
typedef struct ik_metric ik_metric;

/*
 * A control command's callback (see command_register in ik_host). `args` is
 * the request's JSON argument, borrowed for the call, NULL when none was
 * sent. On success it stores a reply object in *reply (owned by the engine
 * from then on; NULL replies {}) and returns 0. It refuses with:
 *   IK_E_INVAL  a bad argument (HTTP 400), `reason` saying what and where;
 *   IK_E_STATE  not possible in the current state (HTTP 409), with why;
 * any other IK_E_* code answers 500 with its reason. `reason` has
 * reason_len bytes; never put a secret in it. On error *reply is ignored.
 */
typedef int (*ik_command_fn)(void *arg, json_object *args, json_object **reply, char *reason,
                             size_t reason_len);

/*
 * The host function table, handed to create(). Valid until destroy() returns.
 * Every function taking an ik_instance wants the `self` passed to create().
 */
typedef struct ik_host {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* Logging, prefixed with pipeline and instance name. Secrets are redacted. */
    void (*log)(ik_instance *self, ik_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* Human-readable text for an IK_E_* code; static storage. */
    const char *(*strerror)(int code);

    /* 1 when the config set option `name` (0 when it took its default). */
    int (*opt_is_set)(ik_instance *self, const char *name);

    /* Records. record_new takes ownership of `payload` (even on failure) and
     * copies `id`; the caller owns the record until emit() succeeds. */
    ik_record *(*record_new)(ik_instance *self, const char *id, json_object *payload);
    void (*record_free)(ik_record *rec);
    const char *(*record_id)(const ik_record *rec);
    /* Borrowed; valid while the caller holds the record in a callback. */
    json_object *(*record_payload)(const ik_record *rec);
    /* Replaces the payload, taking ownership of `payload`. */
    void (*record_set_payload)(ik_record *rec, json_object *payload);
    /* String metadata. Values are copied; meta() returns NULL when unset and a
     * pointer valid until the key is set again or the record is freed. */
    const char *(*record_meta)(const ik_record *rec, const char *key);
    int (*record_set_meta)(ik_record *rec, const char *key, const char *value);
    int (*record_priority)(const ik_record *rec); /* higher runs first; default 0 */
    void (*record_set_priority)(ik_record *rec, int priority);
    unsigned (*record_attempts)(const ik_record *rec); /* attempts at the current stage */
    /* The source's settlement handle: opaque to the engine, owned by the source. */
    void *(*record_handle)(const ik_record *rec);
    void (*record_set_handle)(ik_record *rec, void *handle);

    /* Flow (sources). emit() hands the record to the pipeline, blocking while
     * the in-flight limit is reached. On 0 the engine owns the record; on
     * IK_E_STOPPING (shutdown) or another error the caller still owns it. */
    int (*emit)(ik_instance *self, ik_record *rec);
    /* Like emit() but never blocks: IK_E_BUSY when the pipeline is full. */
    int (*try_emit)(ik_instance *self, ik_record *rec);
    /* Settles a record the source will not emit (say, input it cannot parse):
     * the engine counts it and routes it as the outcome says, calling the
     * source's settle() with it. Only IK_DEAD_LETTERED is accepted. Takes
     * ownership of the record in every case. */
    int (*settle)(ik_instance *self, ik_record *rec, ik_outcome outcome, const char *reason);
    /* 1 once the engine is shutting down: a source stops reading. */
    int (*stopping)(ik_instance *self);
    /* Sleeps up to ms, waking early on shutdown; returns 1 when stopping. */
    int (*wait_ms)(ik_instance *self, uint64_t ms);
    /* Largest record a source should accept, in bytes of raw input
     * (pipeline `max_record_size`, default MAX_MESSAGE_SIZE_KB). */
    size_t (*max_record_size)(ik_instance *self);

    /* Timers run on the engine's timer thread; a callback must be quick.
     * timer_cancel waits for a running callback to return. */
    ik_timer *(*timer_add)(ik_instance *self, uint64_t interval_ms, void (*cb)(void *arg),
                           void *arg);
    void (*timer_cancel)(ik_timer *timer);

    /* Metrics, exported as intake_plugin_<name>{pipeline,instance}. Names are
     * [a-z0-9_]; the engine owns the returned handle. `bounds` are copied. */
    ik_metric *(*counter)(ik_instance *self, const char *name, const char *help);
    ik_metric *(*gauge)(ik_instance *self, const char *name, const char *help);
    ik_metric *(*histogram)(ik_instance *self, const char *name, const char *help,
                            const double *bounds, size_t nbounds);
    void (*metric_add)(ik_metric *m, double delta);     /* counters and gauges */
    void (*metric_set)(ik_metric *m, double value);     /* gauges */
    void (*metric_observe)(ik_metric *m, double value); /* histograms */

    /* Identity. */
    const char *(*instance_name)(ik_instance *self);
    const char *(*pipeline_name)(ik_instance *self);

    /* A call that rightly runs long (a Batch API job waits for hours) says
     * it is alive, so health does not report the pipeline as stalled while
     * records wait in it. Cheap; call it on every poll. */
    void (*progress)(ik_instance *self);

    /* A source calls this from inside its settle() when it could not carry
     * out the outcome it was told for `rec` (say, its dead-letter folder
     * cannot be written): it keeps the record, which comes back on its next
     * run. The engine then counts the record as released instead, and as
     * "not stored" (the run's summary, /metrics, /health, which turns
     * unhealthy with `reason`), logs `reason` once naming the record, and
     * `intake run` ends with its own exit code. Only for the record being
     * settled, from its own settle(); any other call is logged and ignored. */
    void (*settle_failed)(ik_instance *self, ik_record *rec, const char *reason);

    /* Appends obj (NULL prints null) to buf as compact JSON, byte for byte
     * what json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
     * JSON_C_TO_STRING_NOSLASHESCAPE) prints, without writing to the object
     * (safe on a payload other threads read). Nesting deeper than 1000 prints
     * null there. buf is an ik_buf (intake/buf.h): start it zeroed; buf->p
     * grows with realloc and belongs to the caller (free() it); it is
     * NUL-terminated at buf->len after a successful call. 0, or IK_E_NOMEM
     * with buf->len back where it was and buf->oom set (also when oom was
     * already set: clear it to reuse the buffer). */
    int (*json_write)(const json_object *obj, ik_buf *buf);
    /* Appends s (n bytes) as a quoted, escaped JSON string; as json_write. */
    int (*json_write_string)(const char *s, size_t n, ik_buf *buf);

    /* State store (2.1): the calling instance's own namespace of small
     * durable records; the contract (keys, versions, TTL, ledgers,
     * transactions, errors, threads) is in <intake/state.h>. `tx` is the
     * handle a state_txn callback got, or NULL outside one. */
    /* Reads key into `value` (its len reset first: it then holds the value
     * and a NUL after it; the caller frees value->p as with json_write) and
     * its version into *version (may be NULL). IK_E_NOTFOUND when absent. */
    int (*state_get)(ik_instance *self, ik_state_txn *tx, const char *key, ik_buf *value,
                     uint64_t *version);
    /* Writes key (len bytes of value) whatever it held; ttl_ms 0: no expiry.
     * *version (may be NULL) gets the new version. */
    int (*state_put)(ik_instance *self, ik_state_txn *tx, const char *key, const void *value,
                     size_t len, uint64_t ttl_ms, uint64_t *version);
    /* Writes key only when its version is `expected` (0: only when absent or
     * expired), else IK_E_CONFLICT and nothing changes. */
    int (*state_cas)(ik_instance *self, ik_state_txn *tx, const char *key, uint64_t expected,
                     const void *value, size_t len, uint64_t ttl_ms, uint64_t *version);
    /* Deletes key; expected 0 deletes whatever version it has, another
     * value only that version (else IK_E_CONFLICT). IK_E_NOTFOUND when absent. */
    int (*state_delete)(ik_instance *self, ik_state_txn *tx, const char *key, uint64_t expected);
    /* Appends an entry to ledger `name`; *seq (may be NULL) gets its number. */
    int (*ledger_append)(ik_instance *self, ik_state_txn *tx, const char *name, const void *entry,
                         size_t len, uint64_t *seq);
    /* Calls fn for up to max entries with a number above *cursor, in order,
     * and sets *cursor to the last one handed out; *nread (may be NULL)
     * gets how many. 0 with *nread 0 when there is nothing new. */
    int (*ledger_read)(ik_instance *self, ik_state_txn *tx, const char *name, uint64_t *cursor,
                       size_t max, ik_state_ledger_fn fn, void *arg, size_t *nread);
    /* Drops the entries of ledger `name` numbered up to upto_seq. */
    int (*ledger_trim)(ik_instance *self, ik_state_txn *tx, const char *name, uint64_t upto_seq);
    /* Runs fn(tx, arg) in one transaction: committed when it returns 0,
     * rolled back (and its code returned) otherwise. */
    int (*state_txn)(ik_instance *self, ik_state_txn_fn fn, void *arg);
    /* Why the calling thread's last failed state call failed; valid until
     * its next state call ("" when none failed). */
    const char *(*state_error)(ik_instance *self);
    /* ---- Control commands (2.1) ----
     * Registers a command an operator runs on this instance: `POST
     * /api/v1/control/<pipeline>/<instance>/<name>` on the admin server, or
     * `intake ctl`. Only from create() (later: IK_E_STATE): the set of
     * commands is fixed before the admin server starts. `name` is
     * [a-z0-9_-]+ (at most 64 bytes), unique per instance (the engine's own
     * pause, resume and drain are on the source instance); `help` is one
     * line for the listing. Both are copied. `arg` is passed to fn as is.
     * 0, IK_E_INVAL (bad or taken name), IK_E_STATE or IK_E_NOMEM.
     *
     * fn runs on the admin server's thread, one command at a time (so two
     * commands never race, and the reply is the HTTP answer with no hand-off
     * between threads), never during shutdown (the engine answers 503 then)
     * and never after destroy() began; it may run concurrently with run(), process(),
     * write() and settle(), so it guards what it shares with them. While it
     * runs, /health and /metrics wait: it must return within milliseconds.
     * It sets a flag and wakes its own thread rather than doing long work,
     * and it must not call emit() or wait_ms(). */
    int (*command_register)(ik_instance *self, const char *name, const char *help, ik_command_fn fn,
                            void *arg);
} ik_host;

/* 1 when the engine's host table has the member f. A plugin declared with
 * IK_PLUGIN_HEAD loads only on engines of its own minor or newer, so the
 * members of its minor are always there; this is for a plugin that declares
 * an older minor to run on older engines too. */
#define IK_HOST_HAS(h, f) ((h)->struct_size >= offsetof(ik_host, f) + sizeof((h)->f))

/*
 * The descriptor. Callbacks not meaningful for the kind stay NULL; optional
 * ones may stay NULL too. `state` is what create() stored; `worker_state` is
 * what worker_init() stored for the calling worker (NULL without one).
 */
typedef struct ik_plugin {
    uint32_t magic; /* IK_PLUGIN_MAGIC */
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t struct_size; /* sizeof(ik_plugin) as the plugin was built */
    uint16_t option_size; /* sizeof(ik_option) as the plugin was built */
    uint16_t result_size; /* sizeof(ik_result) as the plugin was built */
    int32_t json_c_major; /* JSON_C_MAJOR_VERSION the plugin was built against */
    const char *name;     /* [a-z0-9_]+, matches the file intake-<name>.so */
    const char *version;
    const char *description;
    ik_kind kind;
    const ik_option *options; /* ends with a zeroed entry; may be NULL */
    /* sizeof the plugin's config struct; the engine allocates it zeroed per
     * instance, fills it and passes it to check() and create(); it lives
     * until destroy() returns. Options reach a plugin only through it: the
     * engine refuses to load a plugin with options and config_size 0. A
     * plugin without options may leave it 0 (config is then NULL). */
    size_t config_size;

    /* Optional: checks what the option table cannot say (a file that must
     * exist, a URL that must parse, rules between options). Called by
     * `intake validate` and by `run` before create(), on the main thread,
     * with the bound config; it logs what is wrong (host->log) and returns
     * IK_E_CONFIG (or another IK_E_* code), 0 when all is well. It must not
     * keep anything: only log, strerror, opt_is_set, instance_name and
     * pipeline_name may be used from it. */
    int (*check)(const ik_host *host, ik_instance *self, const void *config);

    /* All kinds. create() stores its state; on error it logs why, frees what
     * it made and returns an IK_E_* code. `config` is the plugin's config
     * struct, owned by the engine, valid (with its strings) until destroy(). */
    int (*create)(const ik_host *host, ik_instance *self, const void *config, void **state);
    void (*destroy)(void *state);
    int (*health)(void *state, ik_health *out); /* optional */

    /* Sources. run() reads input and emits until the input is exhausted (a
     * finite source returns 0) or host->stopping() (returns 0 as well); a
     * negative return is a fatal source error. stop() is optional and wakes a
     * run() that is blocked outside the host's wait functions. settle() is
     * told each record's outcome exactly once and must not block for long. */
    int (*run)(void *state);
    void (*stop)(void *state);
    void (*settle)(void *state, ik_record *rec, ik_outcome outcome, const ik_failure *failure);

    /* Processors and sinks, optional: worker_init() runs on each worker
     * thread (worker_index 0 .. concurrency-1) before its first call and
     * stores that worker's state; worker_exit() runs on the same thread when
     * the worker ends (not after a failed worker_init). A worker_init that
     * fails (logs why, returns an IK_E_* code) fails the start of the
     * pipeline: `intake run` stops the workers already started, calls
     * worker_exit for those whose init succeeded, and exits 4. */
    int (*worker_init)(void *state, unsigned worker_index, void **worker_state);
    void (*worker_exit)(void *state, void *worker_state);

    /* Processors. cost() is the record's weight for the batcher's max_cost
     * (e.g. tokens); optional, default 1. process() fills results[i] for
     * recs[i] and may replace payloads and set metadata. Returning a negative
     * code means the whole call failed transiently: every record is retried.
     * See "Long calls" above for calls that wait. */
    uint64_t (*cost)(void *state, const ik_record *rec);
    int (*process)(void *state, void *worker_state, ik_record *const *recs, size_t n,
                   ik_result *results);

    /* Sinks. write() delivers recs and fills results like process(); it must
     * not change the records, which other sinks may be reading (serialize
     * with host->json_write, never json_object_to_json_string). */
    int (*write)(void *state, void *worker_state, ik_record *const *recs, size_t n,
                 ik_result *results);

    /* Processors and sinks, optional: asks whether the destination answers
     * again after a call answered IK_DOWN. The engine calls it on ONE worker
     * thread of the stage (with that worker's worker_state) once the stage's
     * probe backoff has passed (the pipeline's retry initial_backoff,
     * doubling up to max_backoff), while no process()/write() of the stage
     * runs. Returns 0 when the destination answers again (the stage
     * resumes), or a negative IK_E_* code with `reason` (reason_len bytes,
     * never a secret) filled while it is still down. It must be quick, or
     * wait in slices polling host->stopping() as a long call does. Without
     * probe() the engine's probe is the next normal call (one batch). */
    int (*probe)(void *state, void *worker_state, char *reason, size_t reason_len);
} ik_plugin;

/* The symbol a plugin of one kind exports. */
typedef const ik_plugin *(*ik_plugin_entry_fn)(void);

/*
 * SDK 2.2: the symbol a plugin file with several kinds exports. It returns a
 * NULL-terminated array of descriptor pointers (static storage), at most one
 * per kind, every one with the file's name: a `servicebus` source and a
 * `servicebus` sink in intake-servicebus.so. A stage asks for the kind its
 * place in the pipeline needs (`source`: a source; `processors`: a
 * processor; `sinks` and `dead_letter`: a sink) and gets that descriptor;
 * the kinds share nothing but the file (each has its own options, config
 * struct and instances), so plugin state still hangs off create()'s state.
 *
 * The engine checks every descriptor of the list as it checks a single one
 * (magic, ABI, callbacks of its kind, option table) and refuses the whole
 * file, naming it, when the list is empty, two entries have one kind, or
 * their names differ.
 *
 * When a file exports both symbols, an engine of SDK 2.2 or later uses
 * IK_PLUGIN_ENTRIES and ignores IK_PLUGIN_ENTRY; older engines know only
 * IK_PLUGIN_ENTRY, so a file may export it too (IK_PLUGIN_EXPORT(desc)
 * beside IK_PLUGIN_EXPORT_KINDS) to offer them one of its kinds. Such an
 * engine refuses a descriptor of a newer minor than its own, so that one
 * descriptor must declare the older minor (.abi_minor = 1 after
 * IK_PLUGIN_HEAD) and use nothing newer.
 */
typedef const ik_plugin *const *(*ik_plugin_entries_fn)(void);

/* Fills the fixed head of a descriptor. */
#define IK_PLUGIN_HEAD                                                                             \
    .magic = IK_PLUGIN_MAGIC, .abi_major = IK_ABI_MAJOR, .abi_minor = IK_ABI_MINOR,                \
    .struct_size = sizeof(ik_plugin), .option_size = sizeof(ik_option),                            \
    .result_size = sizeof(ik_result), .json_c_major = JSON_C_MAJOR_VERSION

/* Declares the entry function returning `desc`: a plugin of one kind. */
#define IK_PLUGIN_EXPORT(desc)                                                                     \
    __attribute__((visibility("default"))) const ik_plugin *IK_PLUGIN_ENTRY(void);                 \
    const ik_plugin *IK_PLUGIN_ENTRY(void)                                                         \
    {                                                                                              \
        return &(desc);                                                                            \
    }

/* &a, &b, ... for one to three descriptors (IK_PLUGIN_EXPORT_KINDS). */
#define IK_KINDS_PICK_(a, b, c, m, ...) m
#define IK_KINDS_1_(a)                  &(a)
#define IK_KINDS_2_(a, b)               &(a), &(b)
#define IK_KINDS_3_(a, b, c)            &(a), &(b), &(c)
#define IK_KINDS_ADDR_(...)                                                                        \
    IK_KINDS_PICK_(__VA_ARGS__, IK_KINDS_3_, IK_KINDS_2_, IK_KINDS_1_, unused)(__VA_ARGS__)

/* Declares the SDK 2.2 entries function returning the descriptors given (one
 * per kind, all with the same name), e.g.
 *   IK_PLUGIN_EXPORT_KINDS(sb_source, sb_sink)
 * in one file of the plugin, where both descriptors are visible. */
#define IK_PLUGIN_EXPORT_KINDS(...)                                                                \
    __attribute__((visibility("default"))) const ik_plugin *const *IK_PLUGIN_ENTRIES(void);        \
    const ik_plugin *const *IK_PLUGIN_ENTRIES(void)                                                \
    {                                                                                              \
        static const ik_plugin *const ik_entries_[] = {IK_KINDS_ADDR_(__VA_ARGS__), NULL};         \
        return ik_entries_;                                                                        \
    }

#ifdef __cplusplus
}
#endif

#endif /* INTAKE_PLUGIN_H */
