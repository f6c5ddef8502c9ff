/*
 * lumberjack.c - the Lumberjack (Beats) v1/v2 codec: an incremental decoder
 * for the server side and frame encoders for the client side. Pure codec: it
 * never touches a socket, a clock or a log; the caller decides what an error
 * means for the connection (docs/protocol.md §5 and §7: close it, without ACK).
 *
 * Decoder design, for ~1M events/s:
 *  - Received bytes go to one bounded buffer (in) that is consumed by offset;
 *    it is compacted only when an append would not fit (or reset for free
 *    when everything was consumed), never per frame.
 *  - A frame is decoded only when all of it is buffered (J, W, C/Z), except
 *    v1 'D' frames, whose total length is not announced: their pairs are
 *    converted to JSON one key or value at a time, so only one piece
 *    (<= max_frame) ever needs to be buffered.
 *  - A C (zlib), Z (zstd) or S (zstd stream) frame's payload is copied aside (cbuf) and
 *    inflated a piece at a time into a second bounded buffer (infl, at most
 *    max_inflated): inner frames are returned as soon as they are whole, and
 *    more is inflated only when the consumer has taken them. So a legitimate
 *    window of any inflated size (Filebeat's 2048 events of 64 KiB lines is
 *    128 MiB) costs one piece of memory, and a bomb costs nothing more than
 *    the events it holds: zeros or garbage fail the framing at once. Only one
 *    inner frame larger than max_inflated is refused. The z_stream, the
 *    ZSTD_DCtx and the buffers are reused for the decoder's life.
 *  - S blocks are pieces of one zstd stream per connection: the ZSTD_DCtx
 *    is not reset between them, so its window (the history later blocks
 *    refer to) outlives the block. A Z block resets it and so ends the
 *    stream; an S block that continues a stream this decoder never saw (or
 *    one a Z block ended) fails cleanly as a corrupt zstd stream.
 *  - Every length is checked against its limit before anything is buffered
 *    for it, so a hostile 0xFFFFFFFF length costs nothing.
 */
#include "sluice/lumberjack.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define DEFAULT_MAX_WINDOW 10000u
#define DEFAULT_MAX_FRAME (64u * 1024 * 1024)
#define DEFAULT_MAX_INFLATED (256ull * 1024 * 1024)
/* Slack over max_frame that feed() accepts: one frame header (at most 10 B). */
#define FEED_SLACK 16u
/* Initial growth step of the inflate buffer. */
#define INFLATE_CHUNK (64u * 1024)
/* zstd's smallest and default-largest decoder window logs (ZSTD_WINDOWLOG_ABSOLUTEMIN
 * is only visible with ZSTD_STATIC_LINKING_ONLY). */
#define ZSTD_WLOG_MIN 10
#define ZSTD_WLOG_MAX 27

enum state {
    ST_HEAD,     /* at a frame boundary */
    ST_D_KEY,    /* inside a v1 D frame: next is u32 klen + key */
    ST_D_VALUE,  /* inside a v1 D frame: next is u32 vlen + value */
};

/* What one decoding step did. */
enum { STEP_MORE, STEP_FRAME, STEP_AGAIN };

struct sl_lj_decoder {
    struct sl_lj_limits lim;
    size_t feed_max;        /* max_frame + FEED_SLACK */

    struct sl_buf in;       /* received bytes; [off, len) not yet decoded */
    size_t off;

    struct sl_buf cbuf;     /* the current C/Z frame's compressed payload */
    struct sl_buf infl;     /* inflated content of it, a piece at a time */
    size_t ioff;            /* [ioff, len) are inner frames not yet returned */
    bool inner;             /* decoding from infl rather than from in */
    bool keep_blocks;       /* C and Z frames are returned whole (keep_blocks()) */
    char ckind;             /* SL_LJ_COMPRESSED, _ZSTD or _ZSTREAM while inflating, else 0 */

    enum state st;          /* D frame progress, valid in either source */
    char d_version;
    uint32_t d_seq;
    uint32_t d_pairs_left;
    uint64_t d_budget;      /* payload bytes the D frame may still use */
    struct sl_buf json;     /* the D frame converted to JSON */

    z_stream zs;
    bool zs_ready;
    ZSTD_DCtx *zd;
    ZSTD_inBuffer zin;      /* cbuf, as the zstd stream reads it */
    bool zs_open;           /* zd is inside a frame of S blocks: the next S continues it */

    int failed;             /* the sticky error, 0 while healthy */
    char err[128];
};

/* ---- errors ---- */

SL_PRINTF(3, 4)
static int fail(struct sl_lj_decoder *d, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof(d->err), fmt, ap);
    va_end(ap);
    d->failed = rc;
    return rc;
}

/* ---- decoder lifetime ---- */

