/*
 * container.h - the lines container runtimes write (docs/shipper.md, Container
 * logs): Docker's json-file lines and CRI lines, and the Kubernetes names the
 * kubelet puts in a log file's path. Pure functions: no I/O, no state.
 */
#ifndef SHIPPER_CONTAINER_H
#define SHIPPER_CONTAINER_H

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/common.h"

enum ctr_format { CTR_AUTO, CTR_DOCKER, CTR_CRI };
enum ctr_stream { CTR_STDOUT = 0, CTR_STDERR = 1, CTR_NSTREAMS = 2 };

/* One physical line, parsed. */
struct ctr_line {
    const char *msg;          /* the content: in the line (CRI) or in the arena (Docker) */
    size_t len;               /* without Docker's trailing newline */
    enum ctr_stream stream;
    bool partial;             /* more of the same message follows (CRI P, Docker: no newline) */
    int64_t ts_ms;            /* the runtime's time, epoch ms */
    enum ctr_format format;   /* what the line turned out to be */
};

/*
 * Parses line[0..len) as fmt says (CTR_AUTO: a line starting with '{' is
 * Docker's, anything else CRI). Docker content is unescaped into a, which
 * must outlive the use of out->msg. 0, or SL_EINVAL when the line is not of
 * the format (no stream, no time, bad JSON).
 */
int ctr_parse(enum ctr_format fmt, const char *line, size_t len, struct sl_arena *a,
              struct ctr_line *out);

/* The Kubernetes names in a kubelet log path; empty strings when unknown. */
#define K8S_NAME_MAX 254
struct k8s_meta {
    char pod[K8S_NAME_MAX], ns[K8S_NAME_MAX], container[K8S_NAME_MAX];
    char uid[64], id[72];
};

/*
 * Fills m from path when it has one of the kubelet's layouts (the directory
 * in front does not matter):
 *   .../<pod>_<namespace>_<container>-<64 hex id>.log      (/var/log/containers)
 *   .../<namespace>_<pod>_<uid>/<container>/<n>.log[.*]    (/var/log/pods)
 * False when it has neither.
 */
bool k8s_from_path(const char *path, struct k8s_meta *m);

/*
 * Appends the members ,"kubernetes":{...},"container":{...} for m (only the
 * names it has); runtime ("docker", "cri") goes to container.runtime when
 * not NULL. 0 or SL_ELIMIT.
 */
int k8s_put_json(struct sl_buf *b, const struct k8s_meta *m, const char *runtime);

#endif
