/*
 * kubeapi.c - list + watch of pods with libcurl on a thread of its own.
 *
 * GET /api/v1/pods[?fieldSelector=spec.nodeName=N] fills the cache and gives a
 * resourceVersion; GET ...&watch=1&resourceVersion=RV then streams one JSON
 * event per line (ADDED, MODIFIED, DELETED). When the watch ends or fails the
 * thread lists again, after a backoff when it failed. Every line is bounded.
 */
#include "kubeapi.h"

/* Calls go through lc_* (below): the type-checking macros would wrap the names. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/backoff.h"
#include "sluice/buf.h"
#include "sluice/dl.h"
#include "sluice/json.h"
#include "sluice/log.h"

/*
 * libcurl, loaded when the watcher starts (sluice/dl.h): a shipper without
 * Kubernetes enrichment never maps it and its dependency tree.
 */
static const char *const curl_syms[] = {
    "curl_global_init",  "curl_easy_init",     "curl_easy_setopt",
    "curl_easy_perform", "curl_easy_getinfo",  "curl_easy_cleanup",
    "curl_easy_strerror", "curl_slist_append", "curl_slist_free_all"};
static void *curl_fn[SL_ARRAY_LEN(curl_syms)];
#define lc_global_init ((CURLcode (*)(long))curl_fn[0])
#define lc_easy_init ((CURL *(*)(void))curl_fn[1])
#define lc_easy_setopt ((CURLcode (*)(CURL *, CURLoption, ...))curl_fn[2])
#define lc_easy_perform ((CURLcode (*)(CURL *))curl_fn[3])
#define lc_easy_getinfo ((CURLcode (*)(CURL *, CURLINFO, ...))curl_fn[4])
#define lc_easy_cleanup ((void (*)(CURL *))curl_fn[5])
#define lc_easy_strerror ((const char *(*)(CURLcode))curl_fn[6])
#define lc_slist_append \
    ((struct curl_slist *(*)(struct curl_slist *, const char *))curl_fn[7])
#define lc_slist_free_all ((void (*)(struct curl_slist *))curl_fn[8])

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static char curl_err[256];
static int curl_rc;

static void curl_load(void)
{
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", NULL};
    curl_rc = sl_dl_load(names, curl_syms, curl_fn, SL_ARRAY_LEN(curl_syms), curl_err,
                         sizeof(curl_err));
    if (curl_rc == 0 && lc_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(curl_err, sizeof(curl_err), "curl_global_init failed");
        curl_rc = SL_EIO;
    }
}

#define LIST_MAX (256u << 20)   /* a list answer */
#define LINE_MAX_BYTES (8u << 20)  /* one watch event */
#define NBUCKETS 1024u

struct pod {
    char *key;                  /* namespace/name */
    struct sl_value meta;       /* {"labels":{...},"node":"..","uid":".."} (heap) */
    uint64_t deleted_ms;        /* 0: alive */
    struct pod *next;
};

struct kubeapi {
    struct kubeapi_conf c;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_uint_fast64_t gen;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* wakes the thread's backoff sleep on stop */
    struct pod *pods[NBUCKETS];
    /* the thread's own */
    struct sl_buf body;
    char rv[64];
};

static size_t bucket(const char *key)
{
    return (size_t)(sl_hash_bytes(key, strlen(key)) % NBUCKETS);
}

static struct pod **find(struct kubeapi *k, const char *key)
{
    struct pod **pp = &k->pods[bucket(key)];
    while (*pp && strcmp((*pp)->key, key) != 0) {
        pp = &(*pp)->next;
    }
    return pp;
}

/* Labels as Filebeat writes them with labels.dedot: '.' in a key becomes '_'. */
static void dedot_labels(const struct sl_value *labels, struct sl_value *out)
{
    sl_value_set_object(out);
    for (size_t i = 0; labels && labels->type == SL_V_OBJECT && i < labels->u.o.len; i++) {
        const struct sl_member *m = &labels->u.o.items[i];
        char *key = sl_strndup(m->key, m->klen);
        for (char *p = key; *p; p++) {
            if (*p == '.') {
                *p = '_';
            }
        }
        sl_value_copy(sl_obj_put(out, key, m->klen), &m->v);
        free(key);
    }
}

