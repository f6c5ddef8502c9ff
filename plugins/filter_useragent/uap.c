/*
 * uap.c - uap-core's regexes.yaml, compiled, and the parse that runs it.
 *
 * The file is a map of three lists (user_agent_parsers, os_parsers,
 * device_parsers) of maps: `regex`, an optional `regex_flag: 'i'`, and
 * replacements per output (family_replacement, v1_replacement ...,
 * os_replacement, os_v1_replacement ..., device_replacement). A replacement
 * may name groups ("$1 for ArcGIS"); without one, output k takes group k+1.
 * Results are trimmed, and an empty one is absent, as uap-core's
 * specification says. brand_replacement and model_replacement are read past:
 * the useragent filter does not write them (nor does Logstash's).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "sluice/common.h"
#include "sluice/regex.h"
#include "uap.h"

/* Outputs of one list: the user agent's, the os's, the device's. */
#define UAP_OUTS 5

struct rule {
    OnigRegex re;
    char *repl[UAP_OUTS];  /* NULL: the group */
};

struct list {
    struct rule *r;
    size_t n;
};

enum { L_UA, L_OS, L_DEVICE, L_N };

struct uap {
    struct list l[L_N];
};

/* The replacement keys of each list, by output. */
static const char *const repl_keys[L_N][UAP_OUTS] = {
    {"family_replacement", "v1_replacement", "v2_replacement", "v3_replacement",
     "v4_replacement"},
    {"os_replacement", "os_v1_replacement", "os_v2_replacement", "os_v3_replacement",
     "os_v4_replacement"},
    {"device_replacement", NULL, NULL, NULL, NULL},
};
static const char *const list_keys[L_N] = {"user_agent_parsers", "os_parsers",
                                           "device_parsers"};
/* Where each list's outputs go in a uap_result. */
static const int first_field[L_N] = {UAP_NAME, UAP_OS, UAP_DEVICE};
static const int nouts[L_N] = {5, 5, 1};

/* A regexes.yaml larger than this is refused: the built-in one is ~250 KiB. */
#define UAP_MAX_FILE (16u << 20)

static const char *scalar(yaml_node_t *n, size_t *len)
{
    if (!n || n->type != YAML_SCALAR_NODE) {
        return NULL;
    }
    *len = n->data.scalar.length;
    return (const char *)n->data.scalar.value;
}

static void free_list(struct list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->r[i].re) {
            onig_free(l->r[i].re);
        }
        for (int k = 0; k < UAP_OUTS; k++) {
            free(l->r[i].repl[k]);
        }
    }
    free(l->r);
    l->r = NULL;
    l->n = 0;
}

/* Compiles one rule (a map) of list li into *r. 0, or SL_EINVAL with err set. */
static int load_rule(yaml_document_t *d, yaml_node_t *m, int li, size_t idx, struct rule *r,
                     const char *name, char *err, size_t errlen)
{
    const char *re = NULL, *flag = NULL;
    size_t relen = 0, flen = 0;
    if (m->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "%s: %s[%zu] (line %zu) is not a map", name, list_keys[li], idx,
                 m->start_mark.line + 1);
        return SL_EINVAL;
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        size_t klen, vlen;
        const char *k = scalar(yaml_document_get_node(d, p->key), &klen);
        const char *v = scalar(yaml_document_get_node(d, p->value), &vlen);
        if (!k) {
            continue;
        }
        if (!v) {
            snprintf(err, errlen, "%s: line %zu: '%s' must be a string", name,
                     m->start_mark.line + 1, k);
            return SL_EINVAL;
        }
        if (strcmp(k, "regex") == 0) {
            re = v;
            relen = vlen;
        } else if (strcmp(k, "regex_flag") == 0) {
            flag = v;
            flen = vlen;
        } else {
            for (int o = 0; o < UAP_OUTS; o++) {
                if (repl_keys[li][o] && strcmp(k, repl_keys[li][o]) == 0) {
                    free(r->repl[o]);  /* a key given twice: the last wins */
                    r->repl[o] = sl_strndup(v, vlen);
                }
            }
        }
    }
    if (!re) {
        snprintf(err, errlen, "%s: line %zu: a rule without 'regex'", name,
                 m->start_mark.line + 1);
        return SL_EINVAL;
    }
    OnigOptionType opts = ONIG_OPTION_NONE;
    if (flag && flen == 1 && flag[0] == 'i') {
        opts |= ONIG_OPTION_IGNORECASE;
    }
    OnigErrorInfo einfo;
    int rc = sl_onig_new(&r->re, re, relen, opts, ONIG_SYNTAX_PERL_NG, &einfo);
    if (rc != 0) {
        OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, rc, &einfo);
        r->re = NULL;
        snprintf(err, errlen, "%s: line %zu: regex '%.200s': %s", name, m->start_mark.line + 1,
                 re, (const char *)msg);
        return SL_EINVAL;
    }
    return 0;
}