struct sl_lj_decoder *sl_lj_decoder_new(const struct sl_lj_limits *limits)
{
    struct sl_lj_decoder *d = sl_calloc(1, sizeof(*d));
    if (limits) {
        d->lim = *limits;
    }
    if (d->lim.max_window == 0) {
        d->lim.max_window = DEFAULT_MAX_WINDOW;
    }
    if (d->lim.max_frame == 0) {
        d->lim.max_frame = DEFAULT_MAX_FRAME;
    }
    if (d->lim.max_inflated == 0) {
        d->lim.max_inflated = DEFAULT_MAX_INFLATED;
    }
    if (d->lim.max_inflated > SIZE_MAX / 2) {
        d->lim.max_inflated = SIZE_MAX / 2;
    }
    d->feed_max = (size_t)d->lim.max_frame + FEED_SLACK;
    sl_buf_init(&d->in, d->feed_max);
    sl_buf_init(&d->cbuf, d->lim.max_frame);
    sl_buf_init(&d->infl, (size_t)d->lim.max_inflated + 1);
    /* A D payload byte escapes to at most 6 JSON bytes (\u00XX). */
    sl_buf_init(&d->json, (size_t)d->lim.max_frame + 16);  /* step_d checks before it grows */
    d->st = ST_HEAD;
    return d;
}

void sl_lj_decoder_free(struct sl_lj_decoder *d)
{
    if (!d) {
        return;
    }
    if (d->zs_ready) {
        inflateEnd(&d->zs);
    }
    ZSTD_freeDCtx(d->zd);
    sl_buf_free(&d->in);
    sl_buf_free(&d->cbuf);
    sl_buf_free(&d->infl);
    sl_buf_free(&d->json);
    free(d);
}

/* Frees b's memory and leaves it empty with the same maximum. */
static void buf_release(struct sl_buf *b)
{
    size_t max = b->max;
    sl_buf_free(b);
    sl_buf_init(b, max);
}

void sl_lj_decoder_trim(struct sl_lj_decoder *d)
{
    if (d->failed || d->inner || d->st != ST_HEAD || d->off != d->in.len) {
        return;  /* mid-frame: every piece is still needed */
    }
    buf_release(&d->in);
    d->off = 0;
    buf_release(&d->cbuf);
    buf_release(&d->infl);
    d->ioff = 0;
    buf_release(&d->json);
    if (d->zs_ready) {
        inflateEnd(&d->zs);
        d->zs_ready = false;
    }
    if (!d->zs_open) {
        ZSTD_freeDCtx(d->zd);  /* the next Z or S block starts a frame: a new context will do */
        d->zd = NULL;
    }
}

const char *sl_lj_decoder_error(const struct sl_lj_decoder *d)
{
    return d->failed ? d->err : "";
}

size_t sl_lj_decoder_buffered(const struct sl_lj_decoder *d)
{
    size_t n = d->in.len - d->off;
    if (d->inner) {
        n += d->infl.len - d->ioff;
    }
    return n;
}

bool sl_lj_decoder_stream_open(const struct sl_lj_decoder *d)
{
    return d->zs_open || d->ckind == SL_LJ_ZSTREAM;
}

size_t sl_lj_decoder_input(const struct sl_lj_decoder *d)
{
    return d->in.len - d->off;
}

int sl_lj_decoder_feed(struct sl_lj_decoder *d, const void *p, size_t n)
{
    if (d->failed) {
        return d->failed;
    }
    size_t pending = d->in.len - d->off;
    if (n > d->feed_max - pending) {
        return fail(d, SL_ELIMIT, "%zu buffered bytes would exceed max_frame + %u (%zu)",
                    pending + n, FEED_SLACK, d->feed_max);
    }
    if (n == 0) {
        return 0;
    }
    if (pending == 0) {
        d->in.len = 0;
        d->off = 0;
    } else if (d->off > 0 && d->in.len + n >= d->in.cap) {
        /* Compact only when the append would otherwise grow the buffer. */
        memmove(d->in.data, d->in.data + d->off, pending);
        d->in.len = pending;
        d->off = 0;
    }
    return sl_buf_append(&d->in, p, n);
}

/* ---- D frames: key/value pairs to a JSON object of strings ---- */

static const char hexdigits[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at s[0..n) (s[0] >= 0x80), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;  /* bounds for the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) {
            lo = 0xA0;  /* overlong */
        } else if (c == 0xED) {
            hi = 0x9F;  /* surrogates */
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) {
            lo = 0x90;  /* overlong */
        } else if (c == 0xF4) {
            hi = 0x8F;  /* > U+10FFFF */
        }
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return need;
}

/*
 * Appends s[0..n) as a quoted JSON string. A local escaper rather than
 * sl_json_put_str() so that the codec links with buf.c and common.c alone;
 * same output contract (valid UTF-8, every control byte escaped, each invalid
 * byte replaced by U+FFFD). Runs of plain bytes are copied in one append.
 */
static int put_json_str(struct sl_buf *b, const unsigned char *s, size_t n)
{
    int rc = sl_buf_putc(b, '"');
    size_t i = 0;
    while (rc == 0 && i < n) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\') {
            run++;
        }
        if (run > i) {
            rc = sl_buf_append(b, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_seq(s + i, n - i);
            if (k) {
                rc = sl_buf_append(b, s + i, k);
                i += k;
            } else {
                rc = sl_buf_append(b, "\xEF\xBF\xBD", 3);
                i++;
            }
            continue;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hexdigits[c >> 4];
            esc[5] = hexdigits[c & 15];
            elen = 6;
            break;
        }
        rc = sl_buf_append(b, esc, elen);
        i++;
    }
    if (rc == 0) {
        rc = sl_buf_putc(b, '"');
    }
    return rc;
}