/* Records pod (a Pod object), or marks it deleted. */
static void apply_pod(struct kubeapi *k, const struct sl_value *pod, bool deleted)
{
    const struct sl_value *md = sl_obj_getc(pod, "metadata");
    const struct sl_value *ns = sl_obj_getc(md, "namespace");
    const struct sl_value *name = sl_obj_getc(md, "name");
    if (!ns || ns->type != SL_V_STRING || !name || name->type != SL_V_STRING ||
        ns->u.s.len + name->u.s.len > 600) {
        return;
    }
    char key[640];
    snprintf(key, sizeof(key), "%s/%s", ns->u.s.ptr, name->u.s.ptr);
    struct sl_value meta = {0};
    sl_value_set_object(&meta);
    dedot_labels(sl_obj_getc(md, "labels"), sl_obj_putc(&meta, "labels"));
    const struct sl_value *uid = sl_obj_getc(md, "uid");
    if (uid && uid->type == SL_V_STRING) {
        sl_value_copy(sl_obj_putc(&meta, "uid"), uid);
    }
    const struct sl_value *node = sl_obj_getc(sl_obj_getc(pod, "spec"), "nodeName");
    if (node && node->type == SL_V_STRING) {
        sl_value_copy(sl_obj_putc(&meta, "node"), node);
    }
    pthread_mutex_lock(&k->mu);
    struct pod **pp = find(k, key);
    if (!*pp) {
        *pp = sl_calloc(1, sizeof(**pp));
        (*pp)->key = sl_strdup(key);
    }
    sl_value_move(&(*pp)->meta, &meta);
    (*pp)->deleted_ms = deleted ? sl_now_ms() : 0;
    pthread_mutex_unlock(&k->mu);
    atomic_fetch_add(&k->gen, 1);
}

/* Forgets pods deleted longer than cleanup ago. */
static void cleanup(struct kubeapi *k)
{
    uint64_t now = sl_now_ms();
    bool changed = false;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (struct pod **pp = &k->pods[i]; *pp;) {
            struct pod *p = *pp;
            if (p->deleted_ms && now - p->deleted_ms >= k->c.cleanup_ms) {
                *pp = p->next;
                free(p->key);
                sl_value_clear(&p->meta);
                free(p);
                changed = true;
            } else {
                pp = &p->next;
            }
        }
    }
    pthread_mutex_unlock(&k->mu);
    if (changed) {
        atomic_fetch_add(&k->gen, 1);
    }
}

/* One line of a watch: {"type":"ADDED","object":{...}}. */
static void watch_line(struct kubeapi *k, const char *p, size_t n)
{
    struct sl_value ev = {0};
    char err[96];
    if (sl_json_parse(p, n, &ev, NULL, err, sizeof(err)) == 0) {
        const struct sl_value *type = sl_obj_getc(&ev, "type");
        const struct sl_value *obj = sl_obj_getc(&ev, "object");
        const struct sl_value *rv = sl_obj_getc(sl_obj_getc(obj, "metadata"), "resourceVersion");
        if (type && type->type == SL_V_STRING && obj) {
            if (strcmp(type->u.s.ptr, "ADDED") == 0 || strcmp(type->u.s.ptr, "MODIFIED") == 0) {
                apply_pod(k, obj, false);
            } else if (strcmp(type->u.s.ptr, "DELETED") == 0) {
                apply_pod(k, obj, true);
            }
            if (rv && rv->type == SL_V_STRING && rv->u.s.len < sizeof(k->rv)) {
                memcpy(k->rv, rv->u.s.ptr, rv->u.s.len + 1);
            }
        }
    }
    sl_value_clear(&ev);
}

