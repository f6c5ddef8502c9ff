/*
 * metrics.c - the Prometheus registry: families (name, help, type) in creation
 * order, each holding its series keyed by label pairs, rendered as text
 * exposition format 0.0.4 with the standard process_* metrics appended.
 *
 * Creating a series and rendering take the registry mutex; updating a series
 * never does. Counters are atomic integers; gauges and histogram sums are
 * doubles kept as their bit pattern in an atomic uint64_t and updated with a
 * compare-and-swap loop. A histogram keeps one non-cumulative count per bucket
 * plus one for +Inf; rendering accumulates them, so the +Inf bucket and _count
 * always agree even while other threads observe.
 *
 * Invalid names, a type or help that differs between series of one family and
 * malformed label lists are programming errors: they abort with a message at
 * startup rather than produce a page Prometheus would reject.
 *
 * Not here: pushing, exemplars, summaries, the OpenMetrics format.
 */
#include "sluice/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct family;

struct sl_metric {
    struct family *fam;
    char **labels;             /* name, value, name, value ... (owned) */
    size_t npairs;
    _Atomic uint64_t value;    /* counter value, or gauge double bits */
    _Atomic uint64_t *buckets; /* histogram: nbounds + 1 counts, the last is +Inf */
    _Atomic uint64_t sum;      /* histogram: double bits */
    struct sl_metric *next;
};

struct family {
    char *name;
    char *help;
    enum kind kind;
    double *bounds;            /* histogram upper bounds, ascending, finite */
    size_t nbounds;
    struct sl_metric *series;  /* creation order */
    struct sl_metric **tail;
    struct family *next;
};

struct sl_metrics {
    pthread_mutex_t lock;
    struct family *families;   /* creation order */
    struct family **tail;
};

const double sl_metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    30,    60};
const size_t sl_metrics_latency_nbuckets = SL_ARRAY_LEN(sl_metrics_latency_buckets);

/* Rendered by the registry itself; a family of the same name would be a duplicate. */
static const char *const process_names[] = {
    "process_cpu_seconds_total",    "process_max_fds",
    "process_open_fds",             "process_resident_memory_bytes",
    "process_start_time_seconds",   "process_virtual_memory_bytes",
};

static _Noreturn void misuse(const char *what, const char *name)
{
    fprintf(stderr, "sluice: metrics: %s: '%s'\n", what, name ? name : "(null)");
    abort();
}

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