/* Exact size of put_json_str's output for s[0..n), quotes included. */
static uint64_t json_str_size(const unsigned char *s, size_t n)
{
    uint64_t size = 2;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80) {
            size += (c == '"' || c == '\\') ? 2 : 1;
            i++;
        } else if (c >= 0x80) {
            size_t k = utf8_seq(s + i, n - i);
            size += k ? k : 3;
            i += k ? k : 1;
        } else {
            size += (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') ? 2 : 6;
            i++;
        }
    }
    return size;
}

/*
 * One step inside a D frame: converts the next key or value if all of it is
 * at p[0..avail). Fills f when the last value completes the object. The
 * object is held to max_frame, as a J frame's text is, and each piece is
 * measured before it is converted: escaping can make a byte six (a 60 MB
 * value of control bytes would be 360 MB of JSON).
 */
static int step_d(struct sl_lj_decoder *d, const unsigned char *p, size_t avail, size_t *used,
                  struct sl_lj_frame *f)
{
    if (avail < 4) {
        return STEP_MORE;
    }
    uint32_t len = sl_get_u32be(p);
    if (4 + (uint64_t)len > d->d_budget) {
        return fail(d, SL_ELIMIT, "v1 data frame %s length %u exceeds max_frame (%u)",
                    d->st == ST_D_KEY ? "key" : "value", len, d->lim.max_frame);
    }
    if (avail - 4 < len) {
        return STEP_MORE;
    }
    d->d_budget -= 4 + (uint64_t)len;
    bool key = d->st == ST_D_KEY;
    /* The piece, its ',' or ':', and the closing '}'. */
    uint64_t grow = json_str_size(p + 4, len) + 2;
    if (d->json.len + grow > d->lim.max_frame) {
        return fail(d, SL_ELIMIT, "v1 data frame as JSON exceeds max_frame (%u) at a %s of %u "
                    "bytes", d->lim.max_frame, key ? "key" : "value", len);
    }
    int rc = 0;
    if (key && d->json.len > 1) {
        rc = sl_buf_putc(&d->json, ',');
    }
    if (rc == 0) {
        rc = put_json_str(&d->json, p + 4, len);
    }
    if (rc == 0 && key) {
        rc = sl_buf_putc(&d->json, ':');
    }
    if (rc != 0) {
        /* Cannot happen: json.max covers the worst-case expansion of max_frame. */
        return fail(d, SL_ELIMIT, "v1 data frame JSON exceeds its buffer");
    }
    *used = 4 + (size_t)len;
    if (key) {
        d->st = ST_D_VALUE;
        return STEP_AGAIN;
    }
    if (--d->d_pairs_left > 0) {
        d->st = ST_D_KEY;
        return STEP_AGAIN;
    }
    if (sl_buf_putc(&d->json, '}') != 0) {
        return fail(d, SL_ELIMIT, "v1 data frame JSON exceeds its buffer");
    }
    d->st = ST_HEAD;
    f->version = d->d_version;
    f->type = SL_LJ_JSON;
    f->value = d->d_seq;
    f->data = d->json.data;
    f->len = d->json.len;
    return STEP_FRAME;
}

/* ---- compressed frames ---- */

/* Output produced per inflate_more(): enough to amortise the calls, small
 * enough that a huge window never sits inflated in memory at once. */
#define INFLATE_STEP (256u * 1024)
/* Compressed payload capacity kept between blocks; larger is released. */
#define CBUF_KEEP (1u << 20)
/* zstd decoder window allowed: pieces are small, so a client may not make each
 * connection allocate a window of max_inflated (256 MiB by default). Our shipper's
 * levels use at most 2 MiB. */
#define ZSTD_WINDOW_CAP (8u << 20)
/* A Z block whose frame says its size, up to this, is inflated in one pass. */
#define ZSTD_ONE_PASS_MAX (4u << 20)

/*
 * Moves what is left of infl (a partial inner frame) to its start, once per
 * inflate_more(): SL_ELIMIT when infl is full of that one frame, an inner
 * frame larger than max_inflated.
 */
static int infl_compact(struct sl_lj_decoder *d)
{
    struct sl_buf *b = &d->infl;
    if (d->ioff > 0) {
        memmove(b->data, b->data + d->ioff, b->len - d->ioff);
        b->len -= d->ioff;
        d->ioff = 0;
    }
    if (b->len >= d->lim.max_inflated) {
        return fail(d, SL_ELIMIT, "a frame inside a compressed block exceeds max_inflated "
                    "(%llu bytes)", (unsigned long long)d->lim.max_inflated);
    }
    return 0;
}

/* Room at the end of infl, up to max_inflated; 0 when full (the consumer goes first). */
static void infl_room(struct sl_lj_decoder *d, unsigned char **out, size_t *room)
{
    struct sl_buf *b = &d->infl;
    if (b->len >= d->lim.max_inflated) {
        *out = NULL;
        *room = 0;
        return;
    }
    if (b->cap == 0 || b->cap - b->len - 1 < 4096) {
        size_t want = SL_MAX(b->len, (size_t)INFLATE_CHUNK);
        want = SL_MIN(want, (size_t)d->lim.max_inflated - b->len);
        (void)sl_buf_reserve(b, want);  /* len < max_inflated < max: want >= 1 fits */
    }
    *out = (unsigned char *)b->data + b->len;
    *room = SL_MIN(b->cap - b->len - 1, (size_t)d->lim.max_inflated - b->len);
}

