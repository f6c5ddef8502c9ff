/*
 * grok.c - the grok engine: pattern dictionary, %{} expansion into one
 * Oniguruma regex, and matching within a time budget (lib/regex.c). Events and configuration are filter_grok.c's business.
 *
 * Expansion is a small scanner over the regex text rather than a textual
 * substitution, because it must know where it is: a "%{" or "(?<" inside a
 * character class or after a backslash is not ours to rewrite, and a
 * look-behind "(?<=" is not a named group.
 */
#include "grok.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/buf.h"
#include "sluice/regex.h"
#include "sluice/value.h"

/* ---- the dictionary ---------------------------------------------------- */

struct grok_def {
    char *name;
    char *regex;
    char *origin;
    int line;
};

struct sl_grok_lib {
    struct grok_def *defs;
    size_t n, cap;
};

static bool is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_';
}

static bool valid_name(const char *s, size_t len)
{
    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(s[i])) {
            return false;
        }
    }
    return true;
}

struct sl_grok_lib *sl_grok_lib_new(void)
{
    return sl_calloc(1, sizeof(struct sl_grok_lib));
}

void sl_grok_lib_free(struct sl_grok_lib *lib)
{
    if (!lib) {
        return;
    }
    for (size_t i = 0; i < lib->n; i++) {
        free(lib->defs[i].name);
        free(lib->defs[i].regex);
        free(lib->defs[i].origin);
    }
    free(lib->defs);
    free(lib);
}

static struct grok_def *lib_find(const struct sl_grok_lib *lib, const char *name, size_t len)
{
    for (size_t i = 0; i < lib->n; i++) {
        if (strncmp(lib->defs[i].name, name, len) == 0 && lib->defs[i].name[len] == '\0') {
            return &lib->defs[i];
        }
    }
    return NULL;
}

static void lib_put(struct sl_grok_lib *lib, const char *name, size_t nlen, const char *regex,
                    size_t rlen, const char *origin, int line)
{
    struct grok_def *d = lib_find(lib, name, nlen);
    if (d) {
        free(d->regex);
        free(d->origin);
    } else {
        if (lib->n == lib->cap) {
            lib->cap = lib->cap ? lib->cap * 2 : 64;
            lib->defs = sl_realloc(lib->defs, lib->cap * sizeof(*lib->defs));
        }
        d = &lib->defs[lib->n++];
        d->name = sl_strndup(name, nlen);
    }
    d->regex = sl_strndup(regex, rlen);
    d->origin = sl_strdup(origin ? origin : "?");
    d->line = line;
}

int sl_grok_lib_add(struct sl_grok_lib *lib, const char *name, const char *regex,
                    const char *origin, int line)
{
    if (!name || !regex || !valid_name(name, strlen(name))) {
        return SL_EINVAL;
    }
    lib_put(lib, name, strlen(name), regex, strlen(regex), origin, line);
    return 0;
}

const char *sl_grok_lib_get(const struct sl_grok_lib *lib, const char *name)
{
    const struct grok_def *d = lib_find(lib, name, strlen(name));
    return d ? d->regex : NULL;
}

int sl_grok_lib_add_text(struct sl_grok_lib *lib, const char *origin, const char *text,
                         size_t len, char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    for (int line = 1; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        if (!eol) {
            eol = end;
        }
        if (eol > p && eol[-1] == '\r') {
            eol--;
        }
        const char *s = p;
        while (s < eol && (*s == ' ' || *s == '\t')) {
            s++;
        }
        if (s < eol && *s != '#') {
            const char *n = s;
            while (s < eol && is_name_char(*s)) {
                s++;
            }
            const char *nend = s;
            while (s < eol && (*s == ' ' || *s == '\t')) {
                s++;
            }
            if (nend == n || s == nend || s == eol || memchr(p, '\0', (size_t)(eol - p))) {
                snprintf(err, errlen, "%s:%d: expected 'NAME regex' (NAME of A-Z a-z 0-9 _)",
                         origin, line);
                return SL_EINVAL;
            }
            lib_put(lib, n, (size_t)(nend - n), s, (size_t)(eol - s), origin, line);
        }
        p = next;
    }
    return 0;
}

/* ---- expansion ---------------------------------------------------------- */

struct expand {
    const struct sl_grok_lib *lib;
    bool named_only;
    struct sl_buf out;
    struct sl_grok_capture *caps;
    size_t ncaps, capcap;
    const struct grok_def *stack[SL_GROK_MAX_DEPTH];
    int depth;
    char *err;
    size_t errlen;
    bool failed;
    bool caret_as_a;   /* write '^' as '\A' */
    int carets;        /* '^' seen outside classes */
};

