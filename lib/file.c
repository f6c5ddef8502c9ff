/*
 * file.c - see file.h.
 */
#include "sluice/file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int sl_file_read(const char *path, size_t max, struct sl_buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = errno;
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = EISDIR;
        goto done;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        rc = EFBIG;  /* refused before reading any of it */
        goto done;
    }
    size_t got = 0;
    for (;;) {
        char probe;
        size_t want = SL_MIN(max - got, (size_t)65536);
        char *to = &probe;
        if (want == 0) {
            want = 1;  /* at max: one more byte tells a file that grew past it */
        } else if (sl_buf_reserve(out, want) != 0) {
            rc = EFBIG;  /* out's own limit */
            goto done;
        } else {
            to = out->data + out->len;
        }
        ssize_t n = read(fd, to, want);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = errno;
            goto done;
        }
        if (n == 0) {
            break;
        }
        if (to == &probe) {
            rc = EFBIG;
            goto done;
        }
        out->len += (size_t)n;
        got += (size_t)n;
    }
done:
    close(fd);
    return rc;
}
