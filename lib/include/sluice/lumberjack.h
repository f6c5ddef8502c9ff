/*
 * lumberjack.h - the Lumberjack (Beats) protocol codec, v1 and v2, with the
 * 'C' (zlib) compressed frame and sluice's 'Z' (zstd) and 'S' (zstd stream)
 * extensions. Pure codec: no sockets. See docs/protocol.md for the wire format.
 *
 * Server side: feed bytes as they arrive (split at any boundary) and pull
 * frames; compressed frames are inflated inside and their inner frames are
 * returned one by one. v1 'D' (key/value) frames are returned as JSON objects
 * of strings, so callers see one event format.
 *
 * Client side: encode windows, JSON frames and compressed wrappers; parse ACKs.
 */
#ifndef SLUICE_LUMBERJACK_H
#define SLUICE_LUMBERJACK_H

#include "buf.h"
#include "common.h"

#define SL_LJ_V1 '1'
#define SL_LJ_V2 '2'
#define SL_LJ_WINDOW 'W'
#define SL_LJ_JSON 'J'
#define SL_LJ_DATA 'D'
#define SL_LJ_COMPRESSED 'C'
#define SL_LJ_ZSTD 'Z'
#define SL_LJ_ZSTREAM 'S'
#define SL_LJ_ACK 'A'

enum sl_lj_compression { SL_LJ_NONE = 0, SL_LJ_ZLIB, SL_LJ_ZSTDC };

struct sl_lj_limits {
    uint32_t max_window;     /* events announced by one W frame; 0 -> 10000 */
    uint32_t max_frame;      /* bytes of one frame's payload (J, D or compressed); 0 -> 64 MiB */
    uint64_t max_inflated;   /* inflated bytes held at once: the largest frame inside a
                              * compressed block (blocks inflate a piece at a time, any
                              * total size); 0 -> 256 MiB */
};

/* A decoded frame. data/len point into the decoder and stay valid only until
 * the next sl_lj_decoder_next() or _feed() call. */
struct sl_lj_frame {
    char version;      /* '1' or '2' */
    char type;         /* SL_LJ_WINDOW or SL_LJ_JSON (D frames are returned as JSON);
                        * SL_LJ_COMPRESSED or SL_LJ_ZSTD for a block kept whole */
    uint32_t value;    /* WINDOW: announced event count; JSON: sequence number;
                        * a kept block: its length */
    const char *data;  /* JSON: the event's JSON text; a kept block: its payload */
    size_t len;
    bool compressed;   /* came from inside a C or Z frame */
};

struct sl_lj_decoder;

struct sl_lj_decoder *sl_lj_decoder_new(const struct sl_lj_limits *limits);
void sl_lj_decoder_free(struct sl_lj_decoder *d);

/* Appends received bytes. SL_ELIMIT when buffered bytes would pass max_frame + 16. */
int sl_lj_decoder_feed(struct sl_lj_decoder *d, const void *p, size_t n);
/*
 * Produces the next frame: 1 when *f is filled, 0 when more bytes are needed,
 * or a negative error (SL_EPROTO bad version/type/length/zlib/zstd, SL_ELIMIT
 * a limit). After an error the decoder is unusable; the connection should be
 * closed. sl_lj_decoder_error() says why in words.
 */
int sl_lj_decoder_next(struct sl_lj_decoder *d, struct sl_lj_frame *f);
const char *sl_lj_decoder_error(const struct sl_lj_decoder *d);
/*
 * True while the decoder holds the open zstd stream of 'S' blocks: the next
 * 'S' block continues it, so this decoder (not a fresh one) must read the
 * rest of the connection. docs/protocol.md §6.
 */
bool sl_lj_decoder_stream_open(const struct sl_lj_decoder *d);
/*
 * For an idle connection: releases every buffer and compression state that
 * the next frame does not need (all of them unless an 'S' stream is open, whose
 * zstd window stays). Does nothing while bytes are buffered or a frame is
 * under way. The decoder stays usable; the last frame's data does not.
 */