/* Control characters of a pattern shown in a message become '?': one line. */
static void one_line(char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            *s = '?';
        }
    }
}

/* Records the first error, saying in which definition it was found. */
static void SL_PRINTF(2, 3) fail(struct expand *x, const char *fmt, ...)
{
    if (x->failed) {
        return;
    }
    x->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    one_line(msg);
    if (x->depth > 0) {
        const struct grok_def *d = x->stack[x->depth - 1];
        if (d->line > 0) {
            snprintf(x->err, x->errlen, "in definition of '%s' (%s:%d): %s", d->name,
                     d->origin, d->line, msg);
        } else {
            snprintf(x->err, x->errlen, "in definition of '%s' (%s): %s", d->name, d->origin,
                     msg);
        }
    } else {
        snprintf(x->err, x->errlen, "%s", msg);
    }
}

static void emit(struct expand *x, const char *p, size_t n)
{
    if (!x->failed && sl_buf_append(&x->out, p, n) != 0) {
        fail(x, "expands to more than %u bytes", SL_GROK_MAX_EXPANDED);
    }
}

static bool valid_field(const char *f)
{
    struct sl_value scratch = {0};
    sl_value_set_object(&scratch);
    bool ok = sl_field_put(&scratch, f) != NULL;
    sl_value_clear(&scratch);
    return ok;
}

/* Opens the named group of a new capture: "(?<g7>". */
static void open_capture(struct expand *x, const char *field, size_t flen, enum sl_grok_type type)
{
    if (x->ncaps >= SL_GROK_MAX_CAPTURES) {
        fail(x, "more than %d captures", SL_GROK_MAX_CAPTURES);
        return;
    }
    if (x->ncaps == x->capcap) {
        x->capcap = x->capcap ? x->capcap * 2 : 16;
        x->caps = sl_realloc(x->caps, x->capcap * sizeof(*x->caps));
    }
    struct sl_grok_capture *c = &x->caps[x->ncaps++];
    c->field = sl_strndup(field, flen);
    c->type = type;
    c->group = 0;
    char gname[32];
    int n = snprintf(gname, sizeof(gname), "(?<g%zu>", x->ncaps);
    emit(x, gname, (size_t)n);
}

static void expand_text(struct expand *x, const char *text);

/* Shows at most 60 bytes of a reference in a message. */
#define REF_FMT "%.*s%s"
#define REF_ARG(p, n) (int)SL_MIN((n), 60), (p), (n) > 60 ? "..." : ""

