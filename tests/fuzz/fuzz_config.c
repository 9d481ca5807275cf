/*
 * fuzz_config.c: fuzz target for the pipeline config loader. Each input is
 * parsed as a whole config file by ik_config_load_string (@include
 * expansion, size and settings limits, libconfig syntax, ${VAR} expansion,
 * key/type/range checks) and everything is freed. Every stage is then bound
 * against a fixed option table of every type, with limits (options.c). No
 * option is secret: secrets would pile up in the redactor.
 *
 * @include: the target makes a private folder (mkdtemp) once per process,
 * holding a valid part, a part including it, one including itself, one
 * leaving a string open, one with a syntax error, a FIFO, a folder, a file of
 * 600 KB and one of 6,000 settings (two of either cross a limit), and removes
 * it at exit. Inputs reach them by absolute name under FIXTURES, which the
 * target reads as that folder: runs side by side, of another build or of
 * another user never share, race for or trust one fixed folder in /tmp. A
 * relative name resolves beside FUZZ_NAME, in a folder that does not exist.
 * Inputs naming any other path (a '/' elsewhere, or "..") are skipped: the
 * loader would read whatever regular file they name (never blocking), which
 * tests the machine's files, not the parser.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "config.h"
#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A name in a directory that does not exist, so relative env_file,
 * plugin_path and @include names find nothing and nothing is left behind. */
#define FUZZ_NAME "/nonexistent-intake-fuzz/fuzz.conf"

/* The name inputs give the include fixtures by... */
#define FIXTURES "/tmp/intake-fuzz-config"

/* ...and the folder they are in, this process's own. */
static char fixtures_dir[] = "/tmp/intake-fuzz-config-XXXXXX";

/* The config struct the options are bound into, as a plugin's would be. */
typedef struct fuzz_config {
    const char *path;
    int64_t count;
    int follow;
    double ratio;
    uint64_t timeout_ms;
    uint64_t limit;
    const char *need;
    int mode;
} fuzz_config;

static const char *const fuzz_modes[] = {"fast", "slow", NULL};

/* A range for each numeric type, and a choice. */
static const ik_option fuzz_opts[] = {
    {"path", IK_OPT_STRING, "${IKF_DIR:-in}", 0, "a string", IK_OPT_AT(fuzz_config, path)},
    {"count", IK_OPT_INT, "10", 0, "an int", IK_OPT_AT(fuzz_config, count), .min = "-5",
     .max = "1000"},
    {"follow", IK_OPT_BOOL, "off", 0, "a bool", IK_OPT_AT(fuzz_config, follow)},
    {"ratio", IK_OPT_DOUBLE, "0.5", 0, "a double", IK_OPT_AT(fuzz_config, ratio), .min = "0"},
    {"timeout", IK_OPT_DURATION, "30s", 0, "a duration", IK_OPT_AT(fuzz_config, timeout_ms),
     .max = "1h"},
    {"limit", IK_OPT_SIZE, "1M", 0, "a size", IK_OPT_AT(fuzz_config, limit), .min = "1K",
     .max = "1G"},
    {"need", IK_OPT_STRING, NULL, IK_OPT_REQUIRED, "a required string",
     IK_OPT_AT(fuzz_config, need)},
    {"mode", IK_OPT_CHOICE, "fast", 0, "a choice", IK_OPT_AT(fuzz_config, mode),
     .choices = fuzz_modes},
    {0},
};

/* Binds the options of one stage and reads them all back: the getters and
 * the config struct agree. */
static void bind_stage(const ik_stage_spec *st)
{
    ik_optvals *vals = NULL;
    ik_err err;
    ik_err_clear(&err);
    if (ik_options_bind(fuzz_opts, sizeof(fuzz_config), st->plugin, st, &vals, &err) != 0) {
        if (vals || err.msg[0] == '\0')
            abort();
        return;
    }
    const fuzz_config *cfg = ik_optvals_config(vals);
    const char *s, *need;
    int64_t i;
    int b;
    double d;
    uint64_t u, l;
    if (!cfg || ik_optvals_string(vals, "path", &s) != 0 || !s || s != cfg->path ||
        ik_optvals_string(vals, "need", &need) != 0 || !need || need != cfg->need ||
        ik_optvals_int(vals, "count", &i) != 0 || i != cfg->count ||
        ik_optvals_bool(vals, "follow", &b) != 0 || b != cfg->follow ||
        ik_optvals_double(vals, "ratio", &d) != 0 || memcmp(&d, &cfg->ratio, sizeof d) != 0 ||
        ik_optvals_duration_ms(vals, "timeout", &u) != 0 || u != cfg->timeout_ms ||
        ik_optvals_size(vals, "limit", &l) != 0 || l != cfg->limit || cfg->mode < 0 ||
        cfg->mode > 1)
        abort();
    ik_optvals_free(vals);
}

