/*
 * processor.c - the shipper's processors, in Filebeat's names and semantics.
 *
 * Everything a processor needs from its options (field references split into
 * their paths, the values add_fields adds, regexes, the host's facts) is
 * prepared at config time; at run time a processor only walks the tree.
 */
#include "processor.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "container.h"
#include "kubeapi.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "when.h"

enum proc_kind {
    P_ADD_FIELDS, P_DROP_FIELDS, P_INCLUDE_FIELDS, P_RENAME, P_DROP_EVENT,
    P_DECODE_JSON, P_HOST, P_K8S, P_NKINDS
};

static const char *const NAMES[] = {"add_fields", "drop_fields", "include_fields", "rename",
                                    "drop_event", "decode_json_fields", "add_host_metadata",
                                    "add_kubernetes_metadata", NULL};

struct proc {
    enum proc_kind kind;
    struct when *when;
    struct sl_metric *m_err;
    struct sl_fieldref *refs;   /* drop/include/decode fields; rename: from */
    struct sl_fieldref *to;     /* rename */
    size_t nrefs;
    bool ignore_missing, fail_on_error, process_array, overwrite_keys, add_error_key;
    int64_t max_depth;
    struct sl_value value;      /* add_fields: what to add; add_host_metadata: the host */
    bool has_target, root_target;
    struct sl_fieldref target;
    /* add_host_metadata */
    bool netinfo, replace;
    uint64_t ttl_ms, expires;
    /* add_kubernetes_metadata: logs_path prefixes (none: any path), the API watcher */
    char **prefixes;
    size_t nprefixes;
    struct kubeapi *kube;
};

struct proc_chain {
    struct proc *p;
    size_t n;
    unsigned calls;           /* proc_refresh() calls */
};

/* Bumped by every refresh of a host cache: event shapes built before are stale. */
static uint64_t host_generation;

static void count_error(struct proc *p)
{
    if (p->m_err) {
        sl_counter_inc(p->m_err);
    }
}

/* ---- add_fields ------------------------------------------------------------ */

/* Filebeat's deep update: objects merge key by key, anything else replaces. */
static void merge(struct sl_value *dst, const struct sl_value *src)
{
    if (dst->type != SL_V_OBJECT) {
        sl_value_set_object(dst);
    }
    for (size_t i = 0; i < src->u.o.len; i++) {
        const struct sl_member *m = &src->u.o.items[i];
        struct sl_value *slot = sl_obj_put(dst, m->key, m->klen);
        if (m->v.type == SL_V_OBJECT && slot->type == SL_V_OBJECT) {
            merge(slot, &m->v);
        } else {
            sl_value_copy(slot, &m->v);
        }
    }
}

static void add_fields(struct proc *p, struct sl_value *ev)
{
    merge(p->root_target ? ev : sl_fieldref_put(&p->target, ev), &p->value);
}

/* ---- drop_fields, include_fields --------------------------------------------- */

static bool undroppable(const struct sl_fieldref *r)
{
    return strcmp(r->text, "@timestamp") == 0 || strcmp(r->text, "type") == 0;
}

static void drop_fields(struct proc *p, struct sl_value *ev)
{
    for (size_t i = 0; i < p->nrefs; i++) {
        if (!undroppable(&p->refs[i]) && sl_fieldref_del(&p->refs[i], ev) != 0 &&
            !p->ignore_missing) {
            count_error(p);
        }
    }
}

static void include_fields(struct proc *p, struct sl_value *ev)
{
    static const char *const always[] = {"@timestamp", "@metadata", "type"};
    struct sl_value kept = {0};
    sl_value_set_object(&kept);
    for (size_t i = 0; i < SL_ARRAY_LEN(always); i++) {
        struct sl_value *v = sl_obj_getc(ev, always[i]);
        if (v) {
            sl_value_move(sl_obj_putc(&kept, always[i]), v);
        }
    }
    for (size_t i = 0; i < p->nrefs; i++) {
        struct sl_value *v = sl_fieldref_get(&p->refs[i], ev);
        if (v && v->type != SL_V_NULL) {
            struct sl_value tmp = {0};
            sl_value_move(&tmp, v);
            sl_value_move(sl_fieldref_put(&p->refs[i], &kept), &tmp);
        }
    }
    sl_value_move(ev, &kept);
}

/* ---- rename ------------------------------------------------------------------ */