/* p points at "%{"; returns the position after the reference. */
static const char *expand_ref(struct expand *x, const char *p)
{
    const char *close = strchr(p, '}');
    size_t reflen = close ? (size_t)(close - p) + 1 : strlen(p);
    if (!close) {
        fail(x, "unterminated '%%{' in '" REF_FMT "'", REF_ARG(p, reflen));
        return p + reflen;
    }
    const char *name = p + 2, *s = name;
    while (is_name_char(*s)) {
        s++;
    }
    size_t nlen = (size_t)(s - name);
    const char *field = NULL, *type = NULL;
    size_t flen = 0, tlen = 0;
    if (*s == ':') {
        field = ++s;
        while (s < close && *s != ':') {
            s++;
        }
        flen = (size_t)(s - field);
        /* Logstash's own ecs-v1 httpd file writes one field as "[a][b]?": it
         * loads there (as text it never matches), so it loads here, as [a][b]. */
        if (flen > 1 && field[flen - 1] == '?') {
            flen--;
        }
        if (*s == ':') {
            type = ++s;
            tlen = (size_t)(close - s);
            s = close;
        }
    }
    if (nlen == 0 || s != close || (field && flen == 0) || (type && tlen == 0)) {
        fail(x, "malformed reference '" REF_FMT "' (expected %%{NAME}, %%{NAME:field} or "
             "%%{NAME:field:int|float})", REF_ARG(p, reflen));
        return close + 1;
    }
    enum sl_grok_type t = SL_GROK_STRING;
    if (type) {
        if (tlen == 3 && memcmp(type, "int", 3) == 0) {
            t = SL_GROK_INT;
        } else if (tlen == 5 && memcmp(type, "float", 5) == 0) {
            t = SL_GROK_FLOAT;
        } else {
            fail(x, "unknown type '%.*s' in '" REF_FMT "' (int or float)", (int)tlen, type,
                 REF_ARG(p, reflen));
            return close + 1;
        }
    }
    if (field) {
        char *f = sl_strndup(field, flen);
        bool ok = valid_field(f);
        free(f);
        if (!ok) {
            fail(x, "invalid field reference '%.*s' in '" REF_FMT "'", (int)flen, field,
                 REF_ARG(p, reflen));
            return close + 1;
        }
    }
    const struct grok_def *d = lib_find(x->lib, name, nlen);
    if (!d) {
        fail(x, "unknown pattern '%.*s' in '" REF_FMT "'", (int)nlen, name, REF_ARG(p, reflen));
        return close + 1;
    }
    for (int i = 0; i < x->depth; i++) {
        if (x->stack[i] == d) {
            char chain[256] = "";
            size_t used = 0;
            for (int j = i; j < x->depth && used < sizeof(chain); j++) {
                int n = snprintf(chain + used, sizeof(chain) - used, "%s -> ", x->stack[j]->name);
                used += n > 0 ? (size_t)n : 0;
            }
            fail(x, "pattern '%s' refers to itself: %s%s", d->name, chain, d->name);
            return close + 1;
        }
    }
    if (x->depth >= SL_GROK_MAX_DEPTH) {
        fail(x, "patterns nested more than %d deep at '%s'", SL_GROK_MAX_DEPTH, d->name);
        return close + 1;
    }
    if (field) {
        open_capture(x, field, flen, t);
    } else if (!x->named_only) {
        open_capture(x, name, nlen, SL_GROK_STRING);
    } else {
        emit(x, "(?:", 3);
    }
    x->stack[x->depth++] = d;
    expand_text(x, d->regex);
    x->depth--;
    emit(x, ")", 1);
    return close + 1;
}

/* Copies a character class starting at p ('['), nested classes included. */
static const char *copy_class(struct expand *x, const char *p)
{
    const char *start = p;
    int nest = 0;
    while (*p) {
        if (*p == '\\' && p[1]) {
            p += 2;
            continue;
        }
        if (*p == '[') {
            nest++;
            p++;
            /* A ']' right after '[' or '[^' is a literal, not the end. */
            if (*p == '^') {
                p++;
            }
            if (*p == ']') {
                p++;
            }
            continue;
        }
        if (*p == ']') {
            p++;
            if (--nest == 0) {
                break;
            }
            continue;
        }
        p++;
    }
    emit(x, start, (size_t)(p - start));  /* unterminated: Oniguruma will say so */
    return p;
}

/* The capture a back-reference \k<name> or call \g<name> means: the last one so named. */
static const struct sl_grok_capture *capture_named(struct expand *x, const char *n, size_t len)
{
    for (size_t i = x->ncaps; i-- > 0;) {
        if (strncmp(x->caps[i].field, n, len) == 0 && x->caps[i].field[len] == '\0') {
            return &x->caps[i];
        }
    }
    return NULL;
}

/* p points at '\\'; returns the position after the escape. */
static const char *copy_escape(struct expand *x, const char *p)
{
    if ((p[1] == 'k' || p[1] == 'g') && (p[2] == '<' || p[2] == '\'')) {
        char close = p[2] == '<' ? '>' : '\'';
        const char *n = p + 3, *e = strchr(n, close);
        if (e && e > n && !(*n >= '0' && *n <= '9') && *n != '-' && *n != '+') {
            /* A name may carry a nest level: \k<name+1>. */
            const char *lvl = n;
            while (lvl < e && *lvl != '+' && *lvl != '-') {
                lvl++;
            }
            const struct sl_grok_capture *c = capture_named(x, n, (size_t)(lvl - n));
            if (c) {
                char buf[48];
                int len = snprintf(buf, sizeof(buf), "\\%c%c", p[1], p[2]);
                emit(x, buf, (size_t)len);
                len = snprintf(buf, sizeof(buf), "g%zu", (size_t)(c - x->caps) + 1);
                emit(x, buf, (size_t)len);
                emit(x, lvl, (size_t)(e - lvl) + 1);
                return e + 1;
            }
        }
    }
    size_t n = p[1] ? 2 : 1;
    emit(x, p, n);
    return p + n;
}

