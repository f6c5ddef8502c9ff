/*
 * cli.c - command-line parsing shared by sluice-shipper and sluice-aggregator.
 */
#include "sluice/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f, const char *program, const char *default_config)
{
    fprintf(f,
            "usage: %s [-c FILE] [-t] [-V] [--log-level LEVEL] [--log-format FORMAT]\n"
            "  -c, --config FILE     YAML configuration (default %s)\n"
            "  -t, --test-config     check the configuration and exit\n"
            "  -V, --version         print the version and exit\n"
            "      --log-level L     debug | info | warn | error (default info)\n"
            "      --log-format F    text | json (default text)\n",
            program, default_config);
}

void sl_cli_parse(int argc, char **argv, const char *program, const char *default_config,
                  struct sl_cli *out)
{
    enum { OPT_LEVEL = 256, OPT_FORMAT };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test-config", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"log-level", required_argument, NULL, OPT_LEVEL},
        {"log-format", required_argument, NULL, OPT_FORMAT},
        {NULL, 0, NULL, 0},
    };
    out->config = default_config;
    out->test_config = false;
    out->level = SL_LOG_INFO;
    out->format = SL_LOG_TEXT;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:tVh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            out->config = optarg;
            break;
        case 't':
            out->test_config = true;
            break;
        case 'V':
            printf("%s %s\n", program, SL_VERSION);
            exit(0);
        case 'h':
            usage(stdout, program, default_config);
            exit(0);
        case OPT_LEVEL: {
            int l = sl_log_level_parse(optarg);
            if (l < 0) {
                fprintf(stderr, "%s: unknown log level '%s'\n", program, optarg);
                exit(2);
            }
            out->level = (enum sl_log_level)l;
            break;
        }
        case OPT_FORMAT:
            if (strcmp(optarg, "text") == 0) {
                out->format = SL_LOG_TEXT;
            } else if (strcmp(optarg, "json") == 0) {
                out->format = SL_LOG_JSON;
            } else {
                fprintf(stderr, "%s: unknown log format '%s'\n", program, optarg);
                exit(2);
            }
            break;
        case ':':
            fprintf(stderr, "%s: option '%s' needs a value\n", program, argv[optind - 1]);
            usage(stderr, program, default_config);
            exit(2);
        default:
            fprintf(stderr, "%s: unknown option '%s'\n", program, argv[optind - 1]);
            usage(stderr, program, default_config);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", program, argv[optind]);
        usage(stderr, program, default_config);
        exit(2);
    }
    sl_log_init(program, out->level, out->format);
}
