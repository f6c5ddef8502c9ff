/*
 * cli.h - the command line both daemons share (docs/configuration.md): -c/--config,
 * -t/--test-config, -V/--version, --log-level, --log-format.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include "log.h"

struct sl_cli {
    const char *config;       /* -c, or the daemon's default path */
    bool test_config;         /* -t */
    enum sl_log_level level;
    enum sl_log_format format;
};

/*
 * Parses argv. Handles -V and --help itself (prints, exits 0) and usage
 * errors (prints, exits 2). Initialises logging from the result.
 */
void sl_cli_parse(int argc, char **argv, const char *program, const char *default_config,
                  struct sl_cli *out);

#endif
