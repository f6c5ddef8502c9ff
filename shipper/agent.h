/*
 * agent.h - who sent an event, as Filebeat says it: agent.id, a random UUID
 * made on the first start and kept in <registry.path>/meta.json (Filebeat's
 * data/meta.json), so it survives restarts and upgrades; and agent.ephemeral_id,
 * a new random UUID per process start. docs/operations.md, Agent identity.
 */
#ifndef SHIPPER_AGENT_H
#define SHIPPER_AGENT_H

#include <stddef.h>

#include "sluice/common.h"

#define AGENT_UUID_LEN 36
#define AGENT_META_FILE "meta.json"

/* A random (version 4, RFC 4122) UUID in its 36-character lower-case text,
 * NUL-terminated. 0, or SL_EIO when the kernel gave no random bytes. */
int agent_uuid_v4(char out[AGENT_UUID_LEN + 1]);

/* True when s[0..len) is a UUID's 36-character text (any version, either case). */
bool agent_uuid_valid(const char *s, size_t len);

/*
 * agent.id from dir/meta.json, made and saved there when the file is missing;
 * one that cannot be read or parsed is replaced, with a warning. Saving is
 * crash-safe (temp file, fsync, rename, fsync of the directory); when it
 * fails the id is still used for this run, with a warning, and a new one is
 * made on the next start. 0, or SL_EIO when no id could be made at all.
 */
int agent_id_load(const char *dir, char out[AGENT_UUID_LEN + 1]);

#endif
