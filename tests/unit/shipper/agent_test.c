/*
 * agent_test.c - agent.ephemeral_id's UUIDs and agent.id's meta.json: kept
 * across restarts, made again when removed, replaced when corrupt.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "sluice/log.h"
#include "test.h"

static char tmpdir[64];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static size_t read_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    if (f) {
        n = fread(out, 1, cap - 1, f);
        fclose(f);
    }
    out[n] = '\0';
    return n;
}

TEST(uuid_v4_is_rfc4122_text_and_random)
{
    char a[AGENT_UUID_LEN + 1], b[AGENT_UUID_LEN + 1];
    for (int i = 0; i < 200; i++) {
        CHECK_INT(agent_uuid_v4(a), 0);
        CHECK_INT(agent_uuid_v4(b), 0);
        CHECK_INT(strlen(a), 36);
        CHECK(agent_uuid_valid(a, strlen(a)));
        CHECK(strcmp(a, b) != 0);
        /* xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx, lower case */
        CHECK(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
        CHECK(a[14] == '4');
        CHECK(strchr("89ab", a[19]) != NULL);
        for (size_t k = 0; k < 36; k++) {
            CHECK(a[k] == '-' || (a[k] >= '0' && a[k] <= '9') || (a[k] >= 'a' && a[k] <= 'f'));
        }
    }
}

TEST(uuid_valid_takes_only_uuid_text)
{
    CHECK(agent_uuid_valid("8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1aa", 36));
    CHECK(agent_uuid_valid("8F0C2A44-52A5-4B43-A2D1-6E1BB3F1C1AA", 36));
    CHECK(!agent_uuid_valid("8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1a", 35));
    CHECK(!agent_uuid_valid("8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1aa0", 37));
    CHECK(!agent_uuid_valid("8f0c2a44x52a5-4b43-a2d1-6e1bb3f1c1aa", 36));
    CHECK(!agent_uuid_valid("8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1ag", 36));
    CHECK(!agent_uuid_valid("", 0));
}

TEST(agent_id_is_kept_across_restarts_and_made_again_when_removed)
{
    char dir[128], meta[192], text[512];
    snprintf(dir, sizeof(dir), "%s/reg", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(meta, sizeof(meta), "%s/meta.json", dir);
    char first[AGENT_UUID_LEN + 1], again[AGENT_UUID_LEN + 1], fresh[AGENT_UUID_LEN + 1];
    CHECK_INT(agent_id_load(dir, first), 0);
    CHECK(agent_uuid_valid(first, strlen(first)));
    /* Filebeat's meta.json shape: {"uuid":...,"first_start":...} */
    size_t n = read_file(meta, text, sizeof(text));
    char want[256];
    snprintf(want, sizeof(want), "{\"uuid\":\"%s\",\"first_start\":\"", first);
    CHECK(n > strlen(want) && strncmp(text, want, strlen(want)) == 0);
    CHECK(n >= 2 && text[n - 2] == '}' && text[n - 1] == '\n');
    CHECK(access(meta, F_OK) == 0);
    snprintf(want, sizeof(want), "%s.tmp", meta);
    CHECK(access(want, F_OK) != 0);  /* no temp file left */

    CHECK_INT(agent_id_load(dir, again), 0);
    CHECK_STR(again, first);
    char before[512];
    strcpy(before, text);
    read_file(meta, text, sizeof(text));
    CHECK_STR(text, before);  /* a restart does not rewrite it */

    CHECK(unlink(meta) == 0);
    CHECK_INT(agent_id_load(dir, fresh), 0);
    CHECK(agent_uuid_valid(fresh, strlen(fresh)));
    CHECK(strcmp(fresh, first) != 0);
    CHECK_INT(agent_id_load(dir, again), 0);
    CHECK_STR(again, fresh);
}

TEST(agent_id_takes_an_existing_file_and_replaces_a_corrupt_one)
{
    char dir[128], meta[192], text[512];
    snprintf(dir, sizeof(dir), "%s/reg2", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(meta, sizeof(meta), "%s/meta.json", dir);
    char id[AGENT_UUID_LEN + 1];
    /* One written by Filebeat (or by hand) is taken as it is. */
    write_file(meta, "{\"uuid\":\"8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1aa\","
                     "\"first_start\":\"2026-01-02T03:04:05.678Z\"}\n");
    CHECK_INT(agent_id_load(dir, id), 0);
    CHECK_STR(id, "8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1aa");

    static const char *const bad[] = {
        "", "{", "not json", "[]", "{\"uuid\":42}", "{\"uuid\":\"not-a-uuid\"}",
        "{\"first_start\":\"2026-01-02T03:04:05.678Z\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(meta, bad[i]);
        CHECK_INT(agent_id_load(dir, id), 0);
        CHECK(agent_uuid_valid(id, strlen(id)));
        CHECK(strcmp(id, "8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1aa") != 0);
        read_file(meta, text, sizeof(text));
        char want[64];
        snprintf(want, sizeof(want), "{\"uuid\":\"%s\"", id);
        CHECK(strncmp(text, want, strlen(want)) == 0);
    }
    /* Longer than any meta.json: not read whole, replaced. */
    char *big = malloc(10000);
    memset(big, ' ', 9999);
    big[9999] = '\0';
    write_file(meta, big);
    free(big);
    CHECK_INT(agent_id_load(dir, id), 0);
    char again[AGENT_UUID_LEN + 1];
    CHECK_INT(agent_id_load(dir, again), 0);
    CHECK_STR(again, id);
}

TEST(agent_id_unsaved_is_still_an_id)
{
    char dir[128];
    /* A directory that does not exist: nothing can be saved, the run goes on. */
    snprintf(dir, sizeof(dir), "%s/missing/deeper", tmpdir);
    char id[AGENT_UUID_LEN + 1];
    CHECK_INT(agent_id_load(dir, id), 0);
    CHECK(agent_uuid_valid(id, strlen(id)));
}

int main(void)
{
    sl_log_init("agent_test", SL_LOG_ERROR, SL_LOG_TEXT);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-agent-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(uuid_v4_is_rfc4122_text_and_random);
    RUN(uuid_valid_takes_only_uuid_text);
    RUN(agent_id_is_kept_across_restarts_and_made_again_when_removed);
    RUN(agent_id_takes_an_existing_file_and_replaces_a_corrupt_one);
    RUN(agent_id_unsaved_is_still_an_id);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
    return TEST_SUMMARY();
}