/* Moves from to to; 0, SL_ENOENT (no from) or SL_EEXIST-like SL_EINVAL (to is taken). */
static int move_field(const struct sl_fieldref *from, const struct sl_fieldref *to,
                      struct sl_value *ev)
{
    struct sl_value *v = sl_fieldref_get(from, ev);
    if (!v) {
        return SL_ENOENT;
    }
    if (sl_fieldref_get(to, ev)) {
        return SL_EINVAL;
    }
    struct sl_value tmp = {0};
    sl_value_move(&tmp, v);
    sl_fieldref_del(from, ev);
    sl_value_move(sl_fieldref_put(to, ev), &tmp);
    return 0;
}

static void set_error(struct sl_value *ev, const char *msg)
{
    struct sl_value *e = sl_obj_putc(ev, "error");
    if (e->type != SL_V_OBJECT) {
        sl_value_set_object(e);
    }
    sl_value_set_cstr(sl_obj_putc(e, "message"), msg);
}

static void rename_fields(struct proc *p, struct sl_value *ev)
{
    for (size_t i = 0; i < p->nrefs; i++) {
        int rc = move_field(&p->refs[i], &p->to[i], ev);
        if (rc == 0 || (rc == SL_ENOENT && p->ignore_missing)) {
            continue;
        }
        count_error(p);
        if (!p->fail_on_error) {
            continue;
        }
        /* Filebeat hands on the event as it came: undo the renames made so far. */
        for (size_t j = i; j-- > 0;) {
            move_field(&p->to[j], &p->refs[j], ev);
        }
        char msg[600];
        snprintf(msg, sizeof(msg), "Failed to rename fields in processor: %s '%s'",
                 rc == SL_ENOENT ? "could not fetch value for key" : "target field already exists",
                 rc == SL_ENOENT ? p->refs[i].text : p->to[i].text);
        set_error(ev, msg);
        return;
    }
}

/* ---- decode_json_fields ------------------------------------------------------- */

static bool decode_text(const struct sl_value *s, struct sl_value *out)
{
    char err[96];
    return sl_json_parse(s->u.s.ptr, s->u.s.len, out, NULL, err, sizeof(err)) == 0;
}

/* max_depth > 1: strings inside the decoded value that are JSON objects (or arrays,
 * with process_array) are decoded too, depth levels deep. */
static void decode_nested(struct proc *p, struct sl_value *v, int64_t depth)
{
    if (depth <= 0) {
        return;
    }
    size_t n = v->type == SL_V_OBJECT ? v->u.o.len : v->type == SL_V_ARRAY ? v->u.a.len : 0;
    for (size_t i = 0; i < n; i++) {
        struct sl_value *c = v->type == SL_V_OBJECT ? &v->u.o.items[i].v : &v->u.a.items[i];
        if (c->type == SL_V_STRING) {
            struct sl_value d = {0};
            if (decode_text(c, &d) &&
                (d.type == SL_V_OBJECT || (p->process_array && d.type == SL_V_ARRAY))) {
                sl_value_move(c, &d);
            }
            sl_value_clear(&d);
        }
        decode_nested(p, c, depth - 1);
    }
}

static void decode_one(struct proc *p, const struct sl_fieldref *ref, struct sl_value *ev)
{
    struct sl_value *src = sl_fieldref_get(ref, ev);
    if (!src || src->type != SL_V_STRING) {
        return;
    }
    struct sl_value d = {0};
    if (!decode_text(src, &d) ||
        !(d.type == SL_V_OBJECT || (p->process_array && d.type == SL_V_ARRAY))) {
        if (d.type == SL_V_NULL || d.type == SL_V_OBJECT || d.type == SL_V_ARRAY) {
            count_error(p);
            if (p->add_error_key) {
                set_error(ev, "parsing input as JSON failed");
                sl_value_set_cstr(sl_obj_putc(sl_obj_putc(ev, "error"), "type"), "json");
            }
        }
        sl_value_clear(&d);
        return;
    }
    decode_nested(p, &d, p->max_depth - 1);
    if (!p->has_target) {
        sl_value_move(src, &d);
    } else if (!p->root_target) {
        sl_value_move(sl_fieldref_put(&p->target, ev), &d);
    } else if (d.type == SL_V_OBJECT) {
        for (size_t i = 0; i < d.u.o.len; i++) {
            struct sl_member *m = &d.u.o.items[i];
            if (p->overwrite_keys || !sl_obj_get(ev, m->key, m->klen)) {
                sl_value_move(sl_obj_put(ev, m->key, m->klen), &m->v);
            }
        }
    }
    sl_value_clear(&d);
}

