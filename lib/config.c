/*
 * config.c - YAML configuration: libyaml's event parser builds a small tree
 * whose nodes keep their line and column, every value scalar gets ${VAR} and
 * ${VAR:-default} expansion, and typed getters check values against what a
 * module expects. Every problem becomes one "FILE:LINE:COLUMN: message" line.
 *
 * This module knows no option of any daemon or plugin: modules read their own
 * maps through the getters and call sl_cfg_check_unknown() when done.
 *
 * Hostile input is bounded: the file size, nesting depth, node count, the
 * length of an expanded scalar and the size of the error text all have a
 * hard maximum. Anchors and aliases are rejected outright (no alias bombs,
 * and a config is easier to read without them).
 */
#include "sluice/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define CFG_MAX_FILE (16u * 1024 * 1024)  /* bytes of YAML we agree to read */
#define CFG_MAX_DEPTH 64                  /* nested maps/lists */
#define CFG_MAX_NODES 1000000             /* keys, values and items together */
#define CFG_MAX_SCALAR (1u * 1024 * 1024) /* one value after ${} expansion */
#define CFG_MAX_ERRORS (1u * 1024 * 1024) /* bytes of error text kept */
#define CFG_MAX_MSG 1024                  /* one error message, before escaping */
#define CFG_SHOW_MAX 64                   /* bytes of a bad value quoted back */

struct parser {
    struct sl_cfg *cfg;
    yaml_parser_t yp;
    size_t nodes;
    int depth;
    bool fatal;  /* a syntax error or a limit: stop building the tree */
};

/* ---- errors ------------------------------------------------------------ */

/* Where an error line "FILE:LINE:COL: ..." points, from its known prefix length. */
static void line_pos(const char *p, size_t prefix, long *line, long *col)
{
    char *end;
    *line = strtol(p + prefix, &end, 10);
    *col = *end == ':' ? strtol(end + 1, NULL, 10) : 0;
}

/*
 * Keeps the error lines in file order, whatever order the modules check
 * things in: `-t` reads top to bottom like the file. Equal positions keep
 * the order they were reported in. Dropped when the buffer is full (still counted).
 */
static void insert_in_order(struct sl_cfg *cfg, int line, int col, struct sl_buf *text)
{
    struct sl_buf *e = &cfg->errors;
    size_t prefix = strlen(cfg->file ? cfg->file : "<config>") + 1;
    size_t at = e->len;
    for (size_t off = 0; off < e->len;) {
        const char *nl = memchr(e->data + off, '\n', e->len - off);
        size_t next = nl ? (size_t)(nl - e->data) + 1 : e->len;
        long l, c;
        line_pos(e->data + off, prefix, &l, &c);
        if (l > line || (l == line && c > col)) {
            at = off;
            break;
        }
        off = next;
    }
    if (at == e->len || sl_buf_append(e, text->data, text->len) != 0) {
        if (at == e->len) {
            sl_buf_append(e, text->data, text->len);
        }
        return;
    }
    /* Appended at the end: rotate it into place. */
    memmove(e->data + at + text->len, e->data + at, e->len - text->len - at);
    memcpy(e->data + at, text->data, text->len);
}

void sl_cfg_error(struct sl_cfg *cfg, const struct sl_cfg_node *n, const char *fmt, ...)
{
    char msg[CFG_MAX_MSG];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (len < 0) {
        snprintf(msg, sizeof(msg), "(unprintable error)");
    } else if ((size_t)len >= sizeof(msg)) {
        memcpy(msg + sizeof(msg) - 4, "...", 4);
    }

    cfg->nerrors++;
    if (cfg->errors.max == 0) {
        /* A zeroed struct that never went through a load. */
        sl_buf_init(&cfg->errors, CFG_MAX_ERRORS);
    }

    /* Build the whole line first so a line is either kept entirely or not at
     * all; control characters are escaped so one error stays one line. */
    struct sl_buf line;
    sl_buf_init(&line, 0);
    sl_buf_printf(&line, "%s:%d:%d: ", cfg->file ? cfg->file : "<config>", n ? n->line : 1,
                  n ? n->col : 1);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p == '\n') {
            sl_buf_puts(&line, "\\n");
        } else if (*p == '\t') {
            sl_buf_puts(&line, "\\t");
        } else if (*p < 0x20 || *p == 0x7f) {
            sl_buf_printf(&line, "\\x%02x", *p);
        } else {
            sl_buf_putc(&line, (char)*p);
        }
    }
    sl_buf_putc(&line, '\n');
    insert_in_order(cfg, n ? n->line : 1, n ? n->col : 1, &line);
    sl_buf_free(&line);
}