static int load_list(yaml_document_t *d, yaml_node_t *seq, int li, struct list *l,
                     const char *name, char *err, size_t errlen)
{
    if (seq->type != YAML_SEQUENCE_NODE) {
        snprintf(err, errlen, "%s: '%s' must be a list", name, list_keys[li]);
        return SL_EINVAL;
    }
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    l->r = sl_calloc(n ? n : 1, sizeof(*l->r));
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *m = yaml_document_get_node(d, seq->data.sequence.items.start[i]);
        l->n = i + 1;
        if (!m || load_rule(d, m, li, i, &l->r[i], name, err, errlen) != 0) {
            return SL_EINVAL;
        }
    }
    return 0;
}

struct uap *uap_new(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    struct uap *p = sl_calloc(1, sizeof(*p));
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_doc = false;
    if (len > UAP_MAX_FILE) {
        snprintf(err, errlen, "%s: larger than %u bytes", name, UAP_MAX_FILE);
        goto fail;
    }
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto fail;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s: line %zu: %s", name, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        goto fail;
    }
    yaml_parser_delete(&parser);
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "%s: not a map of user_agent_parsers, os_parsers, device_parsers",
                 name);
        goto fail;
    }
    bool seen[L_N] = {false};
    for (yaml_node_pair_t *q = root->data.mapping.pairs.start; q < root->data.mapping.pairs.top;
         q++) {
        size_t klen;
        const char *k = scalar(yaml_document_get_node(&doc, q->key), &klen);
        for (int li = 0; k && li < L_N; li++) {
            if (strcmp(k, list_keys[li]) == 0 && !seen[li]) {
                seen[li] = true;
                if (load_list(&doc, yaml_document_get_node(&doc, q->value), li, &p->l[li], name,
                              err, errlen) != 0) {
                    goto fail;
                }
            }
        }
    }
    if (!seen[L_UA]) {
        snprintf(err, errlen, "%s: no user_agent_parsers", name);
        goto fail;
    }
    yaml_document_delete(&doc);
    return p;
fail:
    if (have_doc) {
        yaml_document_delete(&doc);
    }
    uap_free(p);
    return NULL;
}

void uap_free(struct uap *p)
{
    if (!p) {
        return;
    }
    for (int li = 0; li < L_N; li++) {
        free_list(&p->l[li]);
    }
    free(p);
}

size_t uap_rules(const struct uap *p)
{
    return p->l[L_UA].n + p->l[L_OS].n + p->l[L_DEVICE].n;
}

void uap_result_clear(struct uap_result *r)
{
    for (int k = 0; k < UAP_NFIELDS; k++) {
        free(r->f[k]);
        r->f[k] = NULL;
    }
}

/* ---- matching ---- */


/* s trimmed of ASCII spaces, as a heap string; NULL when nothing is left. */
static char *trimmed(const char *s, size_t n)
{
    while (n && isspace((unsigned char)s[0])) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    return n ? sl_strndup(s, n) : NULL;
}