static void decode_json(struct proc *p, struct sl_value *ev)
{
    for (size_t i = 0; i < p->nrefs; i++) {
        decode_one(p, &p->refs[i], ev);
    }
}

/* ---- add_host_metadata --------------------------------------------------------- */

/* KEY="value" of /etc/os-release, unquoted, into out. */
static bool os_release(const char *text, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncmp(l, key, klen) == 0 && l[klen] == '=') {
            const char *v = l + klen + 1;
            size_t n = strcspn(v, "\n");
            if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
                v++;
                n -= 2;
            }
            snprintf(out, outlen, "%.*s", (int)n, v);
            return true;
        }
    }
    return false;
}

static size_t read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        buf[0] = '\0';
        return 0;
    }
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

static void put_str(struct sl_value *obj, const char *key, const char *s)
{
    if (s && *s) {
        sl_value_set_cstr(sl_obj_putc(obj, key), s);
    }
}

static void host_netinfo(struct sl_value *host)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0) {
        return;
    }
    struct sl_value *ip = sl_obj_putc(host, "ip");
    struct sl_value *mac = sl_obj_putc(host, "mac");
    sl_value_set_array(ip);
    sl_value_set_array(mac);
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK)) {
            continue;
        }
        char s[INET6_ADDRSTRLEN];
        int fam = i->ifa_addr->sa_family;
        if (fam == AF_INET || fam == AF_INET6) {
            const void *a = fam == AF_INET
                                ? (const void *)&((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr
                                : (const void *)&((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr;
            if (inet_ntop(fam, a, s, sizeof(s))) {
                sl_value_set_cstr(sl_arr_push(ip), s);
            }
        } else if (fam == AF_PACKET) {
            const struct sockaddr_ll *ll = (const struct sockaddr_ll *)(void *)i->ifa_addr;
            if (ll->sll_halen == 6) {
                /* ECS writes MACs upper case, dash-separated. */
                snprintf(s, sizeof(s), "%02X-%02X-%02X-%02X-%02X-%02X", ll->sll_addr[0],
                         ll->sll_addr[1], ll->sll_addr[2], ll->sll_addr[3], ll->sll_addr[4],
                         ll->sll_addr[5]);
                sl_value_set_cstr(sl_arr_push(mac), s);
            }
        }
    }
    freeifaddrs(ifs);
}

/* The host's facts, read once per cache.ttl (never per event). */
static void host_refresh(struct proc *p)
{
    struct sl_arena *scope = sl_value_set_arena(NULL);  /* the cache lives on the heap */
    struct sl_value *h = &p->value;
    sl_value_set_object(h);
    char name[256] = "", text[4096], v[256];
    if (gethostname(name, sizeof(name)) == 0) {
        name[sizeof(name) - 1] = '\0';
        put_str(h, "name", name);
        put_str(h, "hostname", name);
    }
    struct utsname u;
    if (uname(&u) == 0) {
        put_str(h, "architecture", u.machine);
    }
    if (read_small("/etc/machine-id", text, sizeof(text)) > 0) {
        text[strcspn(text, "\n")] = '\0';
        put_str(h, "id", text);
    }
    struct sl_value *os = sl_obj_putc(h, "os");
    sl_value_set_object(os);
    put_str(os, "type", "linux");
    read_small("/etc/os-release", text, sizeof(text));
    if (os_release(text, "ID", v, sizeof(v))) {
        put_str(os, "platform", v);
    }
    if (os_release(text, "ID_LIKE", v, sizeof(v)) || os_release(text, "ID", v, sizeof(v))) {
        put_str(os, "family", v);
    }
    if (os_release(text, "NAME", v, sizeof(v))) {
        put_str(os, "name", v);
    }
    if (os_release(text, "VERSION", v, sizeof(v))) {
        put_str(os, "version", v);
    }
    if (os_release(text, "VERSION_CODENAME", v, sizeof(v))) {
        put_str(os, "codename", v);
    }
    if (uname(&u) == 0) {
        put_str(os, "kernel", u.release);
    }
    sl_value_set_bool(sl_obj_putc(h, "containerized"), access("/.dockerenv", F_OK) == 0 ||
                                                           access("/run/.containerenv", F_OK) == 0);
    if (p->netinfo) {
        host_netinfo(h);
    }
    p->expires = sl_now_ms() + p->ttl_ms;
    host_generation++;
    sl_value_set_arena(scope);
}

static void add_host(struct proc *p, struct sl_value *ev)
{
    if (sl_now_ms() >= p->expires) {
        host_refresh(p);
    }
    struct sl_value *host = sl_obj_putc(ev, "host");
    if (host->type != SL_V_OBJECT) {
        sl_value_set_object(host);
    }
    if (p->replace) {
        /* The event's host.name (the shipper's `name`) wins over the OS hostname. */
        struct sl_value name = {0};
        struct sl_value *old = sl_obj_getc(host, "name");
        if (old) {
            sl_value_move(&name, old);
        }
        sl_value_copy(host, &p->value);
        if (name.type == SL_V_STRING) {
            sl_value_move(sl_obj_putc(host, "name"), &name);
        }
        sl_value_clear(&name);
        return;
    }
    for (size_t i = 0; i < p->value.u.o.len; i++) {
        const struct sl_member *m = &p->value.u.o.items[i];
        if (!sl_obj_get(host, m->key, m->klen)) {
            sl_value_copy(sl_obj_put(host, m->key, m->klen), &m->v);
        }
    }
}

/* ---- add_kubernetes_metadata (from the log path) ----------------------------------- */

static void add_k8s(struct proc *p, struct sl_value *ev)
{
    const struct sl_value *path = sl_fieldref_get(&p->target, ev);  /* log.file.path */
    if (!path || path->type != SL_V_STRING) {
        return;
    }
    bool match = p->nprefixes == 0;
    for (size_t i = 0; i < p->nprefixes && !match; i++) {
        match = strncmp(path->u.s.ptr, p->prefixes[i], strlen(p->prefixes[i])) == 0;
    }
    struct k8s_meta m;
    if (!match || !k8s_from_path(path->u.s.ptr, &m)) {
        return;
    }
    struct sl_value *k = sl_obj_putc(ev, "kubernetes");
    if (k->type != SL_V_OBJECT) {
        sl_value_set_object(k);
    }
    struct sl_value *pod = sl_obj_putc(k, "pod");
    if (pod->type != SL_V_OBJECT) {
        sl_value_set_object(pod);
    }
    put_str(pod, "name", m.pod);
    put_str(pod, "uid", m.uid);
    put_str(k, "namespace", m.ns);
    struct sl_value *kc = sl_obj_putc(k, "container");
    if (kc->type != SL_V_OBJECT) {
        sl_value_set_object(kc);
    }
    put_str(kc, "name", m.container);
    if (m.id[0]) {
        struct sl_value *c = sl_obj_putc(ev, "container");
        if (c->type != SL_V_OBJECT) {
            sl_value_set_object(c);
        }
        put_str(c, "id", m.id);
    }
    if (p->kube) {
        kubeapi_enrich(p->kube, m.ns, m.pod, ev);
    }
}

/* ---- the chain ------------------------------------------------------------------- */

bool proc_chain_run(struct proc_chain *c, struct sl_value *ev)
{
    for (size_t i = 0; c && i < c->n; i++) {
        struct proc *p = &c->p[i];
        if (p->when && !when_eval(p->when, ev)) {
            continue;
        }
        switch (p->kind) {
        case P_ADD_FIELDS: add_fields(p, ev); break;
        case P_DROP_FIELDS: drop_fields(p, ev); break;
        case P_INCLUDE_FIELDS: include_fields(p, ev); break;
        case P_RENAME: rename_fields(p, ev); break;
        case P_DROP_EVENT: return false;
        case P_DECODE_JSON: decode_json(p, ev); break;
        case P_HOST: add_host(p, ev); break;
        case P_K8S: add_k8s(p, ev); break;
        case P_NKINDS: break;
        }
    }
    return true;
}

bool proc_run_one(struct proc_chain *c, size_t i, struct sl_value *ev)
{
    struct proc_chain one = {.p = &c->p[i], .n = 1};
    return proc_chain_run(&one, ev);
}

size_t proc_chain_len(const struct proc_chain *c)
{
    return c ? c->n : 0;
}

bool proc_is_drop(const struct proc_chain *c, size_t i, const struct when **when)
{
    *when = c->p[i].when;
    return c->p[i].kind == P_DROP_EVENT;
}

uint64_t proc_refresh(struct proc_chain *c)
{
    /* Called per event: the clock is read once every REFRESH_EVERY calls (a TTL of
     * minutes does not need better, and clock reads showed in profiles). */
    enum { REFRESH_EVERY = 4096 };
    uint64_t gen = host_generation;
    for (size_t i = 0; c && i < c->n; i++) {
        if (c->p[i].kube) {
            gen += kubeapi_generation(c->p[i].kube);  /* an atomic load: every time */
        }
    }
    if (!c || c->calls++ % REFRESH_EVERY != 0) {
        return gen;
    }
    uint64_t now = 0;
    for (size_t i = 0; c && i < c->n; i++) {
        if (c->p[i].kind == P_HOST) {
            now = now ? now : sl_now_ms();
            if (now >= c->p[i].expires) {
                host_refresh(&c->p[i]);
                gen++;
            }
        }
    }
    return gen;
}

/* Does reference r name, hold or lie inside one of names[0..n)? */
static bool ref_overlaps(const struct sl_fieldref *r, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (when_ref_overlaps(r, names[i])) {
            return true;
        }
    }
    return false;
}

bool proc_chain_static(struct proc_chain *const *chains, size_t n)
{
    /* Where the per-event values are: their own fields, and wherever a rename
     * moved them (or what holds them) to, in this chain or an earlier one. */
    enum { MAX_DYNAMIC = 64 };
    const char *dynamic[MAX_DYNAMIC + 1] = {"@timestamp", "message", "log.offset"};
    size_t nd = 3;
    for (size_t k = 0; k < n; k++) {
        const struct proc_chain *c = chains[k];
        for (size_t i = 0; c && i < c->n; i++) {
            const struct proc *p = &c->p[i];
            dynamic[nd] = NULL;
            if (p->kind == P_DECODE_JSON ||
                (p->kind != P_DROP_EVENT && p->when && when_reads(p->when, dynamic))) {
                return false;
            }
            for (size_t r = 0; p->kind == P_RENAME && r < p->nrefs; r++) {
                if (ref_overlaps(&p->refs[r], dynamic, nd)) {
                    if (nd == MAX_DYNAMIC) {
                        return false;
                    }
                    dynamic[nd++] = p->to[r].text;
                }
            }
        }
    }
    return true;
}

void proc_chain_start(struct proc_chain *c, struct sl_metrics *metrics)
{
    for (size_t i = 0; c && i < c->n; i++) {
        if (c->p[i].kube) {
            kubeapi_start(c->p[i].kube);
        }
        const char *lbl[] = {"processor", NAMES[c->p[i].kind], NULL};
        c->p[i].m_err = sl_metrics_counter(metrics, "sluice_shipper_processor_errors_total",
                                           "Events a processor could not fully process "
                                           "(missing fields, bad JSON), by processor.", lbl);
    }
}

static void proc_free(struct proc *p)
{
    when_free(p->when);
    for (size_t i = 0; i < p->nrefs; i++) {
        sl_fieldref_free(&p->refs[i]);
        if (p->to) {
            sl_fieldref_free(&p->to[i]);
        }
    }
    free(p->refs);
    free(p->to);
    sl_value_clear(&p->value);
    sl_fieldref_free(&p->target);
    sl_cfg_strv_free(p->prefixes);
    kubeapi_free(p->kube);
}

void proc_chain_free(struct proc_chain *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        proc_free(&c->p[i]);
    }
    free(c->p);
    free(c);
}