/* Writes s into out for quoting in a message: at most CFG_SHOW_MAX bytes, cut
 * on a UTF-8 boundary, with "..." when shortened. */
static const char *shown(const char *s, char *out, size_t outlen)
{
    size_t n = strlen(s);
    if (n <= CFG_SHOW_MAX || outlen < CFG_SHOW_MAX + 4) {
        return s;
    }
    n = CFG_SHOW_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
        n--;
    }
    memcpy(out, s, n);
    memcpy(out + n, "...", 4);
    return out;
}

/* ---- the tree ------------------------------------------------------------ */

static void node_free(struct sl_cfg_node *n)
{
    if (!n) {
        return;
    }
    free(n->scalar);
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys) {
            free(n->keys[i]);
        }
        if (n->key_nodes) {
            node_free(n->key_nodes[i]);
        }
        node_free(n->items[i]);
    }
    free(n->keys);
    free(n->key_nodes);
    free(n->items);
    free(n->used);
    sl_cfg_strv_free(n->asked);
    free(n);
}

static struct sl_cfg_node *node_new(struct parser *p, enum sl_cfg_type type,
                                    const yaml_mark_t *mark)
{
    if (++p->nodes > CFG_MAX_NODES) {
        struct sl_cfg_node at = {.line = (int)mark->line + 1, .col = (int)mark->column + 1};
        sl_cfg_error(p->cfg, &at, "too many nodes (limit %d)", CFG_MAX_NODES);
        p->fatal = true;
        return NULL;
    }
    struct sl_cfg_node *n = sl_calloc(1, sizeof(*n));
    n->type = type;
    n->line = (int)mark->line + 1;
    n->col = (int)mark->column + 1;
    return n;
}