/* The block is fully inflated. A large compressed payload is not kept for the
 * connection's life: a second 64 MiB per connection that sent one big block. */
static void end_block(struct sl_lj_decoder *d)
{
    d->ckind = 0;
    if (d->cbuf.cap > CBUF_KEEP) {
        buf_release(&d->cbuf);
    }
}

static int start_zlib(struct sl_lj_decoder *d)
{
    if (!d->zs_ready) {
        memset(&d->zs, 0, sizeof(d->zs));
        if (inflateInit(&d->zs) != Z_OK) {
            return fail(d, SL_EIO, "zlib inflateInit failed");
        }
        d->zs_ready = true;
    } else if (inflateReset(&d->zs) != Z_OK) {
        return fail(d, SL_EIO, "zlib inflateReset failed");
    }
    d->zs.next_in = (Bytef *)d->cbuf.data;
    d->zs.avail_in = (uInt)d->cbuf.len;
    return 0;
}

/* Inflates the next piece; clears ckind at the end of the stream. */
static int more_zlib(struct sl_lj_decoder *d)
{
    size_t made = 0;
    while (made < INFLATE_STEP) {
        unsigned char *out;
        size_t room;
        infl_room(d, &out, &room);
        if (room == 0) {
            return 0;  /* full of whole frames: they are returned first */
        }
        room = SL_MIN(room, (size_t)UINT_MAX);
        d->zs.next_out = out;
        d->zs.avail_out = (uInt)room;
        int zr = inflate(&d->zs, Z_NO_FLUSH);
        made += room - d->zs.avail_out;
        d->infl.len += room - d->zs.avail_out;
        if (zr == Z_STREAM_END) {
            if (d->zs.avail_in != 0) {
                /* Filebeat and our shipper never send any; accepting it would hide bugs. */
                return fail(d, SL_EPROTO, "%u trailing bytes after zlib stream in compressed "
                            "frame", d->zs.avail_in);
            }
            end_block(d);
            return 0;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            return fail(d, SL_EPROTO, "corrupt zlib stream in compressed frame: %s",
                        d->zs.msg ? d->zs.msg : zError(zr));
        }
        if (d->zs.avail_in == 0 && d->zs.avail_out > 0) {
            return fail(d, SL_EPROTO, "truncated zlib stream in compressed frame");
        }
    }
    return 0;
}

/* Smallest w with 2^w >= n, clamped to what zstd accepts as a window limit. */
static int window_log_for(uint64_t n)
{
    int w = ZSTD_WLOG_MIN;
    while (w < ZSTD_WLOG_MAX && ((uint64_t)1 << w) < n) {
        w++;
    }
    return w;
}

/*
 * A Z block is one whole frame, and the frames our shipper writes say their
 * content size: with room for all of it in infl, ZSTD_decompressStream
 * decodes the frame straight into infl in one pass, instead of block by block
 * through its own window buffer and a copy of every byte (and allocates no
 * window). Only up to ZSTD_ONE_PASS_MAX and within max_inflated: a size the
 * header claims is the client's word; anything else streams as before (and
 * a frame shorter or longer than its header says fails as corrupt either way).
 */
static void one_pass_room(struct sl_lj_decoder *d)
{
    unsigned long long n = ZSTD_getFrameContentSize(d->cbuf.data, d->cbuf.len);
    if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n > ZSTD_ONE_PASS_MAX ||
        d->infl.len >= d->lim.max_inflated || n >= d->lim.max_inflated - d->infl.len) {
        return;
    }
    (void)sl_buf_reserve(&d->infl, (size_t)n + 1);  /* infl has no maximum of its own */
}

static int start_zstd(struct sl_lj_decoder *d, bool stream)
{
    bool resume = stream && d->zs_open;
    d->zs_open = false;  /* set again when this block ends inside a frame */
    if (!d->zd) {
        d->zd = ZSTD_createDCtx();
        if (!d->zd) {
            return fail(d, SL_EIO, "ZSTD_createDCtx failed");
        }
        /* The decoder allocates the window the frame asks for (default cap
         * 128 MiB); a window larger than max_inflated is never needed. */
        ZSTD_DCtx_setParameter(d->zd, ZSTD_d_windowLogMax,
                               window_log_for(SL_MIN(d->lim.max_inflated, ZSTD_WINDOW_CAP)));
    } else if (!resume) {
        ZSTD_DCtx_reset(d->zd, ZSTD_reset_session_only);
    }
    d->zin = (ZSTD_inBuffer){d->cbuf.data, d->cbuf.len, 0};
    if (!stream) {
        one_pass_room(d);
    }
    return 0;
}

/*
 * The end of a Z block must be the end of its one frame. An S block ends where
 * its input does, inside a frame or between frames: zstd has returned every
 * byte it could (the output was not full), so the block's content is all out;
 * a block cut inside a frame's block is not told apart, but its content then
 * fails the framing or waits, bounded, for the next S block like any other.
 */