/* ---- parsing ---------------------------------------------------------------------- */

static int ref_or_error(struct sl_cfg *cfg, const struct sl_cfg_node *at, const char *where,
                        const char *name, struct sl_fieldref *r)
{
    if (sl_fieldref_init(r, name) != 0) {
        sl_cfg_error(cfg, at, "%s: invalid field name '%s'", where, name);
        return SL_EINVAL;
    }
    return 0;
}

/* fields: a required list of field names. */
static int parse_refs(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                      struct proc *p)
{
    char **names = NULL;
    size_t n = 0;
    int rc = sl_cfg_strlist(cfg, m, where, "fields", &names, &n);
    if (rc == 0 && n == 0) {
        sl_cfg_error(cfg, m, "%s: option 'fields' is required", where);
        rc = SL_EINVAL;
    }
    p->refs = sl_calloc(n ? n : 1, sizeof(*p->refs));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc |= ref_or_error(cfg, sl_cfg_get(m, "fields"), where, names[i], &p->refs[i]);
        p->nrefs++;
    }
    sl_cfg_strv_free(names);
    return rc;
}

/* target: absent (has_target false), "" (the root) or a field. */
static int parse_target(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                        const char *def, struct proc *p)
{
    char *t = NULL;
    int rc = sl_cfg_str(cfg, m, where, "target", def, &t);
    struct sl_cfg_node *n = sl_cfg_get(m, "target");
    if (n && n->type == SL_CFG_SCALAR && !n->quoted && n->scalar[0] == '\0') {
        free(t);
        t = sl_strdup("");  /* `target:` with nothing: the root, as Filebeat reads it */
    }
    if (rc == 0 && t) {
        p->has_target = true;
        p->root_target = t[0] == '\0';
        if (!p->root_target) {
            rc = ref_or_error(cfg, n ? n : m, where, t, &p->target);
        }
    }
    free(t);
    return rc;
}

