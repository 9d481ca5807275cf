/*
 * crash.c: the fatal-signal handler and the per-thread "current plugin call"
 * notes it prints (see crash.h).
 *
 * Each thread that makes plugin calls gets, on its first call, a small
 * bookkeeping struct (thread-local pointer, freed by a pthread key destructor
 * when the thread ends): the note of its innermost call, a mutex that only
 * guards that pointer against ik_crash_each_running on another thread, and
 * its alternate signal stack. All threads' structs are on one list, guarded
 * by g_mu, which only thread start/end and ik_crash_each_running take.
 *
 * The handler touches nothing but the thread-local pointer, the note it
 * points to (complete before it is published) and stack memory, and calls
 * only write(2), sigaction(2) and raise(3): all async-signal-safe.
 */
#include "crash.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "timer.h"

/* The alternate stack: our handler needs about 2 KiB; the rest is margin
 * for sanitizer runtimes that run on it too. */
#define ALT_STACK_SIZE (64 * 1024)
/* A thread's existing alternate stack (a sanitizer's) is kept if this big. */
#define ALT_STACK_MIN (16 * 1024)
/* Longest part of one record id in a note. */
#define ID_MAX 80

typedef struct crash_thread {
    pthread_mutex_t mu; /* guards cur against ik_crash_each_running only */
    _Atomic(ik_crash_note *) cur;
    void *altstack; /* ours (malloc'd), or NULL: the thread had one or none could be set */
    struct crash_thread *next;
} crash_thread;

static _Thread_local crash_thread *tls;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static crash_thread *g_threads; /* under g_mu */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static int g_key_ok;

static const struct {
    int sig;
    const char *name;
} fatal_signals[] = {
    {SIGSEGV, "SIGSEGV (segmentation fault)"},
    {SIGBUS, "SIGBUS (bus error)"},
    {SIGFPE, "SIGFPE (arithmetic exception)"},
    {SIGILL, "SIGILL (illegal instruction)"},
    {SIGABRT, "SIGABRT (abort)"},
};
#define NFATAL (sizeof fatal_signals / sizeof fatal_signals[0])

/* ------------------------------------------------------------ the text */

/* A bounded append-only text: what does not fit is cut. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void put_n(text *t, const char *s, size_t n)
{
    size_t room = t->cap - t->len;
    if (n > room)
        n = room;
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void put(text *t, const char *s)
{
    put_n(t, s, s ? strlen(s) : 0);
}

static void put_uint(text *t, size_t v)
{
    char digits[24];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    put_n(t, digits + i, sizeof digits - i);
}

/* One record id, control characters as '?' so the note stays one line,
 * cut at ID_MAX bytes with "...". */