struct xfer {
    struct kubeapi *k;
    bool watch;
    bool too_long;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    struct kubeapi *k = x->k;
    size_t n = size * nmemb;
    if (sl_buf_append(&k->body, data, n) != 0) {
        x->too_long = true;
        return 0;  /* aborts the transfer */
    }
    if (!x->watch) {
        return n;
    }
    char *nl;
    while ((nl = memchr(k->body.data, '\n', k->body.len)) != NULL) {
        size_t len = (size_t)(nl - k->body.data);
        watch_line(k, k->body.data, len);
        sl_buf_consume(&k->body, len + 1);
    }
    return n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct xfer *x = arg;
    return atomic_load(&x->k->stop) ? 1 : 0;
}

static char *read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) {
        n--;
    }
    buf[n] = '\0';
    return sl_strdup(buf);
}

/* One GET; 0 when it answered 200 and its body was taken in. */
static int get(struct kubeapi *k, bool watch)
{
    char url[2048];
    const char *node = k->c.node;
    int len = snprintf(url, sizeof(url), "%s/api/v1/pods?%s%s%s%s%s", k->c.url,
                       node[0] ? "fieldSelector=spec.nodeName%3D" : "", node,
                       node[0] ? "&" : "", watch ? "watch=1&resourceVersion=" : "",
                       watch ? k->rv : "");
    if (len < 0 || (size_t)len >= sizeof(url)) {
        return SL_EINVAL;
    }
    CURL *c = lc_easy_init();
    if (!c) {
        return SL_EINVAL;
    }
    struct xfer x = {.k = k, .watch = watch};
    struct curl_slist *hdr = NULL;
    char *token = read_token(k->c.token_file);
    char auth[8300];
    if (token && token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdr = lc_slist_append(hdr, auth);
    }
    free(token);
    sl_buf_free(&k->body);
    sl_buf_init(&k->body, watch ? LINE_MAX_BYTES : LIST_MAX);
    lc_easy_setopt(c, CURLOPT_URL, url);
    lc_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    lc_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    lc_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    lc_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    lc_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    lc_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    lc_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    lc_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    /* A watch is long: the API server ends it after minutes; a silent one is dead. */
    lc_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    lc_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, watch ? 600L : 60L);
    if (k->c.ca_file[0]) {
        lc_easy_setopt(c, CURLOPT_CAINFO, k->c.ca_file);
    }
    CURLcode rc = lc_easy_perform(c);
    long status = 0;
    lc_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    lc_slist_free_all(hdr);
    lc_easy_cleanup(c);
    if (atomic_load(&k->stop)) {
        return SL_EINVAL;
    }
    if (rc != CURLE_OK || status != 200) {
        sl_warn("kubernetes API %s: %s (HTTP %ld)%s", watch ? "watch" : "list",
                rc != CURLE_OK ? lc_easy_strerror(rc) : "answered", status,
                x.too_long ? ": answer too long" : "");
        return SL_EINVAL;
    }
    return 0;
}

/* The list: every pod, and the resourceVersion to watch from. */
static int list(struct kubeapi *k)
{
    if (get(k, false) != 0) {
        return SL_EINVAL;
    }
    struct sl_value v = {0};
    char err[96];
    int rc = sl_json_parse(k->body.data, k->body.len, &v, NULL, err, sizeof(err));
    const struct sl_value *items = sl_obj_getc(&v, "items");
    const struct sl_value *rv = sl_obj_getc(sl_obj_getc(&v, "metadata"), "resourceVersion");
    if (rc != 0 || !items || items->type != SL_V_ARRAY) {
        sl_warn("kubernetes API list: not a pod list%s%s", rc ? ": " : "", rc ? err : "");
        sl_value_clear(&v);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < items->u.a.len; i++) {
        apply_pod(k, &items->u.a.items[i], false);
    }
    k->rv[0] = '\0';
    if (rv && rv->type == SL_V_STRING && rv->u.s.len < sizeof(k->rv)) {
        memcpy(k->rv, rv->u.s.ptr, rv->u.s.len + 1);
    }
    sl_debug("kubernetes API: %zu pods listed", items->u.a.len);
    sl_value_clear(&v);
    return 0;
}