/* Null: absent, or an unquoted empty / ~ / null scalar (YAML's spellings). */
static bool is_null(const struct sl_cfg_node *n)
{
    if (!n) {
        return true;
    }
    if (n->type != SL_CFG_SCALAR || n->quoted) {
        return false;
    }
    const char *s = n->scalar;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

const char *sl_cfg_kind(const struct sl_cfg_node *n)
{
    switch (n->type) {
    case SL_CFG_MAP:
        return "a map";
    case SL_CFG_SEQ:
        return "a list";
    case SL_CFG_SCALAR:
        break;
    }
    return is_null(n) ? "nothing" : "a string";
}

/* ---- ${VAR} expansion ---------------------------------------------------- */

/*
 * Returns the expansion of s (owned), or NULL after recording an error at n.
 * Only "${" starts a reference; a lone '$' is literal. The default runs to the
 * first '}' (no nesting). An unset or empty VAR takes the default, as in sh.
 */
static char *expand(struct sl_cfg *cfg, const struct sl_cfg_node *n, const char *s)
{
    struct sl_buf b;
    char tmp[CFG_SHOW_MAX + 4];
    bool ok = true, toolong = false;
    sl_buf_init(&b, CFG_MAX_SCALAR);

    const char *p = s;
    for (;;) {
        const char *ref = strstr(p, "${");
        if (!ref) {
            toolong |= sl_buf_puts(&b, p) != 0;
            break;
        }
        toolong |= sl_buf_append(&b, p, (size_t)(ref - p)) != 0;
        const char *name = ref + 2;
        const char *end = strchr(name, '}');
        if (!end) {
            sl_cfg_error(cfg, n, "unterminated '${' in '%s'", shown(s, tmp, sizeof(tmp)));
            ok = false;
            break;
        }
        size_t nl = 0;
        while (isalnum((unsigned char)name[nl]) || name[nl] == '_') {
            nl++;
        }
        const char *def = NULL;
        if (name[nl] == ':' && name[nl + 1] == '-') {
            def = name + nl + 2;
        }
        if (nl == 0 || isdigit((unsigned char)name[0]) || (!def && name + nl != end)) {
            sl_cfg_error(cfg, n, "invalid reference '${%.*s}': expected ${VAR} or ${VAR:-default}",
                         (int)SL_MIN((size_t)(end - name), CFG_SHOW_MAX), name);
            ok = false;
            p = end + 1;
            continue;
        }
        char *var = sl_strndup(name, nl);
        const char *val = getenv(var);
        if (def && (!val || !*val)) {
            toolong |= sl_buf_append(&b, def, (size_t)(end - def)) != 0;
        } else if (!val) {
            sl_cfg_error(cfg, n, "environment variable '%s' is not set", var);
            ok = false;
        } else {
            toolong |= sl_buf_puts(&b, val) != 0;
        }
        free(var);
        p = end + 1;
    }
    if (ok && toolong) {
        sl_cfg_error(cfg, n, "value is longer than %u bytes after ${} expansion",
                     CFG_MAX_SCALAR);
        ok = false;
    }
    if (!ok) {
        sl_buf_free(&b);
        return NULL;
    }
    sl_buf_cstr(&b);
    return b.data;
}

/* ---- building the tree from libyaml events -------------------------------- */

static int next_event(struct parser *p, yaml_event_t *ev)
{
    if (yaml_parser_parse(&p->yp, ev)) {
        return 0;
    }
    const yaml_parser_t *y = &p->yp;
    struct sl_cfg_node at = {.line = (int)y->problem_mark.line + 1,
                             .col = (int)y->problem_mark.column + 1};
    const char *problem = y->problem ? y->problem : "cannot parse";
    if (y->error == YAML_READER_ERROR) {
        /* The reader knows only a byte offset, not a line. */
        sl_cfg_error(p->cfg, NULL, "YAML error: %s at byte %zu", problem, y->problem_offset);
    } else if (y->error == YAML_MEMORY_ERROR) {
        sl_cfg_error(p->cfg, NULL, "YAML error: out of memory");
    } else if (y->context) {
        sl_cfg_error(p->cfg, &at, "YAML syntax error: %s (%s)", problem, y->context);
    } else {
        sl_cfg_error(p->cfg, &at, "YAML syntax error: %s", problem);
    }
    p->fatal = true;
    return -1;
}

static void check_anchor(struct parser *p, const struct sl_cfg_node *n, const yaml_char_t *anchor)
{
    if (anchor) {
        char tmp[CFG_SHOW_MAX + 4];
        sl_cfg_error(p->cfg, n, "anchors are not supported ('&%s')",
                     shown((const char *)anchor, tmp, sizeof(tmp)));
    }
}

static struct sl_cfg_node *parse_node(struct parser *p, yaml_event_t *ev, bool is_key);

static struct sl_cfg_node *parse_scalar(struct parser *p, yaml_event_t *ev, bool is_key)
{
    struct sl_cfg_node *n = node_new(p, SL_CFG_SCALAR, &ev->start_mark);
    if (!n) {
        return NULL;
    }
    check_anchor(p, n, ev->data.scalar.anchor);
    const char *raw = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                (tag && strcmp(tag, YAML_STR_TAG) == 0);
    if (strlen(raw) != ev->data.scalar.length) {
        sl_cfg_error(p->cfg, n, "a value must not contain a NUL character");
    }
    n->scalar = is_key ? NULL : expand(p->cfg, n, raw);
    if (!n->scalar) {
        n->scalar = sl_strdup(raw);
    }
    return n;
}

static struct sl_cfg_node *parse_seq(struct parser *p, struct sl_cfg_node *n)
{
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        if (next_event(p, &ev) != 0) {
            return NULL;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return n;
        }
        struct sl_cfg_node *item = parse_node(p, &ev, false);
        if (!item) {
            return NULL;
        }
        if (n->n == cap) {
            cap = cap ? cap * 2 : 4;
            n->items = sl_realloc(n->items, cap * sizeof(*n->items));
        }
        n->items[n->n++] = item;
    }
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

/*
 * Keys seen so far in one map, for the duplicate check: an open-addressing
 * table of index+1, so a hostile map of 500,000 keys is not quadratic.
 */
struct keyset {
    size_t *slot;
    size_t mask;  /* table size - 1; 0 before the first insert */
};

static void keyset_put(struct keyset *ks, char *const *keys, size_t i)
{
    size_t j = hash_str(keys[i]) & ks->mask;
    while (ks->slot[j]) {
        j = (j + 1) & ks->mask;
    }
    ks->slot[j] = i + 1;
}

/* Returns the index of key among keys[0..n), or SIZE_MAX; then remembers n. */
static size_t keyset_find_add(struct keyset *ks, char *const *keys, size_t n, const char *key)
{
    if (2 * (n + 1) > ks->mask) {
        size_t size = ks->mask ? (ks->mask + 1) * 2 : 16;
        while (2 * (n + 1) > size - 1) {
            size *= 2;
        }
        free(ks->slot);
        ks->slot = sl_calloc(size, sizeof(*ks->slot));
        ks->mask = size - 1;
        for (size_t i = 0; i < n; i++) {
            keyset_put(ks, keys, i);
        }
    }
    size_t j = hash_str(key) & ks->mask;
    while (ks->slot[j]) {
        if (strcmp(keys[ks->slot[j] - 1], key) == 0) {
            return ks->slot[j] - 1;
        }
        j = (j + 1) & ks->mask;
    }
    return SIZE_MAX;
}

static struct sl_cfg_node *parse_map(struct parser *p, struct sl_cfg_node *n)
{
    struct keyset ks = {NULL, 0};
    size_t cap = 0;
    struct sl_cfg_node *result = NULL;
    for (;;) {
        yaml_event_t ev;
        if (next_event(p, &ev) != 0) {
            goto out;
        }
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            result = n;
            goto out;
        }
        struct sl_cfg_node *k = parse_node(p, &ev, true);
        if (!k) {
            goto out;
        }
        struct sl_cfg_node *v = NULL;
        if (next_event(p, &ev) != 0 || !(v = parse_node(p, &ev, false))) {
            node_free(k);
            goto out;
        }
        if (k->type != SL_CFG_SCALAR) {
            sl_cfg_error(p->cfg, k, "a key must be a string, got %s", sl_cfg_kind(k));
            node_free(k);
            node_free(v);
            continue;
        }
        size_t first = keyset_find_add(&ks, n->keys, n->n, k->scalar);
        if (first != SIZE_MAX) {
            char tmp[CFG_SHOW_MAX + 4];
            sl_cfg_error(p->cfg, k, "duplicate key '%s' (first at line %d)",
                         shown(k->scalar, tmp, sizeof(tmp)), n->key_nodes[first]->line);
            node_free(k);
            node_free(v);
            continue;
        }
        if (n->n == cap) {
            cap = cap ? cap * 2 : 8;
            n->keys = sl_realloc(n->keys, cap * sizeof(*n->keys));
            n->key_nodes = sl_realloc(n->key_nodes, cap * sizeof(*n->key_nodes));
            n->items = sl_realloc(n->items, cap * sizeof(*n->items));
            n->used = sl_realloc(n->used, cap * sizeof(*n->used));
        }
        n->keys[n->n] = sl_strdup(k->scalar);
        n->key_nodes[n->n] = k;
        n->items[n->n] = v;
        n->used[n->n] = false;
        n->n++;
        keyset_put(&ks, n->keys, n->n - 1);
    }
out:
    free(ks.slot);
    return result;
}