static int parse_rename(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                        struct proc *p)
{
    struct sl_cfg_node *f = sl_cfg_get(m, "fields");
    int rc = 0;
    rc |= sl_cfg_bool(cfg, m, where, "ignore_missing", false, &p->ignore_missing);
    rc |= sl_cfg_bool(cfg, m, where, "fail_on_error", true, &p->fail_on_error);
    if (!f || f->type != SL_CFG_SEQ || f->n == 0) {
        sl_cfg_error(cfg, f ? f : m, "%s: option 'fields' must be a list of {from, to}", where);
        return SL_EINVAL;
    }
    p->refs = sl_calloc(f->n, sizeof(*p->refs));
    p->to = sl_calloc(f->n, sizeof(*p->to));
    for (size_t i = 0; i < f->n; i++) {
        char w[224], *from = NULL, *to = NULL;
        snprintf(w, sizeof(w), "%s.fields[%zu]", where, i);
        struct sl_cfg_node *item = f->items[i];
        if (!sl_cfg_is_map(cfg, item, w) || !item) {
            rc = SL_EINVAL;
            continue;
        }
        rc |= sl_cfg_str(cfg, item, w, "from", NULL, &from);
        rc |= sl_cfg_str(cfg, item, w, "to", NULL, &to);
        sl_cfg_check_unknown(cfg, item, w);
        if (!from || !to) {
            sl_cfg_error(cfg, item, "%s: needs both 'from' and 'to'", w);
            rc = SL_EINVAL;
        } else {
            rc |= ref_or_error(cfg, item, w, from, &p->refs[p->nrefs]);
            rc |= ref_or_error(cfg, item, w, to, &p->to[p->nrefs]);
            p->nrefs++;
        }
        free(from);
        free(to);
    }
    return rc;
}