static void atomic_add_double(_Atomic uint64_t *p, double delta)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, dbits(bitsd(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; label names take no colon. */
static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

struct sl_metrics *sl_metrics_new(void)
{
    struct sl_metrics *reg = sl_calloc(1, sizeof(*reg));
    pthread_mutex_init(&reg->lock, NULL);
    reg->tail = &reg->families;
    return reg;
}

static void series_free(struct sl_metric *m)
{
    for (size_t i = 0; i < 2 * m->npairs; i++) {
        free(m->labels[i]);
    }
    free(m->labels);
    free(m->buckets);
    free(m);
}

void sl_metrics_free(struct sl_metrics *reg)
{
    if (!reg) {
        return;
    }
    while (reg->families) {
        struct family *f = reg->families;
        reg->families = f->next;
        while (f->series) {
            struct sl_metric *m = f->series;
            f->series = m->next;
            series_free(m);
        }
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

/* Counts the pairs of a label list and aborts on anything Prometheus would reject. */
static size_t check_labels(const char *name, enum kind kind, const char *const *labels)
{
    size_t n = 0;
    for (; labels && labels[2 * n]; n++) {
        const char *lname = labels[2 * n];
        if (!labels[2 * n + 1]) {
            misuse("label without a value in series of", name);
        }
        if (!valid_name(lname, false)) {
            misuse("invalid label name", lname);
        }
        if (strncmp(lname, "__", 2) == 0) {
            misuse("label names starting with __ are reserved", lname);
        }
        if (kind == K_HISTOGRAM && strcmp(lname, "le") == 0) {
            misuse("histograms cannot have a label named le", name);
        }
        for (size_t j = 0; j < n; j++) {
            if (strcmp(labels[2 * j], lname) == 0) {
                misuse("duplicate label name", lname);
            }
        }
    }
    return n;
}

/* Same label set, in any order (names are unique within a set). */
static bool same_labels(const struct sl_metric *m, const char *const *labels, size_t n)
{
    if (m->npairs != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < n && !found; j++) {
            found = strcmp(m->labels[2 * j], labels[2 * i]) == 0 &&
                    strcmp(m->labels[2 * j + 1], labels[2 * i + 1]) == 0;
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static struct family *family_new(const char *name, const char *help, enum kind kind,
                                 const double *bounds, size_t nbounds)
{
    if (!valid_name(name, true)) {
        misuse("invalid metric name", name);
    }
    if (!help || !*help) {
        misuse("a metric needs help text", name);
    }
    if (kind == K_COUNTER && !ends_with(name, "_total")) {
        misuse("counter names must end in _total", name);
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(process_names); i++) {
        if (strcmp(name, process_names[i]) == 0) {
            misuse("process metrics are rendered by the registry itself", name);
        }
    }
    struct family *f = sl_calloc(1, sizeof(*f));
    f->name = sl_strdup(name);
    f->help = sl_strdup(help);
    f->kind = kind;
    f->tail = &f->series;
    if (kind == K_HISTOGRAM) {
        /* A trailing +Inf is accepted and dropped: that bucket is always there. */
        if (nbounds > 0 && isinf(bounds[nbounds - 1]) && bounds[nbounds - 1] > 0) {
            nbounds--;
        }
        for (size_t i = 0; i < nbounds; i++) {
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
                misuse("histogram bounds must be finite and strictly ascending", name);
            }
        }
        f->bounds = sl_malloc((nbounds ? nbounds : 1) * sizeof(double));
        if (nbounds) {
            memcpy(f->bounds, bounds, nbounds * sizeof(double));
        }
        f->nbounds = nbounds;
    }
    return f;
}

static bool same_bounds(const struct family *f, const double *bounds, size_t nbounds)
{
    if (nbounds > 0 && isinf(bounds[nbounds - 1]) && bounds[nbounds - 1] > 0) {
        nbounds--;
    }
    if (nbounds != f->nbounds) {
        return false;
    }
    for (size_t i = 0; i < nbounds; i++) {
        if (bounds[i] != f->bounds[i]) {
            return false;
        }
    }
    return true;
}

static struct sl_metric *lookup(struct sl_metrics *reg, const char *name, const char *help,
                                enum kind kind, const char *const *labels, const double *bounds,
                                size_t nbounds)
{
    size_t n = check_labels(name, kind, labels);
    pthread_mutex_lock(&reg->lock);
    struct family *f = reg->families;
    while (f && strcmp(f->name, name) != 0) {
        f = f->next;
    }
    if (f) {
        if (f->kind != kind) {
            misuse("metric registered again with another type", name);
        }
        if (!help || strcmp(f->help, help) != 0) {
            misuse("metric registered again with other help text", name);
        }
        if (kind == K_HISTOGRAM && !same_bounds(f, bounds, nbounds)) {
            misuse("histogram registered again with other bounds", name);
        }
    } else {
        f = family_new(name, help, kind, bounds, nbounds);
        *reg->tail = f;
        reg->tail = &f->next;
    }
    struct sl_metric *m = f->series;
    while (m && !same_labels(m, labels, n)) {
        m = m->next;
    }
    if (!m) {
        m = sl_calloc(1, sizeof(*m));
        m->fam = f;
        m->npairs = n;
        m->labels = sl_malloc((2 * n + 1) * sizeof(char *));
        for (size_t i = 0; i < 2 * n; i++) {
            m->labels[i] = sl_strdup(labels[i]);
        }
        atomic_init(&m->value, kind == K_GAUGE ? dbits(0.0) : 0);
        atomic_init(&m->sum, dbits(0.0));
        if (kind == K_HISTOGRAM) {
            m->buckets = sl_malloc((f->nbounds + 1) * sizeof(*m->buckets));
            for (size_t i = 0; i <= f->nbounds; i++) {
                atomic_init(&m->buckets[i], 0);
            }
        }
        *f->tail = m;
        f->tail = &m->next;
    }
    pthread_mutex_unlock(&reg->lock);
    return m;
}

struct sl_metric *sl_metrics_counter(struct sl_metrics *reg, const char *name, const char *help,
                                     const char *const *labels)
{
    return lookup(reg, name, help, K_COUNTER, labels, NULL, 0);
}

struct sl_metric *sl_metrics_gauge(struct sl_metrics *reg, const char *name, const char *help,
                                   const char *const *labels)
{
    return lookup(reg, name, help, K_GAUGE, labels, NULL, 0);
}

struct sl_metric *sl_metrics_histogram(struct sl_metrics *reg, const char *name,
                                       const char *help, const char *const *labels,
                                       const double *bounds, size_t nbounds)
{
    return lookup(reg, name, help, K_HISTOGRAM, labels, bounds, nbounds);
}

void sl_metrics_remove(struct sl_metrics *reg, struct sl_metric *m)
{
    if (!reg || !m) {
        return;
    }
    pthread_mutex_lock(&reg->lock);
    struct family *f = m->fam;
    for (struct sl_metric **pp = &f->series; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            if (f->tail == &m->next) {
                f->tail = pp;
            }
            break;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    series_free(m);
}

void sl_counter_add(struct sl_metric *m, uint64_t n)
{
    if (!m) {
        return;  /* an instance built without a registry (plugin tests) */
    }
    atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}

void sl_gauge_set(struct sl_metric *m, double v)
{
    if (!m) {
        return;  /* built without a registry (tests) */
    }
    atomic_store_explicit(&m->value, dbits(v), memory_order_relaxed);
}

void sl_gauge_add(struct sl_metric *m, double delta)
{
    if (!m) {
        return;
    }
    atomic_add_double(&m->value, delta);
}

size_t sl_hist_nbuckets(const struct sl_metric *m)
{
    return m ? m->fam->nbounds + 1 : 0;
}

size_t sl_hist_bucket(const struct sl_metric *m, double v)
{
    const struct family *f = m->fam;
    /* The first bound >= v, by bisection (workers call this per event); past
     * the last bound is +Inf. NaN compares false everywhere and lands in +Inf,
     * as in the Go client. */
    size_t lo = 0, hi = f->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= f->bounds[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

void sl_hist_observe(struct sl_metric *m, double v)
{
    if (!m) {
        return;
    }
    atomic_fetch_add_explicit(&m->buckets[sl_hist_bucket(m, v)], 1, memory_order_relaxed);
    atomic_add_double(&m->sum, v);
}

void sl_hist_add(struct sl_metric *m, const uint64_t *counts, double sum)
{
    if (!m) {
        return;
    }
    bool any = false;
    for (size_t i = 0; i <= m->fam->nbounds; i++) {
        if (counts[i]) {
            atomic_fetch_add_explicit(&m->buckets[i], counts[i], memory_order_relaxed);
            any = true;
        }
    }
    if (any) {
        atomic_add_double(&m->sum, sum);
    }
}

double sl_metric_value(const struct sl_metric *m)
{
    /* The atomics are only read; the casts drop const for C11's atomic_load. */
    switch (m->fam->kind) {
    case K_COUNTER:
        return (double)atomic_load_explicit((_Atomic uint64_t *)&m->value, memory_order_relaxed);
    case K_GAUGE:
        return bitsd(atomic_load_explicit((_Atomic uint64_t *)&m->value, memory_order_relaxed));
    case K_HISTOGRAM: {
        /* The observation count. */
        uint64_t total = 0;
        for (size_t i = 0; i <= m->fam->nbounds; i++) {
            total += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        }
        return (double)total;
    }
    }
    return 0;
}

/* ---- rendering ---- */

/* An output that remembers its first error, so rendering reads straight through. */
struct out {
    struct sl_buf *b;
    int rc;
};

static void out_append(struct out *o, const char *s, size_t n)
{
    if (o->rc == 0) {
        o->rc = sl_buf_append(o->b, s, n);
    }
}

static void out_puts(struct out *o, const char *s)
{
    out_append(o, s, strlen(s));
}

/* Escapes backslash and newline, and the double quote too when quote is set. */
static void out_escaped(struct out *o, const char *s, bool quote)
{
    const char *run = s;
    for (const char *p = s; *p; p++) {
        const char *esc = NULL;
        if (*p == '\\') {
            esc = "\\\\";
        } else if (*p == '\n') {
            esc = "\\n";
        } else if (quote && *p == '"') {
            esc = "\\\"";
        }
        if (esc) {
            out_append(o, run, (size_t)(p - run));
            out_puts(o, esc);
            run = p + 1;
        }
    }
    out_puts(o, run);
}

/* The shortest of %.15g .. %.17g that reads back as v: 3 -> "3", 0.1 -> "0.1". */
static void format_double(double v, char *s, size_t n)
{
    if (isnan(v)) {
        snprintf(s, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(s, n, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, n, "%.*g", prec, v);
        if (strtod(s, NULL) == v) {
            return;
        }
    }
}

static void out_double(struct out *o, double v)
{
    char s[40];
    format_double(v, s, sizeof(s));
    out_puts(o, s);
}

static void out_u64(struct out *o, uint64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%" PRIu64, v);
    out_puts(o, s);
}

static void out_header(struct out *o, const char *name, const char *help, const char *type)
{
    out_puts(o, "# HELP ");
    out_puts(o, name);
    out_puts(o, " ");
    out_escaped(o, help, false);
    out_puts(o, "\n# TYPE ");
    out_puts(o, name);
    out_puts(o, " ");
    out_puts(o, type);
    out_puts(o, "\n");
}

/* name{k="v",...,le="x"} followed by a space; the braces only when there are labels. */
static void out_series(struct out *o, const struct sl_metric *m, const char *suffix,
                       const char *le)
{
    out_puts(o, m->fam->name);
    out_puts(o, suffix);
    if (m->npairs > 0 || le) {
        out_puts(o, "{");
        for (size_t i = 0; i < m->npairs; i++) {
            if (i > 0) {
                out_puts(o, ",");
            }
            out_puts(o, m->labels[2 * i]);
            out_puts(o, "=\"");
            out_escaped(o, m->labels[2 * i + 1], true);
            out_puts(o, "\"");
        }
        if (le) {
            out_puts(o, m->npairs > 0 ? ",le=\"" : "le=\"");
            out_puts(o, le);
            out_puts(o, "\"");
        }
        out_puts(o, "}");
    }
    out_puts(o, " ");
}

static void render_histogram(struct out *o, struct sl_metric *m)
{
    const struct family *f = m->fam;
    uint64_t cumulative = 0;
    char le[40];
    for (size_t i = 0; i < f->nbounds; i++) {
        cumulative += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        format_double(f->bounds[i], le, sizeof(le));
        out_series(o, m, "_bucket", le);
        out_u64(o, cumulative);
        out_puts(o, "\n");
    }
    cumulative += atomic_load_explicit(&m->buckets[f->nbounds], memory_order_relaxed);
    out_series(o, m, "_bucket", "+Inf");
    out_u64(o, cumulative);
    out_puts(o, "\n");
    out_series(o, m, "_sum", NULL);
    out_double(o, bitsd(atomic_load_explicit(&m->sum, memory_order_relaxed)));
    out_puts(o, "\n");
    out_series(o, m, "_count", NULL);
    out_u64(o, cumulative);
    out_puts(o, "\n");
}

static void render_family(struct out *o, const struct family *f)
{
    if (!f->series) {
        return;
    }
    out_header(o, f->name, f->help, kind_names[f->kind]);
    for (struct sl_metric *m = f->series; m; m = m->next) {
        switch (f->kind) {
        case K_COUNTER:
            out_series(o, m, "", NULL);
            out_u64(o, atomic_load_explicit(&m->value, memory_order_relaxed));
            out_puts(o, "\n");
            break;
        case K_GAUGE:
            out_series(o, m, "", NULL);
            out_double(o, bitsd(atomic_load_explicit(&m->value, memory_order_relaxed)));
            out_puts(o, "\n");
            break;
        case K_HISTOGRAM:
            render_histogram(o, m);
            break;
        }
    }
}

/* ---- process_* from /proc/self, read at render time ---- */

static void out_process(struct out *o, const char *name, const char *help, const char *type,
                        double v)
{
    out_header(o, name, help, type);
    out_puts(o, name);
    out_puts(o, " ");
    out_double(o, v);
    out_puts(o, "\n");
}

/* Reads a small /proc file into buf, NUL-terminated. Length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
    FILE *fp = fopen(path, "re");
    if (!fp) {
        return -1;
    }
    size_t n = fread(buf, 1, len - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return (ssize_t)n;
}

/*
 * Fields 14 (utime), 15 (stime) and 22 (starttime) of /proc/self/stat, in clock
 * ticks. The second field (comm) may hold spaces and parentheses, so counting
 * starts after the last ')'.
 */
static bool read_stat(unsigned long long *utime, unsigned long long *stime,
                      unsigned long long *starttime)
{
    char buf[1024];
    if (read_small("/proc/self/stat", buf, sizeof(buf)) <= 0) {
        return false;
    }
    char *p = strrchr(buf, ')');
    if (!p) {
        return false;
    }
    /* After ')' comes field 3 (state). */
    int field = 2;
    unsigned long long vals[23] = {0};
    char *end = p + 1;
    while (field < 22) {
        while (*end == ' ') {
            end++;
        }
        if (!*end) {
            return false;
        }
        field++;
        char *next;
        vals[field] = strtoull(end, &next, 10);
        if (next == end) {
            /* Non-numeric (the state letter): skip the token. */
            while (*next && *next != ' ') {
                next++;
            }
        }
        end = next;
    }
    *utime = vals[14];
    *stime = vals[15];
    *starttime = vals[22];
    return true;
}

static bool read_btime(unsigned long long *btime)
{
    FILE *fp = fopen("/proc/stat", "re");
    if (!fp) {
        return false;
    }
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof(line), fp)) {
        found = sscanf(line, "btime %llu", btime) == 1;
    }
    fclose(fp);
    return found;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        return -1;
    }
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void render_process(struct out *o)
{
    long tck = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long utime, stime, starttime, btime;
    bool have_stat = tck > 0 && read_stat(&utime, &stime, &starttime);

    /* Alphabetical, as the Go and Python clients write them. */
    if (have_stat) {
        out_process(o, "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds.", "counter",
                    (double)(utime + stime) / (double)tck);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        out_process(o, "process_max_fds", "Maximum number of open file descriptors.", "gauge",
                    rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
    }
    long fds = count_fds();
    if (fds >= 0) {
        out_process(o, "process_open_fds", "Number of open file descriptors.", "gauge",
                    (double)fds);
    }
    char statm[256];
    unsigned long long size = 0, resident = 0;
    bool have_statm = page > 0 && read_small("/proc/self/statm", statm, sizeof(statm)) > 0 &&
                      sscanf(statm, "%llu %llu", &size, &resident) == 2;
    if (have_statm) {
        out_process(o, "process_resident_memory_bytes", "Resident memory size in bytes.",
                    "gauge", (double)resident * (double)page);
    }
    if (have_stat && read_btime(&btime)) {
        out_process(o, "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.", "gauge",
                    (double)btime + (double)starttime / (double)tck);
    }
    if (have_statm) {
        out_process(o, "process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge",
                    (double)size * (double)page);
    }
}

int sl_metrics_render(struct sl_metrics *reg, struct sl_buf *out)
{
    struct out o = {.b = out, .rc = 0};
    pthread_mutex_lock(&reg->lock);
    for (const struct family *f = reg->families; f; f = f->next) {
        render_family(&o, f);
    }
    pthread_mutex_unlock(&reg->lock);
    render_process(&o);
    return o.rc;
}

void sl_metrics_build_info(struct sl_metrics *reg, const char *prefix)
{
    char name[96];
    snprintf(name, sizeof(name), "%s_build_info", prefix);
    const char *labels[] = {"version", SL_VERSION, NULL};
    sl_gauge_set(sl_metrics_gauge(reg, name, "Always 1; the labels say which build this is.",
                                  labels), 1);
}