/* Builds the node that starts with *ev (consumed). NULL means stop: the error
 * is recorded and p->fatal is set. */
static struct sl_cfg_node *parse_node(struct parser *p, yaml_event_t *ev, bool is_key)
{
    struct sl_cfg_node *n = NULL, *done = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        done = parse_scalar(p, ev, is_key);
        break;
    case YAML_ALIAS_EVENT:
        /* Kept as a null so the structure stays whole and parsing goes on. */
        if ((n = node_new(p, SL_CFG_SCALAR, &ev->start_mark)) != NULL) {
            char tmp[CFG_SHOW_MAX + 4];
            sl_cfg_error(p->cfg, n, "aliases are not supported ('*%s')",
                         shown((const char *)ev->data.alias.anchor, tmp, sizeof(tmp)));
            n->scalar = sl_strdup("");
            done = n;
        }
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        if (!(n = node_new(p, map ? SL_CFG_MAP : SL_CFG_SEQ, &ev->start_mark))) {
            break;
        }
        check_anchor(p, n, map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
        if (++p->depth > CFG_MAX_DEPTH) {
            sl_cfg_error(p->cfg, n, "nested deeper than %d levels", CFG_MAX_DEPTH);
            p->fatal = true;
            p->depth--;
            break;
        }
        yaml_event_delete(ev);
        done = map ? parse_map(p, n) : parse_seq(p, n);
        p->depth--;
        break;
    }
    default: {
        struct sl_cfg_node at = {.line = (int)ev->start_mark.line + 1,
                                 .col = (int)ev->start_mark.column + 1};
        sl_cfg_error(p->cfg, &at, "unexpected YAML event %d", (int)ev->type);
        p->fatal = true;
        break;
    }
    }
    yaml_event_delete(ev);  /* harmless when already deleted: it zeroes the event */
    if (!done) {
        node_free(n);
    }
    return done;
}