static void expand_text(struct expand *x, const char *text)
{
    const char *p = text, *lit = text;
    while (*p && !x->failed) {
        const char *next = NULL;
        if (*p == '\\') {
            emit(x, lit, (size_t)(p - lit));
            next = copy_escape(x, p);
        } else if (*p == '[') {
            emit(x, lit, (size_t)(p - lit));
            next = copy_class(x, p);
        } else if (*p == '^') {
            emit(x, lit, (size_t)(p - lit));
            emit(x, x->caret_as_a ? "\\A" : "^", x->caret_as_a ? 2 : 1);
            x->carets++;
            next = p + 1;
        } else if (*p == '%' && p[1] == '{') {
            emit(x, lit, (size_t)(p - lit));
            next = expand_ref(x, p);
        } else if (p[0] == '(' && p[1] == '?' && p[2] == '#') {
            const char *e = strchr(p, ')');
            emit(x, lit, (size_t)(p - lit));
            next = e ? e + 1 : p + strlen(p);
            emit(x, p, (size_t)(next - p));
        } else if (p[0] == '(' && p[1] == '?' &&
                   ((p[2] == '<' && p[3] != '=' && p[3] != '!') || p[2] == '\'')) {
            char close = p[2] == '<' ? '>' : '\'';
            const char *f = p + 3, *e = strchr(f, close);
            if (!e || e == f) {
                fail(x, "malformed named group '%.*s'", (int)SL_MIN(strlen(p), 40), p);
                return;
            }
            char *field = sl_strndup(f, (size_t)(e - f));
            bool ok = valid_field(field);
            free(field);
            if (!ok) {
                fail(x, "invalid field reference '%.*s' in named group", (int)(e - f), f);
                return;
            }
            emit(x, lit, (size_t)(p - lit));
            open_capture(x, f, (size_t)(e - f), SL_GROK_STRING);
            next = e + 1;
        }
        if (next) {
            p = lit = next;
        } else {
            p++;
        }
    }
    emit(x, lit, (size_t)(p - lit));
}

static void free_caps(struct sl_grok_capture *caps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(caps[i].field);
    }
    free(caps);
}

void sl_grok_free(struct sl_grok *g)
{
    if (!g) {
        return;
    }
    if (g->re) {
        onig_free(g->re);
    }
    if (g->re_line) {
        onig_free(g->re_line);
    }
    if (g->re_head) {
        onig_free(g->re_head);
    }
    if (g->re_line_head) {
        onig_free(g->re_line_head);
    }
    free(g->source);
    free(g->expanded);
    free_caps(g->caps, g->ncaps);
    free(g);
}

/* Option groups ((?m), (?i-x:...)) could change what '.' means and comments
 * could hide anything: the tail rewrites below leave such patterns alone.
 * Conservative: an escaped character is skipped, a class is not. */
static bool has_option_group(const char *re, size_t len)
{
    for (size_t k = 0; k + 2 < len; k++) {
        if (re[k] == '\\') {
            k++;
        } else if (re[k] == '(' && re[k + 1] == '?' && strchr("imx-#", re[k + 2])) {
            return true;
        }
    }
    return false;
}

/*
 * A pattern that ends in a capture of '.*' (`... %{GREEDYDATA:rest}`, maybe
 * then '$'), outside every group and alternation, matches exactly where the
 * rest of it matches: '.' takes newlines too (MULTILINE), so the tail always
 * succeeds, takes the subject to its end, and does not change which path the
 * head takes. Searching for the head alone and giving the capture the rest
 * of the subject is the same result without Oniguruma pushing a backtrack
 * entry per character the '.*' crosses (~30 bytes each: a 10 MB line needs a
 * 300 MB match stack, beyond the stack limit). Returns the head's length, or
 * 0 when the shape does not hold.
 */
static size_t greedy_tail_head(const char *re, size_t len, size_t last_cap)
{
    char tail[40];
    int n = snprintf(tail, sizeof(tail), "(?<g%zu>.*)", last_cap);
    size_t tlen = (size_t)n, at;
    if (len > tlen && re[len - 1] == '$' && memcmp(re + len - 1 - tlen, tail, tlen) == 0) {
        at = len - 1 - tlen;
    } else if (len > tlen && memcmp(re + len - tlen, tail, tlen) == 0) {
        at = len - tlen;
    } else {
        return 0;
    }
    if (has_option_group(re, len)) {
        return 0;
    }
    int depth = 0, class_depth = 0;
    for (size_t i = 0; i < at; i++) {
        char c = re[i];
        if (c == '\\') {
            i++;
        } else if (class_depth > 0) {
            if (c == '[') {
                class_depth++;
            } else if (c == ']') {
                class_depth--;
            }
        } else if (c == '[') {
            class_depth = 1;
            /* A ']' first in a class (after an optional '^') is literal. */
            if (i + 1 < at && re[i + 1] == '^') {
                i++;
            }
            if (i + 1 < at && re[i + 1] == ']') {
                i++;
            }
        } else if (c == '(') {
            depth++;
        } else if (c == ')') {
            depth--;
        } else if (c == '|' && depth == 0) {
            return 0;
        }
    }
    return depth == 0 && class_depth == 0 ? at : 0;
}