/* An option written as a map (netinfo: {enabled: x}) or dotted (netinfo.enabled: x). */
static int nested_bool(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                       const char *outer, const char *inner, bool def, bool *out)
{
    char dotted[64];
    snprintf(dotted, sizeof(dotted), "%s.%s", outer, inner);
    struct sl_cfg_node *o = sl_cfg_get(m, outer);
    if (o && o->type == SL_CFG_MAP) {
        int rc = sl_cfg_bool(cfg, o, where, inner, def, out);
        sl_cfg_check_unknown(cfg, o, where);
        return rc;
    }
    return sl_cfg_bool(cfg, m, where, dotted, def, out);
}

static int nested_duration(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                           const char *outer, const char *inner, uint64_t def, uint64_t *out)
{
    char dotted[64];
    snprintf(dotted, sizeof(dotted), "%s.%s", outer, inner);
    struct sl_cfg_node *o = sl_cfg_get(m, outer);
    if (o && o->type == SL_CFG_MAP) {
        int rc = sl_cfg_duration(cfg, o, where, inner, def, 1000, 86400000, out);
        sl_cfg_check_unknown(cfg, o, where);
        return rc;
    }
    return sl_cfg_duration(cfg, m, where, dotted, def, 1000, 86400000, out);
}

/*
 * The API server part, off unless in_cluster (Filebeat's option; its default is
 * on, ours off: no shipper talks to an API server unasked). The address and the
 * credentials are those of a pod's service account, overridable.
 */
