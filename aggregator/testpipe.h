/*
 * testpipe.h - `sluice-aggregator --test-pipeline`: the grok debugger of the
 * command line. Reads lines, makes each an event as a shipper would
 * ({"@timestamp": now, "message": line}, or the line itself when it is a JSON
 * object and json is set), runs the configuration's filters on it exactly as
 * the pipeline does (conditions, tags, drops) and prints every event that
 * comes out as indented JSON. Outputs are checked but never opened.
 */
#ifndef SLUICE_AGG_TESTPIPE_H
#define SLUICE_AGG_TESTPIPE_H

#include <stdbool.h>
#include <stdio.h>

/*
 * Runs config's filters over the lines of in, printing to out; errors go to
 * err. Returns the process exit code: 0, 2 for a configuration error, 1 when
 * a line could not be read as an event in json mode (it is reported and
 * skipped; the rest still runs).
 */
int agg_test_pipeline(const char *config, bool json, FILE *in, FILE *out, FILE *err);

#endif