static int zstd_block_end(struct sl_lj_decoder *d, size_t zr)
{
    if (d->ckind == SL_LJ_ZSTREAM) {
        d->zs_open = zr != 0;
        end_block(d);
        return 0;
    }
    if (zr != 0) {
        return fail(d, SL_EPROTO, "truncated zstd stream in compressed frame");
    }
    end_block(d);
    return 0;
}

static int more_zstd(struct sl_lj_decoder *d)
{
    size_t made = 0;
    while (made < INFLATE_STEP) {
        unsigned char *outp;
        size_t room;
        infl_room(d, &outp, &room);
        if (room == 0) {
            return 0;  /* full of whole frames: they are returned first */
        }
        ZSTD_outBuffer out = {outp, room, 0};
        size_t zr = ZSTD_decompressStream(d->zd, &out, &d->zin);
        made += out.pos;
        d->infl.len += out.pos;
        if (ZSTD_isError(zr)) {
            if (ZSTD_getErrorCode(zr) == ZSTD_error_frameParameter_windowTooLarge) {
                return fail(d, SL_ELIMIT, "zstd frame window is larger than max_inflated");
            }
            return fail(d, SL_EPROTO, "corrupt zstd stream in compressed frame: %s",
                        ZSTD_getErrorName(zr));
        }
        bool drained = d->zin.pos == d->zin.size && (zr == 0 || out.pos < out.size);
        if (drained) {
            return zstd_block_end(d, zr);
        }
        if (zr == 0 && d->ckind == SL_LJ_ZSTD) {
            return fail(d, SL_EPROTO, "%zu trailing bytes after zstd frame in compressed "
                        "frame", d->zin.size - d->zin.pos);
        }
        /* Else more to do: output room ran out, or an S block starts another frame. */
    }
    return 0;
}

/* More of the current compressed frame into infl (ckind says which kind). */
static int inflate_more(struct sl_lj_decoder *d)
{
    int rc = infl_compact(d);
    if (rc != 0) {
        return rc;
    }
    return d->ckind == SL_LJ_COMPRESSED ? more_zlib(d) : more_zstd(d);
}

/* ---- the frame state machine ---- */

static bool compressed_type(unsigned char t)
{
    return t == SL_LJ_COMPRESSED || t == SL_LJ_ZSTD || t == SL_LJ_ZSTREAM;
}

static bool valid_type(unsigned char t)
{
    return t == SL_LJ_WINDOW || t == SL_LJ_JSON || t == SL_LJ_DATA || compressed_type(t);
}

static int check_block_len(struct sl_lj_decoder *d, uint32_t v)
{
    if (v == 0) {
        return fail(d, SL_EPROTO, "invalid compressed frame length 0");
    }
    if (v > d->lim.max_frame) {
        return fail(d, SL_ELIMIT, "compressed frame of %u bytes exceeds max_frame (%u)", v,
                    d->lim.max_frame);
    }
    return 0;
}

/* Starts returning the inner frames of the block p[0..len) of that type. */
static int open_block(struct sl_lj_decoder *d, unsigned char type, const unsigned char *p,
                      size_t len)
{
    /* Aside, so that feeding more outer bytes can never move it. */
    sl_buf_reset(&d->cbuf);
    (void)sl_buf_append(&d->cbuf, p, len);  /* len <= max_frame: fits */
    sl_buf_reset(&d->infl);
    d->ioff = 0;
    d->ckind = (char)type;
    int rc = type == SL_LJ_COMPRESSED ? start_zlib(d) : start_zstd(d, type == SL_LJ_ZSTREAM);
    if (rc != 0) {
        return rc;
    }
    d->inner = true;
    return 0;
}

/*
 * Decodes at most one thing from p[0..avail): a frame (STEP_FRAME), a D pair
 * piece or a whole compressed frame (STEP_AGAIN), or nothing (STEP_MORE).
 * *used is how many bytes of p were consumed. inner: p is inflated content.
 */
static int step(struct sl_lj_decoder *d, const unsigned char *p, size_t avail, size_t *used,
                struct sl_lj_frame *f, bool inner)
{
    if (d->st != ST_HEAD) {
        return step_d(d, p, avail, used, f);
    }
    if (avail < 1) {
        return STEP_MORE;
    }
    if (p[0] != SL_LJ_V1 && p[0] != SL_LJ_V2) {
        return fail(d, SL_EPROTO, "invalid protocol version 0x%02x", p[0]);
    }
    if (avail < 2) {
        return STEP_MORE;
    }
    unsigned char type = p[1];
    if (!valid_type(type)) {
        return fail(d, SL_EPROTO, "unknown frame type 0x%02x", type);
    }
    if (inner && type == SL_LJ_WINDOW) {
        return fail(d, SL_EPROTO, "window frame inside compressed block");
    }
    if (inner && compressed_type(type)) {
        return fail(d, SL_EPROTO, "nested compressed frame '%c' inside compressed block", type);
    }
    size_t head = (type == SL_LJ_JSON || type == SL_LJ_DATA) ? 10 : 6;
    if (avail < head) {
        return STEP_MORE;
    }
    uint32_t v = sl_get_u32be(p + 2);
    f->version = (char)p[0];
    f->data = NULL;
    f->len = 0;