static void parse_stream(struct parser *p)
{
    struct sl_cfg *cfg = p->cfg;
    yaml_event_t ev;
    if (next_event(p, &ev) != 0) {
        return;
    }
    yaml_event_delete(&ev);  /* STREAM-START */
    if (next_event(p, &ev) != 0) {
        return;
    }
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);  /* nothing but comments: an empty config */
        return;
    }
    yaml_event_delete(&ev);  /* DOCUMENT-START */
    if (next_event(p, &ev) != 0) {
        return;
    }
    struct sl_cfg_node *root = parse_node(p, &ev, false);
    if (!root) {
        return;
    }
    if (is_null(root)) {
        node_free(root);
        root = NULL;
    } else if (root->type != SL_CFG_MAP) {
        sl_cfg_error(cfg, root, "the configuration must be a map of options, got %s",
                     sl_cfg_kind(root));
        node_free(root);
        root = NULL;
    }
    cfg->root = root;
    if (next_event(p, &ev) != 0) {
        return;
    }
    yaml_event_delete(&ev);  /* DOCUMENT-END */
    if (next_event(p, &ev) != 0) {
        return;
    }
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        struct sl_cfg_node at = {.line = (int)ev.start_mark.line + 1,
                                 .col = (int)ev.start_mark.column + 1};
        sl_cfg_error(cfg, &at, "only one YAML document is allowed");
    }
    yaml_event_delete(&ev);
}

/* ---- loading ------------------------------------------------------------- */

static void cfg_init(struct sl_cfg *cfg, const char *name)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->file = sl_strdup(name ? name : "<config>");
    sl_buf_init(&cfg->errors, CFG_MAX_ERRORS);
}

static int cfg_parse(struct sl_cfg *cfg, const char *text, size_t len)
{
    if (len > CFG_MAX_FILE) {
        sl_cfg_error(cfg, NULL, "file is larger than %u MiB", CFG_MAX_FILE / (1024 * 1024));
        return SL_EINVAL;
    }
    struct parser p = {.cfg = cfg};
    if (!yaml_parser_initialize(&p.yp)) {
        sl_cfg_error(cfg, NULL, "YAML error: cannot initialize the parser");
        return SL_EINVAL;
    }
    yaml_parser_set_input_string(&p.yp, (const unsigned char *)text, len);
    parse_stream(&p);
    yaml_parser_delete(&p.yp);
    if (p.fatal) {
        /* The tree after a syntax error is not the file the user wrote. */
        node_free(cfg->root);
        cfg->root = NULL;
    }
    return cfg->nerrors ? SL_EINVAL : 0;
}

int sl_cfg_load_string(struct sl_cfg *cfg, const char *name, const char *text, size_t len)
{
    cfg_init(cfg, name);
    return cfg_parse(cfg, text, len);
}

int sl_cfg_load(struct sl_cfg *cfg, const char *path)
{
    cfg_init(cfg, path);
    int rc = SL_EINVAL;
    struct sl_buf text;
    /* One byte over the limit is enough for cfg_parse to report the size. */
    sl_buf_init(&text, CFG_MAX_FILE + 1);
    /* O_NONBLOCK: opening a FIFO nobody writes to would wait forever (-t
     * included). Reads block again once open: a FIFO without a writer then
     * reads as empty, one with a writer (a shell's <(...)) as its text. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        sl_cfg_error(cfg, NULL, "cannot open: %s", strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        sl_cfg_error(cfg, NULL, "cannot read: %s", strerror(EISDIR));
        goto out;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    for (;;) {
        size_t want = SL_MIN((size_t)65536, text.max - text.len);
        if (want == 0) {
            break;
        }
        sl_buf_reserve(&text, want);  /* within max, so it cannot fail */
        ssize_t r = read(fd, text.data + text.len, want);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            sl_cfg_error(cfg, NULL, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (r == 0) {
            break;
        }
        text.len += (size_t)r;
    }
    rc = cfg_parse(cfg, text.data ? text.data : "", text.len);
out:
    if (fd >= 0) {
        close(fd);
    }
    sl_buf_free(&text);
    return rc;
}