static int parse_kube_api(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                          struct proc *p)
{
    bool in_cluster = false;
    int rc = sl_cfg_bool(cfg, m, where, "in_cluster", false, &in_cluster);
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    char def[300] = "";
    if (host && *host) {
        snprintf(def, sizeof(def), strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
                 port && *port ? port : "443");
    }
    static const char *const SA = "/var/run/secrets/kubernetes.io/serviceaccount/";
    char tok[128], ca[128];
    snprintf(tok, sizeof(tok), "%stoken", SA);
    snprintf(ca, sizeof(ca), "%sca.crt", SA);
    struct kubeapi_conf kc = {0};
    rc |= sl_cfg_str(cfg, m, where, "api_url", def, &kc.url);
    rc |= sl_cfg_str(cfg, m, where, "token_file", tok, &kc.token_file);
    rc |= sl_cfg_str(cfg, m, where, "ca_file", ca, &kc.ca_file);
    rc |= sl_cfg_str(cfg, m, where, "node", "", &kc.node);
    rc |= sl_cfg_duration(cfg, m, where, "cleanup_timeout", 60000, 0, 86400000, &kc.cleanup_ms);
    if (rc == 0 && in_cluster && !kc.url[0]) {
        sl_cfg_error(cfg, sl_cfg_get(m, "in_cluster"), "%s: in_cluster needs the API server: "
                     "KUBERNETES_SERVICE_HOST is not set and 'api_url' is not given", where);
        rc = SL_EINVAL;
    }
    for (const char *c = kc.node; c && *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.')) {
            sl_cfg_error(cfg, sl_cfg_get(m, "node"), "%s: option 'node' is not a node name",
                         where);
            rc = SL_EINVAL;
            break;
        }
    }
    if (rc == 0 && in_cluster) {
        p->kube = kubeapi_new(&kc);
    }
    free(kc.url);
    free(kc.token_file);
    free(kc.ca_file);
    free(kc.node);
    return rc;
}

static int parse_k8s(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                     struct proc *p)
{
    int api = parse_kube_api(cfg, m, where, p);
    struct sl_cfg_node *ms = sl_cfg_get(m, "matchers");
    if (!ms) {
        return api;
    }
    if (ms->type != SL_CFG_SEQ) {
        sl_cfg_error(cfg, ms, "%s: option 'matchers' must be a list", where);
        return SL_EINVAL;
    }
    int rc = 0;
    p->prefixes = sl_calloc(ms->n + 1, sizeof(*p->prefixes));
    for (size_t i = 0; i < ms->n; i++) {
        char w[224];
        snprintf(w, sizeof(w), "%s.matchers[%zu]", where, i);
        struct sl_cfg_node *lp = ms->items[i] && ms->items[i]->type == SL_CFG_MAP
                                     ? sl_cfg_get(ms->items[i], "logs_path") : NULL;
        if (!lp || !sl_cfg_is_map(cfg, lp, w)) {
            sl_cfg_error(cfg, ms->items[i], "%s: only the logs_path matcher exists here", w);
            rc = SL_EINVAL;
            continue;
        }
        static const char *const types[] = {"container", "pod", NULL};
        int type = 0;
        char *prefix = NULL;
        rc |= sl_cfg_str(cfg, lp, w, "logs_path", "/var/log/containers/", &prefix);
        rc |= sl_cfg_enum(cfg, lp, w, "resource_type", types, 0, &type);
        sl_cfg_check_unknown(cfg, lp, w);
        sl_cfg_check_unknown(cfg, ms->items[i], w);
        p->prefixes[p->nprefixes++] = prefix;
    }
    return rc | api;
}