    switch (type) {
    case SL_LJ_WINDOW:
        if (v > d->lim.max_window) {
            return fail(d, SL_ELIMIT, "window of %u events exceeds max_window (%u)", v,
                        d->lim.max_window);
        }
        f->type = SL_LJ_WINDOW;
        f->value = v;
        *used = head;
        return STEP_FRAME;

    case SL_LJ_JSON: {
        uint32_t len = sl_get_u32be(p + 6);
        if (len == 0) {
            return fail(d, SL_EPROTO, "invalid json length 0");
        }
        if (len > d->lim.max_frame) {
            return fail(d, SL_ELIMIT, "json frame of %u bytes exceeds max_frame (%u)", len,
                        d->lim.max_frame);
        }
        if (avail - head < len) {
            return STEP_MORE;
        }
        f->type = SL_LJ_JSON;
        f->value = v;
        f->data = (const char *)p + head;
        f->len = len;
        *used = head + len;
        return STEP_FRAME;
    }

    case SL_LJ_DATA: {
        uint32_t pairs = sl_get_u32be(p + 6);
        if (pairs == 0) {
            return fail(d, SL_EPROTO, "invalid number of fields 0 in v1 data frame");
        }
        uint64_t budget = d->lim.max_frame > 8 ? d->lim.max_frame - 8 : 0;
        if ((uint64_t)pairs * 8 > budget) {
            return fail(d, SL_ELIMIT, "v1 data frame of %u pairs exceeds max_frame (%u)", pairs,
                        d->lim.max_frame);
        }
        d->st = ST_D_KEY;
        d->d_version = (char)p[0];
        d->d_seq = v;
        d->d_pairs_left = pairs;
        d->d_budget = budget;
        sl_buf_reset(&d->json);
        (void)sl_buf_putc(&d->json, '{');
        *used = head;
        return STEP_AGAIN;
    }

    default: { /* C, Z or S */
        int rc = check_block_len(d, v);
        if (rc != 0) {
            return rc;
        }
        if (avail - head < v) {
            return STEP_MORE;
        }
        *used = head + v;
        if (d->keep_blocks && type != SL_LJ_ZSTREAM) {
            f->type = (char)type;
            f->value = v;
            f->data = (const char *)p + head;
            f->len = v;
            return STEP_FRAME;
        }
        rc = open_block(d, type, p + head, v);
        return rc != 0 ? rc : STEP_AGAIN;
    }
    }
}

int sl_lj_decoder_next(struct sl_lj_decoder *d, struct sl_lj_frame *f)
{
    if (d->failed) {
        return d->failed;
    }
    for (;;) {
        if (d->inner && d->ioff == d->infl.len && d->st == ST_HEAD) {
            if (d->ckind) {
                int rc = inflate_more(d);  /* the next piece of the block */
                if (rc != 0) {
                    return rc;
                }
                continue;
            }
            d->inner = false;  /* every inner frame returned: back to the wire */
        }
        struct sl_buf *src = d->inner ? &d->infl : &d->in;
        size_t *off = d->inner ? &d->ioff : &d->off;
        size_t avail = src->len - *off;
        /* No pointer arithmetic on a NULL data (nothing fed yet). */
        const unsigned char *p = avail ? (const unsigned char *)src->data + *off : NULL;
        size_t used = 0;
        int rc = step(d, p, avail, &used, f, d->inner);
        if (rc < 0) {
            return rc;
        }
        *off += used;
        if (rc == STEP_FRAME) {
            f->compressed = d->inner;
            return 1;
        }
        if (rc == STEP_MORE) {
            if (d->inner && d->ckind) {
                rc = inflate_more(d);  /* the rest of a frame cut by a piece boundary */
                if (rc != 0) {
                    return rc;
                }
                continue;
            }
            if (d->inner) {
                return fail(d, SL_EPROTO, "truncated frame inside compressed block");
            }
            return 0;
        }
    }
}

void sl_lj_decoder_keep_blocks(struct sl_lj_decoder *d, bool keep)
{
    d->keep_blocks = keep;
}

int sl_lj_decoder_open_block(struct sl_lj_decoder *d, char type, const void *p, size_t len)
{
    if (d->failed) {
        return d->failed;
    }
    if (d->inner || d->st != ST_HEAD) {
        return fail(d, SL_EINVAL, "a block opened inside a frame");
    }
    if (type != SL_LJ_COMPRESSED && type != SL_LJ_ZSTD) {
        return fail(d, SL_EINVAL, "a block of type 0x%02x opened", (unsigned char)type);
    }
    if (len > UINT32_MAX) {
        return fail(d, SL_ELIMIT, "compressed frame of %zu bytes exceeds max_frame (%u)", len,
                    d->lim.max_frame);
    }
    int rc = check_block_len(d, (uint32_t)len);
    return rc != 0 ? rc : open_block(d, (unsigned char)type, p, len);
}

uint64_t sl_lj_block_content_size(char type, const void *p, size_t len)
{
    if (type != SL_LJ_ZSTD) {
        return UINT64_MAX;
    }
    unsigned long long n = ZSTD_getFrameContentSize(p, len);
    if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR) {
        return UINT64_MAX;
    }
    return n;
}

/* ---- encoding ---- */

static int put_head(struct sl_buf *out, char version, char type, uint32_t v)
{
    unsigned char h[6] = {(unsigned char)version, (unsigned char)type};
    sl_put_u32be(h + 2, v);
    return sl_buf_append(out, h, sizeof(h));
}