void sl_cfg_free(struct sl_cfg *cfg)
{
    if (!cfg) {
        return;
    }
    node_free(cfg->root);
    free(cfg->file);
    sl_buf_free(&cfg->errors);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- lookups and typed getters ------------------------------------------- */

struct sl_cfg_node *sl_cfg_get(struct sl_cfg_node *map, const char *key)
{
    if (!map || map->type != SL_CFG_MAP) {
        return NULL;
    }
    for (size_t i = 0; i < map->n; i++) {
        if (strcmp(map->keys[i], key) == 0) {
            map->used[i] = true;
            return map->items[i];
        }
    }
    /* Remembered, so that an unknown key can be matched against what the
     * module would have taken ("did you mean"), whoever reads this map. */
    for (size_t i = 0; i < map->nasked; i++) {
        if (strcmp(map->asked[i], key) == 0) {
            return NULL;
        }
    }
    if (map->nasked < 256) {
        map->asked = sl_realloc(map->asked, (map->nasked + 2) * sizeof(*map->asked));
        map->asked[map->nasked++] = sl_strdup(key);
        map->asked[map->nasked] = NULL;
    }
    return NULL;
}

bool sl_cfg_is_null(const struct sl_cfg_node *n)
{
    return is_null(n);
}

/* Levenshtein distance of a and b, or limit + 1 once it exceeds limit. */
static size_t edit_distance(const char *a, const char *b, size_t limit)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) > limit) {
        return limit + 1;
    }
    size_t row[65];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t sub = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            row[j] = SL_MIN(SL_MIN(row[j - 1] + 1, up + 1), sub);
            diag = up;
        }
    }
    return row[lb];
}

const char *sl_cfg_suggest(const char *word, const char *const *known)
{
    if (!known) {
        return NULL;
    }
    size_t wl = strlen(word);
    size_t limit = wl <= 3 ? 1 : wl <= 6 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (const char *const *k = known; *k; k++) {
        /* "verification" for "verification_mode": a prefix is as good as a typo. */
        if (wl >= 4 && strncasecmp(*k, word, wl) == 0) {
            return *k;
        }
        size_t d = edit_distance(word, *k, limit);
        if (d < best_d) {
            best_d = d;
            best = *k;
        }
    }
    return best;
}

void sl_cfg_check_unknown_in(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                             const char *const *known)
{
    if (!map || map->type != SL_CFG_MAP) {
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        if (!map->used[i]) {
            char tmp[CFG_SHOW_MAX + 4], hint[CFG_SHOW_MAX + 24] = "";
            const char *near = sl_cfg_suggest(map->keys[i], known);
            if (!near) {
                near = sl_cfg_suggest(map->keys[i], (const char *const *)map->asked);
            }
            if (near) {
                snprintf(hint, sizeof(hint), " (did you mean '%s'?)", near);
            }
            sl_cfg_error(cfg, map->key_nodes[i], "%s%sunknown option '%s'%s", where ? where : "",
                         where && *where ? ": " : "", shown(map->keys[i], tmp, sizeof(tmp)), hint);
            map->used[i] = true;  /* report each key once */
        }
    }
}

void sl_cfg_check_unknown(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where)
{
    sl_cfg_check_unknown_in(cfg, map, where, NULL);
}

bool sl_cfg_is_map(struct sl_cfg *cfg, struct sl_cfg_node *node, const char *where)
{
    if (is_null(node) || node->type == SL_CFG_MAP) {
        return true;
    }
    sl_cfg_error(cfg, node, "%s%smust be a map, got %s", where ? where : "",
                 where && *where ? ": " : "", sl_cfg_kind(node));
    return false;
}

/* Records "<where>: option '<key>' <what>" at n. */
static void opt_error(struct sl_cfg *cfg, const struct sl_cfg_node *n, const char *where,
                      const char *key, const char *fmt, ...) SL_PRINTF(5, 6);
static void opt_error(struct sl_cfg *cfg, const struct sl_cfg_node *n, const char *where,
                      const char *key, const char *fmt, ...)
{
    char what[CFG_MAX_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    sl_cfg_error(cfg, n, "%s%soption '%s' %s", where ? where : "", where && *where ? ": " : "",
                 key, what);
}

/* "must be <expect>, got 'value'" (or "got a map") at n. */
void sl_cfg_bad_value(struct sl_cfg *cfg, const struct sl_cfg_node *n, const char *where,
                      const char *key, const char *expect)
{
    if (n->type == SL_CFG_SCALAR && !is_null(n)) {
        char tmp[CFG_SHOW_MAX + 4];
        opt_error(cfg, n, where, key, "must be %s, got '%s'", expect,
                  shown(n->scalar, tmp, sizeof(tmp)));
    } else {
        opt_error(cfg, n, where, key, "must be %s, got %s", expect, sl_cfg_kind(n));
    }
}

int sl_cfg_parse_bool(const char *s)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < SL_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            return 1;
        }
        if (strcasecmp(s, no[i]) == 0) {
            return 0;
        }
    }
    return -1;
}