void sl_lj_decoder_trim(struct sl_lj_decoder *d);
/*
 * While keep is true, the next C or Z frame read from the wire is returned
 * whole (type SL_LJ_COMPRESSED or SL_LJ_ZSTD, data/len its compressed
 * payload, checked against max_frame only) instead of being inflated, so that
 * another thread may inflate it with sl_lj_decoder_open_block() on a decoder
 * of its own. S blocks belong to the connection's stream and are always
 * inflated here.
 */
void sl_lj_decoder_keep_blocks(struct sl_lj_decoder *d, bool keep);
/*
 * Makes the decoder return the frames inside a C or Z block p[0..len) (a
 * payload as a kept block has it; copied) before anything else it holds, with
 * the checks and limits of a block read from the wire. The decoder must be at
 * a frame boundary outside any block (SL_EINVAL otherwise). Returns 0 or an
 * error, sticky like those of sl_lj_decoder_next().
 */
int sl_lj_decoder_open_block(struct sl_lj_decoder *d, char type, const void *p, size_t len);
/*
 * At most how many bytes a kept block inflates to: the content size a Z
 * block's zstd frame declares (its decoding fails on any other size), else
 * UINT64_MAX (zlib says nothing).
 */
uint64_t sl_lj_block_content_size(char type, const void *p, size_t len);
/* Bytes buffered but not yet decoded (for memory accounting). */
size_t sl_lj_decoder_buffered(const struct sl_lj_decoder *d);
/* Raw input bytes fed but not yet decoded (what counts against max_frame + 16 in feed). */
size_t sl_lj_decoder_input(const struct sl_lj_decoder *d);

/* Encoding (appends to out; each returns 0 or SL_ELIMIT from the buffer). */
int sl_lj_put_window(struct sl_buf *out, char version, uint32_t count);
int sl_lj_put_json(struct sl_buf *out, uint32_t seq, const char *json, size_t len);
int sl_lj_put_ack(struct sl_buf *out, char version, uint32_t seq);
/*
 * Appends one compressed frame ('2C' zlib or '2Z' zstd) holding frames[0..len),
 * which must be whole encoded frames. level: zlib 1..9, zstd 1..19 (0 = default).
 * Returns 0, SL_EINVAL (bad kind) or SL_EIO (compressor failure).
 */
int sl_lj_put_compressed(struct sl_buf *out, enum sl_lj_compression kind, int level,
                         const char *frames, size_t len);
/*
 * The inverse, for a sender's own blocks: frame[0..flen) is one whole '2C' or
 * '2Z' frame that must inflate to exactly len bytes, written to out. Returns 0,
 * or SL_EPROTO for anything else (no partial output is meaningful).
 */
int sl_lj_uncompress(const char *frame, size_t flen, char *out, size_t len);

/*
 * The client side of a connection-scoped zstd stream ('S' blocks): one zstd
 * context whose history runs from window to window, so a window does not
 * relearn the keys and values the previous ones held. One per connection;
 * reset it for every new connection, so that its first block starts a zstd
 * frame that a fresh decoder reads. The context is created at the first block.
 */
struct sl_lj_zstream;

/* level: zstd 1..19, 0 = zstd's default. NULL for a level out of range. */
struct sl_lj_zstream *sl_lj_zstream_new(int level);
void sl_lj_zstream_free(struct sl_lj_zstream *z);
/* Forgets the history: the next block starts a new zstd frame. */
void sl_lj_zstream_reset(struct sl_lj_zstream *z);
/*
 * Appends one '2S' block holding frames[0..len) (whole encoded frames, len >= 1),
 * flushed so that the receiver can decode all of it now. Returns 0, SL_EINVAL
 * (len 0), SL_ELIMIT (the buffer's max) or SL_EIO. After an error the stream
 * is unusable until reset, and the connection it fed must be closed: the
 * receiver's history no longer matches.
 */
int sl_lj_put_zstream(struct sl_buf *out, struct sl_lj_zstream *z, const char *frames,
                      size_t len);

/* Client side: parses one ACK frame at p. Returns 6 (bytes used) with *version
 * and *seq set, 0 when fewer than 6 bytes are there, SL_EPROTO for anything else. */
int sl_lj_parse_ack(const void *p, size_t n, char *version, uint32_t *seq);

#endif