int sl_lj_put_window(struct sl_buf *out, char version, uint32_t count)
{
    return put_head(out, version, SL_LJ_WINDOW, count);
}

int sl_lj_put_ack(struct sl_buf *out, char version, uint32_t seq)
{
    return put_head(out, version, SL_LJ_ACK, seq);
}

int sl_lj_put_json(struct sl_buf *out, uint32_t seq, const char *json, size_t len)
{
    if (len > UINT32_MAX) {
        return SL_ELIMIT;
    }
    int rc = sl_buf_reserve(out, 10 + len);
    if (rc != 0) {
        return rc;
    }
    unsigned char h[10] = {SL_LJ_V2, SL_LJ_JSON};
    sl_put_u32be(h + 2, seq);
    sl_put_u32be(h + 6, (uint32_t)len);
    memcpy(out->data + out->len, h, sizeof(h));
    if (len) {
        memcpy(out->data + out->len + sizeof(h), json, len);
    }
    out->len += sizeof(h) + len;
    return 0;
}

/*
 * The compressors are kept per thread. The API has no encoder object, and a
 * deflate state (~270 KiB) or a ZSTD_CCtx (~1 MiB at level 3) costs far more
 * to set up than to reuse: allocating one per window would mean an
 * mmap/munmap pair per window. Thread-local keeps the functions reentrant
 * without locks. The contexts live until the process exits (one set per
 * thread that ever compressed; the shipper compresses on its loop thread).
 */
static _Thread_local z_stream tl_deflate;
static _Thread_local int tl_deflate_level;
static _Thread_local bool tl_deflate_ready;
static _Thread_local ZSTD_CCtx *tl_zstd;

static int deflate_into(struct sl_buf *out, int level, const char *src, size_t len, size_t *n)
{
    if (level == 0) {
        level = Z_DEFAULT_COMPRESSION;
    }
    if (!tl_deflate_ready || tl_deflate_level != level) {
        if (tl_deflate_ready) {
            deflateEnd(&tl_deflate);
            tl_deflate_ready = false;
        }
        memset(&tl_deflate, 0, sizeof(tl_deflate));
        if (deflateInit(&tl_deflate, level) != Z_OK) {
            return SL_EIO;
        }
        tl_deflate_ready = true;
        tl_deflate_level = level;
    } else if (deflateReset(&tl_deflate) != Z_OK) {
        return SL_EIO;
    }
    uLong bound = deflateBound(&tl_deflate, (uLong)len);
    if (bound > UINT32_MAX) {
        return SL_ELIMIT;
    }
    int rc = sl_buf_reserve(out, 6 + (size_t)bound);
    if (rc != 0) {
        return rc;
    }
    tl_deflate.next_in = (Bytef *)(uintptr_t)src;
    tl_deflate.avail_in = (uInt)len;
    tl_deflate.next_out = (Bytef *)out->data + out->len + 6;
    tl_deflate.avail_out = (uInt)bound;
    if (deflate(&tl_deflate, Z_FINISH) != Z_STREAM_END) {
        return SL_EIO;
    }
    *n = tl_deflate.total_out;
    return 0;
}

static int zstd_into(struct sl_buf *out, int level, const char *src, size_t len, size_t *n)
{
    if (!tl_zstd) {
        tl_zstd = ZSTD_createCCtx();
        if (!tl_zstd) {
            return SL_EIO;
        }
    }
    size_t bound = ZSTD_compressBound(len);
    if (bound > UINT32_MAX) {
        return SL_ELIMIT;
    }
    int rc = sl_buf_reserve(out, 6 + bound);
    if (rc != 0) {
        return rc;
    }
    /* Level 0 is zstd's own "default" (3). compressCCtx records the content
     * size, so the frame's window never exceeds it (the decoder checks). */
    size_t zr = ZSTD_compressCCtx(tl_zstd, out->data + out->len + 6, bound, src, len, level);
    if (ZSTD_isError(zr)) {
        return SL_EIO;
    }
    *n = zr;
    return 0;
}

int sl_lj_put_compressed(struct sl_buf *out, enum sl_lj_compression kind, int level,
                         const char *frames, size_t len)
{
    if (len > UINT32_MAX) {
        return SL_ELIMIT;
    }
    size_t n = 0;
    int rc;
    char type;
    if (kind == SL_LJ_ZLIB) {
        if (level < 0 || level > 9) {
            return SL_EINVAL;
        }
        type = SL_LJ_COMPRESSED;
        rc = deflate_into(out, level, frames, len, &n);
    } else if (kind == SL_LJ_ZSTDC) {
        if (level < 0 || level > ZSTD_maxCLevel()) {
            return SL_EINVAL;
        }
        type = SL_LJ_ZSTD;
        rc = zstd_into(out, level, frames, len, &n);
    } else {
        return SL_EINVAL;
    }
    if (rc != 0) {
        return rc;
    }
    /* The payload is already in place after the 6 header bytes. */
    unsigned char *h = (unsigned char *)out->data + out->len;
    h[0] = SL_LJ_V2;
    h[1] = (unsigned char)type;
    sl_put_u32be(h + 2, (uint32_t)n);
    out->len += 6 + n;
    return 0;
}