/* The value of key when it is present and not null; NULL means "use def". */
static struct sl_cfg_node *lookup(struct sl_cfg_node *map, const char *key)
{
    struct sl_cfg_node *n = sl_cfg_get(map, key);
    return is_null(n) ? NULL : n;
}

int sl_cfg_str(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
               const char *def, char **out)
{
    struct sl_cfg_node *n = lookup(map, key);
    if (n && n->type != SL_CFG_SCALAR) {
        sl_cfg_bad_value(cfg, n, where, key, "a string");
        *out = def ? sl_strdup(def) : NULL;
        return SL_EINVAL;
    }
    const char *v = n ? n->scalar : def;
    *out = v ? sl_strdup(v) : NULL;
    return 0;
}

int sl_cfg_bool(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
                bool def, bool *out)
{
    *out = def;
    struct sl_cfg_node *n = lookup(map, key);
    if (!n) {
        return 0;
    }
    int b = n->type == SL_CFG_SCALAR ? sl_cfg_parse_bool(n->scalar) : -1;
    if (b >= 0) {
        *out = b == 1;
        return 0;
    }
    sl_cfg_bad_value(cfg, n, where, key, "true or false");
    return SL_EINVAL;
}

/* "between 1 and 10" / "at least 1" / "at most 10" into out; "" when the
 * range is the whole type. fmt_min/fmt_max are the bounds already formatted. */
static void range_text(char *out, size_t outlen, bool has_min, bool has_max, const char *lo,
                       const char *hi)
{
    if (has_min && has_max) {
        snprintf(out, outlen, "between %s and %s", lo, hi);
    } else if (has_min) {
        snprintf(out, outlen, "at least %s", lo);
    } else if (has_max) {
        snprintf(out, outlen, "at most %s", hi);
    } else {
        out[0] = '\0';
    }
}

int sl_cfg_int(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
               int64_t def, int64_t min, int64_t max, int64_t *out)
{
    *out = def;
    struct sl_cfg_node *n = lookup(map, key);
    if (!n) {
        return 0;
    }
    if (n->type != SL_CFG_SCALAR) {
        sl_cfg_bad_value(cfg, n, where, key, "an integer");
        return SL_EINVAL;
    }
    const char *s = n->scalar;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    /* strtoll skips leading blanks; a value must be only digits and a sign. */
    if (!(isdigit((unsigned char)s[0]) || ((s[0] == '-' || s[0] == '+') &&
                                            isdigit((unsigned char)s[1]))) ||
        *end != '\0' || errno == ERANGE) {
        sl_cfg_bad_value(cfg, n, where, key, "an integer");
        return SL_EINVAL;
    }
    if (v < min || v > max) {
        char lo[32], hi[32], range[80];
        snprintf(lo, sizeof(lo), "%" PRId64, min);
        snprintf(hi, sizeof(hi), "%" PRId64, max);
        range_text(range, sizeof(range), min != INT64_MIN, max != INT64_MAX, lo, hi);
        sl_cfg_bad_value(cfg, n, where, key, range);
        return SL_EINVAL;
    }
    *out = v;
    return 0;
}

/* Formats a byte count with the largest unit that divides it: 1gb, 512kb, 100b. */
static void format_size(uint64_t v, char *out, size_t outlen)
{
    static const struct { const char *unit; uint64_t mult; } units[] = {
        {"gb", 1024ull * 1024 * 1024}, {"mb", 1024 * 1024}, {"kb", 1024},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++) {
        if (v && v % units[i].mult == 0) {
            snprintf(out, outlen, "%" PRIu64 "%s", v / units[i].mult, units[i].unit);
            return;
        }
    }
    snprintf(out, outlen, "%" PRIu64 "b", v);
}

/* Formats milliseconds with the largest unit that divides them: 1h, 90s, 0. */
static void format_duration(uint64_t ms, char *out, size_t outlen)
{
    static const struct { const char *unit; uint64_t mult; } units[] = {
        {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000},
    };
    if (ms == 0) {
        snprintf(out, outlen, "0");
        return;
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++) {
        if (ms % units[i].mult == 0) {
            snprintf(out, outlen, "%" PRIu64 "%s", ms / units[i].mult, units[i].unit);
            return;
        }
    }
    snprintf(out, outlen, "%" PRIu64 "ms", ms);
}