static void put_id(text *t, const char *id)
{
    if (!id)
        id = "?";
    size_t n = strnlen(id, ID_MAX + 1);
    size_t keep = n > ID_MAX ? ID_MAX : n;
    for (size_t i = 0; i < keep && t->len < t->cap; i++) {
        unsigned char c = (unsigned char)id[i];
        t->p[t->len++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (n > ID_MAX)
        put(t, "...");
}

/* The ids of the call, the first IK_CRASH_IDS that fit whole, then
 * " +K more" for the rest. */
static void put_ids(text *t, ik_record *const *recs, size_t n)
{
    /* Room kept for ", " and the "+K more" tail. */
    const size_t tail = 32;
    size_t named = 0;
    for (; named < n && named < IK_CRASH_IDS; named++) {
        const char *id = recs[named] ? recs[named]->id : NULL;
        size_t need = (id ? strnlen(id, ID_MAX + 1) : 1) + 5;
        if (t->len + need + tail > t->cap)
            break;
        if (named)
            put(t, ", ");
        put_id(t, id);
    }
    if (named < n) {
        put(t, " +");
        put_uint(t, n - named);
        put(t, " more");
    }
}

void ik_crash_note_format(ik_crash_note *note, const char *pipeline, const char *stage,
                          const char *plugin, const char *call, ik_record *const *recs, size_t n)
{
    text t = {note->text, 0, sizeof note->text};
    put(&t, "plugin '");
    put(&t, plugin);
    put(&t, "', pipeline '");
    put(&t, pipeline);
    put(&t, "', stage '");
    put(&t, stage);
    put(&t, "', ");
    put(&t, call);
    put(&t, "()");
    if (n) {
        put(&t, " with ");
        put_uint(&t, n);
        put(&t, " record(s): ");
        put_ids(&t, recs, n);
    }
    note->len = t.len;
}

/* ------------------------------------------------------ the handler */

static const char *signal_name(int sig)
{
    for (size_t i = 0; i < NFATAL; i++)
        if (fatal_signals[i].sig == sig)
            return fatal_signals[i].name;
    return "fatal signal";
}

/* Writes the line, then lets the default action (exit status naming the
 * signal, core dump) happen: re-raised, it is delivered when we return. */
static void on_fatal(int sig)
{
    int saved = errno;
    char line[IK_CRASH_TEXT + 160];
    text t = {line, 0, sizeof line - 1};
    put(&t, "intake: fatal signal ");
    put(&t, signal_name(sig));
    crash_thread *self = tls;
    ik_crash_note *note = self ? atomic_load_explicit(&self->cur, memory_order_relaxed) : NULL;
    if (note) {
        put(&t, " in a plugin call: ");
        put_n(&t, note->text, note->len);
    } else {
        put(&t, " outside any plugin call: the engine itself crashed (or a thread a plugin "
                "started)");
    }
    line[t.len++] = '\n';
    for (size_t off = 0; off < t.len;) {
        ssize_t w = write(STDERR_FILENO, line + off, t.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
    errno = saved;
}

/* ------------------------------------------------ per-thread bookkeeping */

/* Gives the thread an alternate signal stack unless it has one big enough
 * already (a sanitizer runtime sets its own and frees it itself). */
static void altstack_setup(crash_thread *t)
{
    stack_t old;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE) &&
        old.ss_size >= ALT_STACK_MIN)
        return;
    long min = sysconf(_SC_SIGSTKSZ);
    size_t size = ALT_STACK_SIZE;
    if (min > 0 && (size_t)min * 4 > size)
        size = (size_t)min * 4;
    void *mem = malloc(size);
    if (!mem)
        return;
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        free(mem);
        return;
    }
    t->altstack = mem;
}

/* Key destructor: the thread is ending. */
static void thread_end(void *arg)
{
    crash_thread *t = arg;
    pthread_mutex_lock(&g_mu);
    for (crash_thread **pp = &g_threads; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
    if (t->altstack) {
        stack_t cur;
        if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == t->altstack) {
            stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
            sigaltstack(&off, NULL);
        }
        free(t->altstack);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
    tls = NULL;
}

static void make_key(void)
{
    g_key_ok = pthread_key_create(&g_key, thread_end) == 0;
}

/* The calling thread's bookkeeping, made on first use; NULL without memory. */
static crash_thread *thread_get(void)
{
    if (tls)
        return tls;
    pthread_once(&g_once, make_key);
    crash_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    altstack_setup(t);
    if (g_key_ok)
        pthread_setspecific(g_key, t);
    pthread_mutex_lock(&g_mu);
    t->next = g_threads;
    g_threads = t;
    pthread_mutex_unlock(&g_mu);
    tls = t;
    return t;
}

int ik_crash_install(void)
{
    if (!thread_get())
        return IK_E_NOMEM;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NFATAL; i++)
        if (sigaction(fatal_signals[i].sig, &sa, NULL) != 0)
            return IK_E_IO;
    return 0;
}

void ik_crash_enter(ik_crash_note *note, ik_instance *inst, const char *call,
                    ik_record *const *recs, size_t n)
{
    note->published = 0;
    crash_thread *t = thread_get();
    if (!t)
        return;
    ik_crash_note_format(note, ik_instance_pipeline_name(inst), inst->spec->name,
                         inst->spec->plugin, call, recs, n);
    note->since_ms = ik_now_ms();
    pthread_mutex_lock(&t->mu);
    note->prev = atomic_load_explicit(&t->cur, memory_order_relaxed);
    /* The text is complete before the handler can see the note. */
    atomic_store_explicit(&t->cur, note, memory_order_release);
    pthread_mutex_unlock(&t->mu);
    note->published = 1;
}

void ik_crash_leave(ik_crash_note *note)
{
    crash_thread *t = tls;
    if (!note->published || !t)
        return;
    pthread_mutex_lock(&t->mu);
    atomic_store_explicit(&t->cur, note->prev, memory_order_release);
    pthread_mutex_unlock(&t->mu);
    note->published = 0;
}

size_t ik_crash_each_running(void (*fn)(void *arg, const char *text, uint64_t running_ms),
                             void *arg)
{
    size_t count = 0;
    char copy[IK_CRASH_TEXT + 1];
    pthread_mutex_lock(&g_mu);
    for (crash_thread *t = g_threads; t; t = t->next) {
        pthread_mutex_lock(&t->mu);
        ik_crash_note *note = atomic_load_explicit(&t->cur, memory_order_acquire);
        uint64_t ms = 0;
        if (note) {
            memcpy(copy, note->text, note->len);
            copy[note->len] = '\0';
            uint64_t now = ik_now_ms();
            ms = now > note->since_ms ? now - note->since_ms : 0;
        }
        pthread_mutex_unlock(&t->mu);
        if (note) {
            fn(arg, copy, ms);
            count++;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return count;
}