/* fixtures_dir/name, in a static buffer. */
static const char *fixture_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", fixtures_dir, name);
    return path;
}

/* Writes fixture `name`, `text` `repeat` times. The file is returned open for
 * more (caller closes), or NULL. */
static FILE *fixture(const char *name, const char *text, int repeat)
{
    FILE *f = fopen(fixture_path(name), "w");
    for (int i = 0; f && i < repeat; i++)
        fputs(text, f);
    return f;
}

static void close_fixture(FILE *f)
{
    if (f)
        fclose(f);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_fixtures(void)
{
    nftw(fixtures_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Makes the include fixtures once per process; they go at exit. */
static void make_fixtures(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    if (!mkdtemp(fixtures_dir)) {
        perror("fuzz_config: mkdtemp");
        abort();
    }
    atexit(remove_fixtures);
    mkdir(fixture_path("dir"), 0700);
    mkfifo(fixture_path("fifo"), 0600);
    close_fixture(fixture("part.conf", "log = { level = \"debug\"; };\n", 1));
    close_fixture(fixture("nested.conf", "# includes its neighbour\n@include \"part.conf\"\n", 1));
    close_fixture(fixture("self.conf", "@include \"self.conf\"\n", 1));
    close_fixture(fixture("open.conf", "log = { level = \"info\n", 1));
    close_fixture(fixture("syntax.conf", "log = {\n  level = ;\n};\n", 1));
    close_fixture(fixture("dir/inner.conf", "@include \"../part.conf\"\n", 1));
    close_fixture(fixture(
        "big.conf", "# 64 bytes of comment, 9,600 times: 600 KB ....................\n", 9600));
    FILE *f = fixture("many.conf", "many = {\n", 1);
    for (int i = 0; f && i < 6000; i++)
        fprintf(f, "  k%d = %d;\n", i, i);
    if (f)
        fputs("};\n", f);
    close_fixture(f);
}

/* s with every FIXTURES in it naming fixtures_dir instead; malloc'd, or NULL
 * when out of memory. */
static char *with_fixtures_dir(const char *s)
{
    ik_buf b = {0};
    for (const char *hit; (hit = strstr(s, FIXTURES)); s = hit + strlen(FIXTURES)) {
        ik_buf_add(&b, s, (size_t)(hit - s));
        ik_buf_adds(&b, fixtures_dir);
    }
    ik_buf_adds(&b, s);
    ik_buf_add(&b, "", 0);
    return ik_buf_take(&b);
}

/* 1 when every @include of s names a fixture or a bare relative name (a
 * rough reading: enough to keep the loader inside FIXTURES). */
static int includes_allowed(const char *s)
{
    for (const char *p = strstr(s, "@include"); p; p = strstr(p + 1, "@include")) {
        const char *q = strchr(p, '"');
        if (!q)
            continue;
        const char *end = strchr(q + 1, '"');
        size_t n = end ? (size_t)(end - q - 1) : strlen(q + 1);
        if (memmem(q + 1, n, "..", 2))
            return 0;
        if (memchr(q + 1, '/', n) && strncmp(q + 1, FIXTURES "/", sizeof FIXTURES) != 0)
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    make_fixtures();
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *mapped = includes_allowed(text) ? with_fixtures_dir(text) : NULL;
    if (mapped) {
        ik_config *cfg = NULL;
        ik_err err;
        ik_err_clear(&err);
        if (ik_config_load_string(mapped, FUZZ_NAME, &cfg, &err) == 0) {
            /* walk what the loader built, as the runtime would */
            for (size_t i = 0; i < cfg->npipelines; i++) {
                const ik_pipeline_spec *p = &cfg->pipelines[i];
                if (!p->name || !p->source.name || p->nsinks == 0 || !p->sinks[0].name)
                    abort();
                (void)ik_config_where(p->source.setting);
                bind_stage(&p->source);
                for (size_t k = 0; k < p->nprocessors; k++)
                    bind_stage(&p->processors[k]);
                for (size_t k = 0; k < p->nsinks; k++)
                    bind_stage(&p->sinks[k]);
                if (p->dead_letter)
                    bind_stage(p->dead_letter);
            }
            ik_config_free(cfg);
        } else if (err.code == 0 || err.msg[0] == '\0') {
            abort(); /* every failure must explain itself */
        }
    }
    free(mapped);
    free(text);
    return 0;
}