/* Shared by sizes and durations: parse, then check [min, max]. */
static int get_u64(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                   const char *key, uint64_t def, uint64_t min, uint64_t max, uint64_t *out,
                   int (*parse)(const char *, uint64_t *),
                   void (*format)(uint64_t, char *, size_t), const char *like)
{
    *out = def;
    struct sl_cfg_node *n = lookup(map, key);
    if (!n) {
        return 0;
    }
    uint64_t v;
    if (n->type != SL_CFG_SCALAR || parse(n->scalar, &v) != 0) {
        sl_cfg_bad_value(cfg, n, where, key, like);
        return SL_EINVAL;
    }
    if (v < min || v > max) {
        char lo[32], hi[32], range[80];
        format(min, lo, sizeof(lo));
        format(max, hi, sizeof(hi));
        range_text(range, sizeof(range), min != 0, max != UINT64_MAX, lo, hi);
        sl_cfg_bad_value(cfg, n, where, key, range);
        return SL_EINVAL;
    }
    *out = v;
    return 0;
}

int sl_cfg_size(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
                uint64_t def, uint64_t min, uint64_t max, uint64_t *out)
{
    return get_u64(cfg, map, where, key, def, min, max, out, sl_parse_size, format_size,
                   "a size like 512kb, 5mb, 1gb");
}

int sl_cfg_duration(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                    const char *key, uint64_t def_ms, uint64_t min_ms, uint64_t max_ms,
                    uint64_t *out_ms)
{
    return get_u64(cfg, map, where, key, def_ms, min_ms, max_ms, out_ms, sl_parse_duration,
                   format_duration, "a duration like 500ms, 10s, 5m");
}

int sl_cfg_enum(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
                const char *const *choices, int def, int *out)
{
    *out = def;
    struct sl_cfg_node *n = lookup(map, key);
    if (!n) {
        return 0;
    }
    if (n->type == SL_CFG_SCALAR) {
        for (int i = 0; choices[i]; i++) {
            if (strcasecmp(n->scalar, choices[i]) == 0) {
                *out = i;
                return 0;
            }
        }
    }
    struct sl_buf list;
    sl_buf_init(&list, 0);
    sl_buf_puts(&list, "one of ");
    for (int i = 0; choices[i]; i++) {
        sl_buf_printf(&list, "%s%s", i ? ", " : "", choices[i]);
    }
    sl_cfg_bad_value(cfg, n, where, key, sl_buf_cstr(&list));
    sl_buf_free(&list);
    return SL_EINVAL;
}

int sl_cfg_strlist(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                   const char *key, char ***out, size_t *n)
{
    struct sl_cfg_node *v = lookup(map, key);
    *n = 0;
    if (!v) {
        *out = sl_calloc(1, sizeof(**out));
        return 0;
    }
    if (v->type == SL_CFG_SCALAR) {
        *out = sl_calloc(2, sizeof(**out));
        (*out)[0] = sl_strdup(v->scalar);
        *n = 1;
        return 0;
    }
    if (v->type != SL_CFG_SEQ) {
        sl_cfg_bad_value(cfg, v, where, key, "a string or a list of strings");
        *out = sl_calloc(1, sizeof(**out));
        return SL_EINVAL;
    }
    char **list = sl_calloc(v->n + 1, sizeof(*list));
    int rc = 0;
    for (size_t i = 0; i < v->n; i++) {
        struct sl_cfg_node *item = v->items[i];
        if (item->type != SL_CFG_SCALAR || is_null(item)) {
            char name[CFG_MAX_MSG / 2];
            snprintf(name, sizeof(name), "%s[%zu]", key, i);
            sl_cfg_bad_value(cfg, item, where, name, "a string");
            rc = SL_EINVAL;
            continue;
        }
        list[(*n)++] = sl_strdup(item->scalar);
    }
    if (rc != 0) {
        sl_cfg_strv_free(list);
        list = sl_calloc(1, sizeof(*list));
        *n = 0;
    }
    *out = list;
    return rc;
}

void sl_cfg_strv_free(char **v)
{
    if (!v) {
        return;
    }
    for (char **p = v; *p; p++) {
        free(*p);
    }
    free(v);
}
