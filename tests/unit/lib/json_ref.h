/*
 * json_ref.h - the previous lib/json.c (json_ref.inc, kept verbatim) with every
 * exported name renamed ref_*, so that a test or a fuzzer can compare the
 * current code with it in one program. Include it once, after sluice/json.h.
 */
#ifndef SLUICE_TEST_JSON_REF_H
#define SLUICE_TEST_JSON_REF_H

#define sl_json_parse ref_json_parse
#define sl_json_parse_arena ref_json_parse_arena
#define sl_json_parse_doc ref_json_parse_doc
#define sl_json_put_doc ref_json_put_doc
#define sl_json_scan ref_json_scan
#define sl_json_put_str ref_json_put_str
#define sl_json_write ref_json_write
#define sl_json_write_pretty ref_json_write_pretty
#define sl_utf8_valid_prefix ref_utf8_valid_prefix
int sl_json_parse(const char *p, size_t len, struct sl_value *out,
                  const struct sl_json_limits *limits, char *err, size_t errlen);
int sl_json_parse_arena(const char *p, size_t len, struct sl_value *out, struct sl_arena *a,
                        const struct sl_json_limits *limits, char *err, size_t errlen);
int sl_json_parse_doc(const char *p, size_t len, struct sl_value *out, struct sl_arena *a,
                      const struct sl_json_limits *limits, const char *cut_key,
                      struct sl_json_doc *doc, char *err, size_t errlen);
int sl_json_put_doc(struct sl_buf *b, const char *p, size_t len, const struct sl_json_doc *doc,
                    bool cut);
bool sl_json_scan(const char *p, size_t len, const struct sl_json_limits *limits,
                  const char *cut_key, struct sl_json_member *members, size_t *nmembers,
                  struct sl_json_doc *doc);
int sl_json_put_str(struct sl_buf *b, const char *s, size_t len);
int sl_json_write(struct sl_buf *b, const struct sl_value *v, const char *skip_key);
int sl_json_write_pretty(struct sl_buf *b, const struct sl_value *v);
size_t sl_utf8_valid_prefix(const char *s, size_t len);
#include "json_ref.inc"
#undef sl_json_parse
#undef sl_json_parse_arena
#undef sl_json_parse_doc
#undef sl_json_put_doc
#undef sl_json_scan
#undef sl_json_put_str
#undef sl_json_write
#undef sl_json_write_pretty
#undef sl_utf8_valid_prefix

#endif