static int parse_proc(struct sl_cfg *cfg, struct sl_cfg_node *item, const char *where,
                      struct proc *p)
{
    if (!item || item->type != SL_CFG_MAP || item->n != 1) {
        sl_cfg_error(cfg, item, "%s: a processor is a map with one key, its name", where);
        return SL_EINVAL;
    }
    item->used[0] = true;
    size_t k = 0;
    while (NAMES[k] && strcmp(NAMES[k], item->keys[0]) != 0) {
        k++;
    }
    if (!NAMES[k]) {
        const char *s = sl_cfg_suggest(item->keys[0], NAMES);
        sl_cfg_error(cfg, item->key_nodes[0], "%s: unknown processor '%s'%s%s%s", where,
                     item->keys[0], s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
        return SL_EINVAL;
    }
    p->kind = (enum proc_kind)k;
    char w[192];
    snprintf(w, sizeof(w), "%s.%s", where, NAMES[k]);
    struct sl_cfg_node *m = item->items[0];
    if (sl_cfg_is_null(m)) {
        m = NULL;
    } else if (!sl_cfg_is_map(cfg, m, w)) {
        return SL_EINVAL;
    }
    int rc = 0;
    struct sl_cfg_node *when = m ? sl_cfg_get(m, "when") : NULL;
    if (when) {
        char ww[224];
        snprintf(ww, sizeof(ww), "%s.when", w);
        rc |= when_parse(cfg, when, ww, &p->when);
    }
    switch (p->kind) {
    case P_ADD_FIELDS: {
        struct sl_cfg_node *f = m ? sl_cfg_get(m, "fields") : NULL;
        if (!f || f->type != SL_CFG_MAP) {
            sl_cfg_error(cfg, f ? f : item, "%s: option 'fields' must be a map", w);
            rc = SL_EINVAL;
        } else {
            when_node_value(f, &p->value);
        }
        rc |= parse_target(cfg, m, w, "fields", p);
        break;
    }
    case P_DROP_FIELDS:
        rc |= sl_cfg_bool(cfg, m, w, "ignore_missing", false, &p->ignore_missing);
        rc |= parse_refs(cfg, m, w, p);
        break;
    case P_INCLUDE_FIELDS: rc |= parse_refs(cfg, m, w, p); break;
    case P_RENAME: rc |= m ? parse_rename(cfg, m, w, p) : SL_EINVAL; break;
    case P_DROP_EVENT: break;
    case P_DECODE_JSON:
        rc |= parse_refs(cfg, m, w, p);
        rc |= sl_cfg_bool(cfg, m, w, "process_array", false, &p->process_array);
        rc |= sl_cfg_int(cfg, m, w, "max_depth", 1, 1, 64, &p->max_depth);
        rc |= sl_cfg_bool(cfg, m, w, "overwrite_keys", false, &p->overwrite_keys);
        rc |= sl_cfg_bool(cfg, m, w, "add_error_key", false, &p->add_error_key);
        rc |= parse_target(cfg, m, w, NULL, p);
        break;
    case P_HOST:
        rc |= nested_bool(cfg, m, w, "netinfo", "enabled", true, &p->netinfo);
        rc |= nested_duration(cfg, m, w, "cache", "ttl", 300000, &p->ttl_ms);
        rc |= sl_cfg_bool(cfg, m, w, "replace_fields", true, &p->replace);
        host_refresh(p);
        break;
    case P_K8S:
        sl_fieldref_init(&p->target, "log.file.path");
        rc |= parse_k8s(cfg, m, w, p);
        break;
    case P_NKINDS: break;
    }
    if (m) {
        sl_cfg_check_unknown(cfg, m, w);
    }
    return rc ? SL_EINVAL : 0;
}

int proc_chain_parse(struct sl_cfg *cfg, struct sl_cfg_node *n, const char *where,
                     struct proc_chain **out)
{
    *out = NULL;
    if (sl_cfg_is_null(n)) {
        return 0;
    }
    char w[96];
    snprintf(w, sizeof(w), "%s%sprocessors", where, *where ? "." : "");
    if (n->type != SL_CFG_SEQ) {
        sl_cfg_error(cfg, n, "%s: must be a list", w);
        return SL_EINVAL;
    }
    if (n->n == 0) {
        return 0;
    }
    struct proc_chain *c = sl_calloc(1, sizeof(*c));
    c->p = sl_calloc(n->n, sizeof(*c->p));
    int rc = 0;
    for (size_t i = 0; i < n->n; i++) {
        char wi[128];
        snprintf(wi, sizeof(wi), "%s[%zu]", w, i);
        rc |= parse_proc(cfg, n->items[i], wi, &c->p[c->n++]);
    }
    if (rc != 0) {
        proc_chain_free(c);
        return SL_EINVAL;
    }
    *out = c;
    return 0;
}