/*
 * A pattern whose last capture is a lazy '.*?' followed only by closing
 * parentheses, one delimiter and closing parentheses again - `"%{DATA:ua}"` at
 * the end of ECS's HTTPD_COMBINEDLOG, `(?:-|%{DATA:x})"` - has nothing after the
 * delimiter that could fail: '.*?' stops at the first delimiter, which is what
 * `[^"]*` takes, without Oniguruma trying the rest of the pattern after every
 * character (a quantifier after a parenthesis, an anchor or an option group
 * that changes '.' keeps the pattern as it is). Rewrites b in place.
 */
static void lazy_tail_rewrite(struct sl_buf *b)
{
    static const struct {
        const char *delim, *cls;
    } delims[] = {{"\"", "[^\"]*"}, {"'", "[^']*"}, {"\\]", "[^\\]]*"}, {">", "[^>]*"}};
    const char *re = b->data;
    size_t i = b->len;
    while (i > 0 && re[i - 1] == ')') {
        i--;
    }
    size_t d, dlen = 0;
    for (d = 0; d < sizeof(delims) / sizeof(delims[0]); d++) {
        dlen = strlen(delims[d].delim);
        if (i > dlen && memcmp(re + i - dlen, delims[d].delim, dlen) == 0 &&
            (dlen == 2 || re[i - dlen - 1] != '\\')) {
            break;
        }
    }
    if (d == sizeof(delims) / sizeof(delims[0])) {
        return;
    }
    i -= dlen;
    size_t close = i;
    while (i > 0 && re[i - 1] == ')') {
        i--;
    }
    if (i == close || i < 4 || memcmp(re + i - 3, ".*?", 3) != 0 || re[i - 4] != '>') {
        return;  /* not a group closed right after '.*?' */
    }
    size_t at = i - 3, g = at - 1;  /* '.*?' and the '>' of "(?<gN>" before it */
    while (g > 0 && re[g - 1] >= '0' && re[g - 1] <= '9') {
        g--;
    }
    if (g < 4 || memcmp(re + g - 4, "(?<g", 4) != 0 || g == at - 1) {
        return;
    }
    if (has_option_group(re, b->len)) {
        return;
    }
    struct sl_buf out;
    sl_buf_init(&out, b->max);
    if (sl_buf_append(&out, re, at) != 0 || sl_buf_puts(&out, delims[d].cls) != 0 ||
        sl_buf_append(&out, re + at + 3, b->len - at - 3) != 0) {
        sl_buf_free(&out);
        return;  /* past the expansion limit: keep the pattern as it is */
    }
    sl_buf_free(b);
    *b = out;
}

static int compile_regex(const struct sl_buf *b, OnigRegex *re, char *err, size_t errlen)
{
    OnigErrorInfo einfo;
    /* Ruby's MULTILINE, as Logstash compiles grok: '.' also matches '\n', so
     * GREEDYDATA takes the rest of a multiline event (a stack trace) whole. */
    int rc = sl_onig_new(re, b->data, b->len, ONIG_OPTION_MULTILINE, ONIG_SYNTAX_RUBY, &einfo);
    if (rc != 0) {
        OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, rc, &einfo);
        snprintf(err, errlen, "invalid regex: %s", (const char *)msg);
        one_line(err);
        return SL_EINVAL;
    }
    return 0;
}

static void expand_init(struct expand *x, const struct sl_grok_lib *lib, bool named_only,
                        char *err, size_t errlen)
{
    memset(x, 0, sizeof(*x));
    x->lib = lib;
    x->named_only = named_only;
    x->err = err;
    x->errlen = errlen;
    sl_buf_init(&x->out, SL_GROK_MAX_EXPANDED);
}

static void expand_done(struct expand *x)
{
    free_caps(x->caps, x->ncaps);
    sl_buf_free(&x->out);
}