int sl_lj_uncompress(const char *frame, size_t flen, char *out, size_t len)
{
    if (flen < 6 || frame[0] != SL_LJ_V2 || sl_get_u32be(frame + 2) != flen - 6) {
        return SL_EPROTO;
    }
    const char *src = frame + 6;
    size_t n = flen - 6;
    if (frame[1] == SL_LJ_ZSTD) {
        size_t r = ZSTD_decompress(out, len, src, n);
        return !ZSTD_isError(r) && r == len ? 0 : SL_EPROTO;
    }
    if (frame[1] != SL_LJ_COMPRESSED || len > ULONG_MAX || n > ULONG_MAX) {
        return SL_EPROTO;
    }
    uLongf got = (uLongf)len;
    int rc = uncompress((Bytef *)out, &got, (const Bytef *)src, (uLong)n);
    return rc == Z_OK && got == len ? 0 : SL_EPROTO;
}

/* ---- the zstd stream of S blocks ---- */

/*
 * The stream's window: the history a block may refer back to, and what every
 * receiving connection keeps allocated for as long as the stream is open (the
 * decoder's window plus a block of that size, ~360 KiB with the context). 64
 * KiB holds over a hundred Beats-shaped events, which is where small windows
 * gain (docs/shipper.md has the figures); far below the decoder's 8 MiB cap.
 */
#define ZSTREAM_WINDOW_LOG 16
/* Over ZSTD_compressBound: a frame header (<= 18 B) and a final empty block. */
#define ZSTREAM_SLACK 32u

struct sl_lj_zstream {
    ZSTD_CCtx *cctx;  /* NULL until the first block */
    int level;
};

struct sl_lj_zstream *sl_lj_zstream_new(int level)
{
    if (level < 0 || level > ZSTD_maxCLevel()) {
        return NULL;
    }
    struct sl_lj_zstream *z = sl_calloc(1, sizeof(*z));
    z->level = level;
    return z;
}

void sl_lj_zstream_free(struct sl_lj_zstream *z)
{
    if (z) {
        ZSTD_freeCCtx(z->cctx);
        free(z);
    }
}

void sl_lj_zstream_reset(struct sl_lj_zstream *z)
{
    if (z->cctx) {
        ZSTD_CCtx_reset(z->cctx, ZSTD_reset_session_only);  /* keeps level and window */
    }
}

static int zstream_ready(struct sl_lj_zstream *z)
{
    if (z->cctx) {
        return 0;
    }
    z->cctx = ZSTD_createCCtx();
    if (!z->cctx) {
        return SL_EIO;
    }
    size_t e1 = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, z->level);
    size_t e2 = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_windowLog, ZSTREAM_WINDOW_LOG);
    if (ZSTD_isError(e1) || ZSTD_isError(e2)) {
        ZSTD_freeCCtx(z->cctx);
        z->cctx = NULL;
        return SL_EIO;
    }
    return 0;
}

/*
 * Compresses src into out after 6 header bytes, flushing: *n payload bytes.
 * The bound is only a first guess for a stream; zstd says how much it still
 * holds, and the output grows until it is all out.
 */
static int zstream_into(struct sl_buf *out, struct sl_lj_zstream *z, const char *src,
                        size_t len, size_t *n)
{
    int rc = zstream_ready(z);
    size_t want = ZSTD_compressBound(len) + ZSTREAM_SLACK;
    ZSTD_inBuffer in = {src, len, 0};
    size_t made = 0;
    while (rc == 0 && (rc = sl_buf_reserve(out, 6 + made + want)) == 0) {
        /* Exactly what was reserved, so that len never passes the buffer's max. */
        ZSTD_outBuffer o = {out->data + out->len + 6 + made, want, 0};
        size_t left = ZSTD_compressStream2(z->cctx, &o, &in, ZSTD_e_flush);
        if (ZSTD_isError(left)) {
            return SL_EIO;
        }
        made += o.pos;
        if (made > UINT32_MAX) {
            return SL_ELIMIT;
        }
        if (left == 0) {
            *n = made;
            return 0;
        }
        want = SL_MAX(left, (size_t)4096);
    }
    return rc;
}

int sl_lj_put_zstream(struct sl_buf *out, struct sl_lj_zstream *z, const char *frames,
                      size_t len)
{
    if (len == 0) {
        return SL_EINVAL;  /* would flush nothing: an S block of length 0 is invalid */
    }
    size_t n = 0;
    int rc = zstream_into(out, z, frames, len, &n);
    if (rc != 0) {
        return rc;
    }
    unsigned char *h = (unsigned char *)out->data + out->len;
    h[0] = SL_LJ_V2;
    h[1] = SL_LJ_ZSTREAM;
    sl_put_u32be(h + 2, (uint32_t)n);
    out->len += 6 + n;
    return 0;
}

int sl_lj_parse_ack(const void *p, size_t n, char *version, uint32_t *seq)
{
    if (n < 6) {
        return 0;
    }
    const unsigned char *c = p;
    if ((c[0] != SL_LJ_V1 && c[0] != SL_LJ_V2) || c[1] != SL_LJ_ACK) {
        return SL_EPROTO;
    }
    *version = (char)c[0];
    *seq = sl_get_u32be(c + 2);
    return 6;
}
