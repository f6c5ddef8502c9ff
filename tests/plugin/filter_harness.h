/*
 * filter_harness.h - what every filter test needs: load a YAML snippet and
 * make the filter instance through the core (agg_instance_new: the options
 * table, the core's own options such as when and tag_on_failure), run it on
 * a JSON event as the pipeline does (agg_instance_filter: condition, verdict,
 * tags) and compare the result as compact JSON.
 * Before including it, a test defines:
 *   FILTER_PLUGIN  the plugin descriptor (e.g. sl_plugin_filter_kv)
 *   FILTER_KEY     the YAML key holding the options ("kv")
 *   FILTER_ID      the id the core would give it ("pipeline.filters[2] (kv)")
 */
#ifndef SLUICE_FILTER_HARNESS_H
#define SLUICE_FILTER_HARNESS_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "instance.h"
#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"

extern const struct sl_plugin FILTER_PLUGIN;
#define P FILTER_PLUGIN

static inline const char *errs(struct sl_cfg *cfg)
{
    return cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "";
}

/* Loads text (a map whose key FILTER_KEY holds the options) and makes the instance. */
static inline void *load(struct sl_cfg *cfg, const char *text)
{
    struct agg_instance_args a = {.id = FILTER_ID};
    memset(cfg, 0, sizeof(*cfg));
    if (sl_cfg_load_string(cfg, "t.yml", text, strlen(text)) != 0) {
        return NULL;
    }
    return agg_instance_new(&P, cfg, sl_cfg_get(cfg->root, FILTER_KEY), &a);
}

static inline void unload(void *inst)
{
    agg_instance_free(inst);
}

/* Runs the instance on ev as the pipeline does; returns the verdict. */
static inline int run(void *inst, struct sl_value *ev)
{
    return (int)agg_instance_filter(inst, ev, &(bool){false});
}

/* Runs the filter on the event `in`; compares the event (compact JSON) and the result. */
#define EXPECT_RC(inst, in, out, rc) expect_(inst, in, out, rc, __LINE__)
#define EXPECT(inst, in, out) expect_(inst, in, out, SL_FILTER_KEEP, __LINE__)
static inline void expect_(void *inst, const char *in, const char *out, int want_rc, int line)
{
    struct sl_value ev = {0};
    struct sl_buf b;
    char err[128];
    if (sl_json_parse(in, strlen(in), &ev, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s:%d: bad test input: %s\n", __FILE__, line, err);
        t_failed_checks++;
        return;
    }
    int rc = run(inst, &ev);
    sl_buf_init(&b, 0);
    sl_json_write(&b, &ev, NULL);
    const char *got = sl_buf_cstr(&b);
    if (strcmp(got, out) != 0 || rc != want_rc) {
        fprintf(stderr, "%s:%d: got %s (rc %d)\n%*sexpected %s (rc %d)\n", __FILE__, line, got,
                rc, (int)strlen(__FILE__) + 5, "", out, want_rc);
        t_failed_checks++;
    }
    sl_buf_free(&b);
    sl_value_clear(&ev);
}

/* What making (then freeing) an instance from yaml logged on stderr (heap string;
 * "" when nothing), e.g. a start-up warning. With pipeline_ecs as the pipeline's mode. */
static inline char *log_of_load(const char *yaml, enum sl_ecs pipeline_ecs)
{
    char path[] = "/tmp/filter_log_XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    if (fd < 0 || saved < 0) {
        t_failed_checks++;
        return strdup("");
    }
    fflush(stderr);
    dup2(fd, 2);
    struct sl_cfg cfg;
    struct agg_instance_args a = {.id = FILTER_ID, .ecs = pipeline_ecs};
    memset(&cfg, 0, sizeof(cfg));
    if (sl_cfg_load_string(&cfg, "t.yml", yaml, strlen(yaml)) == 0) {
        agg_instance_free(agg_instance_new(&P, &cfg, sl_cfg_get(cfg.root, FILTER_KEY), &a));
    }
    sl_cfg_free(&cfg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return strdup(buf);
}

/* One filter instance from yaml for the EXPECTs in a block: WITH(yaml) { ... w.k ... } */
struct with {
    struct sl_cfg cfg;  /* copied by value: nothing points at the struct itself */
    void *k;
};

static inline struct with with_begin(const char *yaml, int line)
{
    struct with w;
    w.k = load(&w.cfg, yaml);
    if (!w.k) {
        fprintf(stderr, "%s:%d: init failed: %s", __FILE__, line, errs(&w.cfg));
        t_failed_checks++;
        sl_cfg_free(&w.cfg);
    }
    return w;
}

static inline void with_end(struct with *w)
{
    unload(w->k);
    sl_cfg_free(&w->cfg);
    w->k = NULL;
}

#define WITH(yaml) for (struct with w = with_begin(yaml, __LINE__); w.k; with_end(&w))

#endif