struct sl_grok *sl_grok_compile(const struct sl_grok_lib *lib, const char *pattern,
                                bool named_only, char *err, size_t errlen)
{
    struct expand x, xa;
    struct sl_grok *g = sl_calloc(1, sizeof(*g));
    expand_init(&x, lib, named_only, err, errlen);
    expand_init(&xa, lib, named_only, err, errlen);
    expand_text(&x, pattern);
    if (!x.failed) {
        lazy_tail_rewrite(&x.out);
    }
    if (x.failed || compile_regex(&x.out, &g->re, err, errlen) != 0) {
        goto fail;
    }
    if (x.carets > 0) {
        /* Ruby's '^' is a line anchor, and Oniguruma tries it at every offset
         * of the subject. In a subject without '\n' it can only mean the
         * start, so a second regex with '\A' (tried once) serves those. */
        xa.caret_as_a = true;
        expand_text(&xa, pattern);
        if (!xa.failed) {
            lazy_tail_rewrite(&xa.out);
        }
        if (xa.failed || compile_regex(&xa.out, &g->re_line, err, errlen) != 0) {
            goto fail;
        }
    }
    size_t head = x.ncaps ? greedy_tail_head(x.out.data, x.out.len, x.ncaps) : 0;
    if (head > 0) {
        struct sl_buf hb = {.data = x.out.data, .len = head};
        if (compile_regex(&hb, &g->re_head, err, errlen) != 0) {
            goto fail;
        }
        size_t hl = g->re_line ? greedy_tail_head(xa.out.data, xa.out.len, xa.ncaps) : 0;
        if (hl > 0) {
            hb = (struct sl_buf){.data = xa.out.data, .len = hl};
            if (compile_regex(&hb, &g->re_line_head, err, errlen) != 0) {
                goto fail;
            }
        } else if (g->re_line) {
            /* Cannot happen (the two expansions differ only in '^'); the
             * plain heads are still right, only slower. */
            onig_free(g->re_line);
            g->re_line = NULL;
        }
    }
    for (size_t i = 0; i < x.ncaps; i++) {
        char gname[32];
        int n = snprintf(gname, sizeof(gname), "g%zu", i + 1);
        int *nums = NULL;
        int k = onig_name_to_group_numbers(g->re, (const OnigUChar *)gname,
                                           (const OnigUChar *)gname + n, &nums);
        if (k != 1) {
            /* Cannot happen: every generated name is unique. */
            snprintf(err, errlen, "internal error: group %s not found", gname);
            goto fail;
        }
        x.caps[i].group = nums[0];
    }
    g->tail_group = g->re_head ? x.caps[x.ncaps - 1].group : 0;
    g->source = sl_strdup(pattern);
    g->expanded = sl_strndup(x.out.data, x.out.len);
    g->caps = x.caps;
    g->ncaps = x.ncaps;
    x.caps = NULL;
    x.ncaps = 0;
    expand_done(&x);
    expand_done(&xa);
    return g;
fail:
    expand_done(&x);
    expand_done(&xa);
    sl_grok_free(g);
    return NULL;
}

/* ---- matching ----------------------------------------------------------- */


int sl_grok_match(const struct sl_grok *g, const char *s, size_t len,
                  const struct sl_grok_limits *lim, const OnigRegion **region)
{
    struct sl_regex_scratch *t = sl_regex_scratch();
    onig_set_match_stack_limit_size_of_match_param(t->mp, lim ? lim->stack : 0);
    const OnigUChar *start = (const OnigUChar *)s, *end = start + len;
    bool line = g->re_line && !memchr(s, '\n', len);
    OnigRegex re = g->re_head ? (line ? g->re_line_head : g->re_head)
                              : (line ? g->re_line : g->re);
    int rc = sl_onig_search(re, start, end, start, t->region, t->mp, lim ? lim->time_ms : 0);
    if (region) {
        *region = t->region;
    }
    if (rc >= 0) {
        if (g->re_head) {
            /* The tail capture (see greedy_tail_head): the rest of the subject. */
            OnigRegion *r = t->region;
            if (r->num_regs <= g->tail_group &&
                onig_region_resize(r, g->tail_group + 1) != ONIG_NORMAL) {
                return SL_ELIMIT;
            }
            r->beg[g->tail_group] = r->end[0];
            r->end[g->tail_group] = (int)len;
            r->end[0] = (int)len;
        }
        return 1;
    }
    return rc == ONIG_MISMATCH ? 0 : SL_ELIMIT;
}