static void nap(struct kubeapi *k, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&k->mu);
    if (!atomic_load(&k->stop)) {
        pthread_cond_timedwait(&k->cv, &k->mu, &ts);
    }
    pthread_mutex_unlock(&k->mu);
}

static void *run(void *arg)
{
    struct kubeapi *k = arg;
    struct sl_backoff bo;
    sl_backoff_init(&bo, 500, 30000, (uint32_t)(uintptr_t)k);
    while (!atomic_load(&k->stop)) {
        bool ok = list(k) == 0;
        while (ok && !atomic_load(&k->stop)) {
            sl_backoff_reset(&bo);
            cleanup(k);
            ok = get(k, true) == 0;  /* ends when the server closes the watch */
        }
        if (!atomic_load(&k->stop)) {
            nap(k, sl_backoff_next(&bo));
        }
    }
    sl_buf_free(&k->body);
    return NULL;
}

struct kubeapi *kubeapi_new(struct kubeapi_conf *c)
{
    struct kubeapi *k = sl_calloc(1, sizeof(*k));
    k->c = *c;
    memset(c, 0, sizeof(*c));
    atomic_init(&k->stop, false);
    atomic_init(&k->gen, 1);
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    return k;
}

void kubeapi_free(struct kubeapi *k)
{
    if (!k) {
        return;
    }
    if (k->started) {
        pthread_mutex_lock(&k->mu);
        atomic_store(&k->stop, true);
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->thread, NULL);
    }
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (struct pod *p = k->pods[i], *next; p; p = next) {
            next = p->next;
            free(p->key);
            sl_value_clear(&p->meta);
            free(p);
        }
    }
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k->c.url);
    free(k->c.token_file);
    free(k->c.ca_file);
    free(k->c.node);
    free(k);
}

void kubeapi_start(struct kubeapi *k)
{
    if (k->started || atomic_load(&k->stop)) {
        return;
    }
    k->started = true;
    pthread_once(&curl_once, curl_load);
    if (curl_rc != 0) {
        sl_error("kubernetes API: cannot load libcurl (%s): no pod metadata from the API server",
                 curl_err);
        k->started = false;
        atomic_store(&k->stop, true);
        return;
    }
    if (pthread_create(&k->thread, NULL, run, k) != 0) {
        sl_error("kubernetes API: cannot start the watcher thread");
        k->started = false;
        atomic_store(&k->stop, true);
    }
}

bool kubeapi_enrich(struct kubeapi *k, const char *ns, const char *name, struct sl_value *ev)
{
    kubeapi_start(k);
    char key[640];
    if (snprintf(key, sizeof(key), "%s/%s", ns, name) >= (int)sizeof(key)) {
        return false;
    }
    pthread_mutex_lock(&k->mu);
    struct pod *p = *find(k, key);
    if (p) {
        struct sl_value *kube = sl_obj_putc(ev, "kubernetes");
        if (kube->type != SL_V_OBJECT) {
            sl_value_set_object(kube);
        }
        const struct sl_value *labels = sl_obj_getc(&p->meta, "labels");
        if (labels && labels->u.o.len > 0) {
            sl_value_copy(sl_obj_putc(kube, "labels"), labels);
        }
        const struct sl_value *node = sl_obj_getc(&p->meta, "node");
        if (node) {
            struct sl_value *n = sl_obj_putc(kube, "node");
            sl_value_set_object(n);
            sl_value_copy(sl_obj_putc(n, "name"), node);
        }
        const struct sl_value *uid = sl_obj_getc(&p->meta, "uid");
        if (uid) {
            struct sl_value *pod = sl_obj_putc(kube, "pod");
            if (pod->type != SL_V_OBJECT) {
                sl_value_set_object(pod);
            }
            sl_value_copy(sl_obj_putc(pod, "uid"), uid);
        }
    }
    pthread_mutex_unlock(&k->mu);
    return p != NULL;
}

uint64_t kubeapi_generation(const struct kubeapi *k)
{
    return atomic_load(&((struct kubeapi *)k)->gen);
}