/* Group g of the last match (NULL when it took part in none or is empty). */
static char *group(const OnigRegion *rg, const char *s, int g)
{
    if (g >= rg->num_regs || rg->beg[g] < 0 || rg->end[g] <= rg->beg[g]) {
        return NULL;
    }
    return sl_strndup(s + rg->beg[g], (size_t)(rg->end[g] - rg->beg[g]));
}

/* A replacement with its "$N" filled from the match (a group that did not
 * take part gives ""), trimmed. */
static char *expand(const char *repl, const OnigRegion *rg, const char *s)
{
    size_t cap = strlen(repl) + 1, n = 0;
    for (const char *p = repl; *p; p++) {
        if (p[0] == '$' && p[1] >= '1' && p[1] <= '9') {
            int g = p[1] - '0';
            if (g < rg->num_regs && rg->beg[g] >= 0) {
                cap += (size_t)(rg->end[g] - rg->beg[g]);
            }
        }
    }
    char *out = sl_malloc(cap);
    for (const char *p = repl; *p; p++) {
        if (p[0] == '$' && p[1] >= '1' && p[1] <= '9') {
            int g = p[1] - '0';
            if (g < rg->num_regs && rg->beg[g] >= 0 && rg->end[g] > rg->beg[g]) {
                size_t gl = (size_t)(rg->end[g] - rg->beg[g]);
                memcpy(out + n, s + rg->beg[g], gl);
                n += gl;
            }
            p++;
        } else {
            out[n++] = *p;
        }
    }
    char *t = trimmed(out, n);
    free(out);
    return t;
}

/* CPU time this thread has used, in ms: a parse's total is bounded in CPU
 * time, which a busy machine does not eat (each search's own budget is the
 * wall clock's, as every user regex's). */
static uint64_t cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Runs list l over s until a rule matches; fills r's fields of that list.
 * 1: matched, 0: none did, SL_ELIMIT: out of time (deadline: cpu_ms()).
 */
static int run_list(const struct list *l, int li, const char *s, size_t len, unsigned budget_ms,
                    uint64_t deadline, struct uap_result *r)
{
    struct sl_regex_scratch *t = sl_regex_scratch();
    onig_set_match_stack_limit_size_of_match_param(t->mp, SL_REGEX_STACK_LIMIT);
    const OnigUChar *start = (const OnigUChar *)s, *end = start + len;
    for (size_t i = 0; i < l->n; i++) {
        /* Each search reads the clock anyway; the whole parse is bounded too. */
        if ((i & 63) == 63 && cpu_ms() > deadline) {
            return SL_ELIMIT;
        }
        int rc = sl_onig_search(l->r[i].re, start, end, start, t->region, t->mp, budget_ms);
        if (rc == ONIG_MISMATCH) {
            continue;
        }
        if (rc < 0) {
            return SL_ELIMIT;
        }
        for (int o = 0; o < nouts[li]; o++) {
            const char *repl = l->r[i].repl[o];
            r->f[first_field[li] + o] = repl ? expand(repl, t->region, s)
                                             : group(t->region, s, o + 1);
        }
        return 1;
    }
    return 0;
}

int uap_parse(const struct uap *p, const char *s, size_t len, unsigned budget_ms,
              struct uap_result *r)
{
    memset(r, 0, sizeof(*r));
    uint64_t deadline = cpu_ms() + 4u * (budget_ms ? budget_ms : SL_REGEX_BUDGET_MS);
    for (int li = 0; li < L_N; li++) {
        int rc = run_list(&p->l[li], li, s, len, budget_ms, deadline, r);
        if (rc < 0) {
            uap_result_clear(r);
            return SL_ELIMIT;
        }
        if (!r->f[first_field[li]]) {
            r->f[first_field[li]] = sl_strdup("Other");
        }
    }
    return 0;
}
