/*
 * shape.c - event shapes: processors run once per file and variant.
 */
#include "shape.h"

#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "when.h"

/* A drop_event with a condition, and the event as it stood there. */
struct drop_check {
    const struct when *when;
    struct sl_value ev;
    struct sl_value *ts, *msg, *off;  /* the placeholders' slots in ev, if still there */
};

struct shape {
    bool built;
    bool dropped;            /* an unconditional drop_event: every event goes */
    uint64_t gen;
    struct event_shape out;
    struct drop_check *checks;
    size_t nchecks;
};

#define NFLAGS 4             /* EVENT_FLAG_TRUNCATED | EVENT_FLAG_MULTILINE */

struct shape_cache {
    struct shape s[NFLAGS][SHAPE_VARIANTS];
};

static const char PH_TS[] = EVENT_PH_TS, PH_MSG[] = EVENT_PH_MSG, PH_OFF[] = EVENT_PH_OFF;

static void shape_free(struct shape *s)
{
    for (size_t i = 0; i < s->nchecks; i++) {
        sl_value_clear(&s->checks[i].ev);
    }
    free(s->checks);
    event_shape_free(&s->out);
    memset(s, 0, sizeof(*s));
}

struct shape_cache *shape_cache_new(void)
{
    return sl_calloc(1, sizeof(struct shape_cache));
}

void shape_cache_clear(struct shape_cache *c)
{
    for (size_t f = 0; c && f < NFLAGS; f++) {
        for (size_t v = 0; v < SHAPE_VARIANTS; v++) {
            shape_free(&c->s[f][v]);
        }
    }
}

void shape_cache_free(struct shape_cache *c)
{
    shape_cache_clear(c);
    free(c);
}

static bool is_ph(const struct sl_value *v, const char *ph)
{
    size_t n = strlen(ph);
    return v->type == SL_V_STRING && v->u.s.len == n && memcmp(v->u.s.ptr, ph, n) == 0;
}

/* A slot whose string is not ours to free: per event it points at the line. */
static void borrow(struct sl_value *v, const char *s, size_t n)
{
    sl_value_clear(v);
    v->type = SL_V_STRING;
    v->flags = SL_VF_ARENA;
    v->u.s.ptr = (char *)s;
    v->u.s.len = n;
}

static void find_slots(struct drop_check *d, struct sl_value *v)
{
    if (v->type == SL_V_OBJECT || v->type == SL_V_ARRAY) {
        size_t n = v->type == SL_V_OBJECT ? v->u.o.len : v->u.a.len;
        for (size_t i = 0; i < n; i++) {
            find_slots(d, v->type == SL_V_OBJECT ? &v->u.o.items[i].v : &v->u.a.items[i]);
        }
    } else if (is_ph(v, PH_TS)) {
        d->ts = v;
        borrow(v, PH_TS, sizeof(PH_TS) - 1);
    } else if (is_ph(v, PH_MSG)) {
        d->msg = v;
        borrow(v, PH_MSG, sizeof(PH_MSG) - 1);
    } else if (is_ph(v, PH_OFF)) {
        d->off = v;
        borrow(v, PH_OFF, sizeof(PH_OFF) - 1);
    }
}

static void add_check(struct shape *s, const struct when *w, const struct sl_value *ev)
{
    s->checks = sl_realloc(s->checks, (s->nchecks + 1) * sizeof(*s->checks));
    struct drop_check *d = &s->checks[s->nchecks++];
    memset(d, 0, sizeof(*d));
    d->when = w;
    sl_value_copy(&d->ev, ev);
    find_slots(d, &d->ev);
}

/* The event of ev with placeholders, through the static processors. */
static int build(struct shape *s, struct proc_chain *const *chains, size_t n,
                 const struct shape_event *ev, uint64_t gen)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    int rc = event_encode_ext(&b, ev->tmpl, ev->ts, ev->file_json, ev->file_json_len, "", 0, 0,
                              ev->flags, ev->extra, ev->extra_len);
    struct sl_value t = {0};
    char err[96];
    if (rc != 0 || sl_json_parse(b.data, b.len, &t, NULL, err, sizeof(err)) != 0) {
        sl_buf_free(&b);
        return SL_EINVAL;
    }
    sl_value_set_cstr(sl_obj_putc(&t, "@timestamp"), PH_TS);
    sl_value_set_cstr(sl_obj_putc(&t, "message"), PH_MSG);
    sl_value_set_cstr(sl_field_put(&t, "log.offset"), PH_OFF);
    for (size_t k = 0; k < n && !s->dropped; k++) {
        for (size_t i = 0; i < proc_chain_len(chains[k]) && !s->dropped; i++) {
            const struct when *w;
            if (!proc_is_drop(chains[k], i, &w)) {
                proc_run_one(chains[k], i, &t);
            } else if (w) {
                add_check(s, w, &t);
            } else {
                s->dropped = true;
            }
        }
    }
    sl_buf_reset(&b);
    rc = sl_json_write(&b, &t, NULL);
    if (rc == 0) {
        event_shape_init(&s->out, b.data, b.len);
        s->built = true;
        s->gen = gen;
    }
    sl_value_clear(&t);
    sl_buf_free(&b);
    return rc;
}

static bool dropped(struct shape *s, const struct shape_event *ev)
{
    for (size_t i = 0; i < s->nchecks; i++) {
        struct drop_check *d = &s->checks[i];
        if (d->ts) {
            d->ts->u.s.ptr = (char *)ev->ts;
            d->ts->u.s.len = 24;
        }
        if (d->msg) {
            d->msg->u.s.ptr = (char *)ev->line;
            d->msg->u.s.len = ev->len;
        }
        if (d->off) {
            d->off->type = SL_V_INT;
            d->off->u.i = (int64_t)ev->offset;
        }
        if (when_eval(d->when, &d->ev)) {
            return true;
        }
    }
    return false;
}

int shape_encode(struct shape_cache *c, struct proc_chain *const *chains, size_t n,
                 const struct shape_event *ev, struct sl_buf *out)
{
    uint64_t gen = 0;
    for (size_t k = 0; k < n; k++) {
        gen += proc_refresh(chains[k]);  /* each grows: so does the sum */
    }
    struct shape *s = &c->s[ev->flags & (NFLAGS - 1)][ev->variant];
    if (!s->built || s->gen != gen) {
        shape_free(s);
        /* The scope of whoever called: a shape lives on the heap, beyond any arena. */
        struct sl_arena *scope = sl_value_set_arena(NULL);
        int rc = build(s, chains, n, ev, gen);
        sl_value_set_arena(scope);
        if (rc != 0) {
            return rc;
        }
    }
    if (s->dropped || dropped(s, ev)) {
        return 0;
    }
    int rc = event_encode_shape(out, &s->out, ev->ts, ev->line, ev->len, ev->offset);
    return rc == 0 ? 1 : rc;
}
