/* display: show a file from a cell in the notebook (an image, SVG, HTML, Markdown, text).
 *
 *   display [--png | --jpeg | --gif | --svg | --html | --markdown | --text] [FILE | -]
 *
 * Runs in: every cell, whatever its image: initbin.py builds it as a static program next
 * to rootfs-init, plan.py binds it read-only into each container (at DISPLAY_PATH, on the
 * cell's PATH; a %root none or %%host cell finds it where it was built).
 *
 * It reads FILE (or its stdin) and writes one frame on its stdout, which the kernel's
 * stream reader (frames.py) turns into a display_data output:
 *
 *   ESC _ rootfs-kernel;display;MIME;NAME;DATA ESC \
 *
 * an APC sequence (terminals ignore it), NAME and DATA in base64.  The kind comes from
 * the option, else FILE's name, else its first bytes.  Like bash_kernel's display, the
 * data travels with the cell's own output: the program opens nothing but FILE and uses no
 * fd beyond 0, 1 and 2, so a cell gets no channel to the kernel it did not have.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_BYTES (16 << 20)   /* frames.py refuses more, and a notebook would not want it */

static const struct { const char *option, *mime, *suffixes; } kinds[] = {
    {"--png", "image/png", ".png"},
    {"--jpeg", "image/jpeg", ".jpg.jpeg"},
    {"--gif", "image/gif", ".gif"},
    {"--svg", "image/svg+xml", ".svg"},
    {"--html", "text/html", ".html.htm"},
    {"--markdown", "text/markdown", ".md.markdown"},
    {"--text", "text/plain", ".txt.text.log"},
};
#define NKINDS (sizeof kinds / sizeof *kinds)

static const char *self = "display";

static int usage(FILE *to, int status) {
    fprintf(to,
            "usage: %s [--png | --jpeg | --gif | --svg | --html | --markdown | --text] "
            "[FILE | -]\n"
            "Show FILE (or stdin) in the notebook, below the cell: an image, an SVG picture,\n"
            "an HTML page (shown in a sandboxed frame: its scripts do not run), Markdown or\n"
            "text. The kind comes from the option, else the file's name, else its first\n"
            "bytes. At most 16 MiB.\n", self);
    return status;
}

static const char *by_name(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return NULL;
    size_t n = strlen(dot);
    for (size_t k = 0; k < NKINDS; k++)
        for (const char *s = kinds[k].suffixes; (s = strchr(s, '.')); s++) {
            size_t len = strcspn(s + 1, ".") + 1;
            if (len == n && !strncasecmp(s, dot, n)) return kinds[k].mime;
        }
    return NULL;
}

static const char *by_content(const unsigned char *data, size_t len) {
    if (len >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8)) return "image/png";
    if (len >= 3 && !memcmp(data, "\xff\xd8\xff", 3)) return "image/jpeg";
    if (len >= 6 && (!memcmp(data, "GIF87a", 6) || !memcmp(data, "GIF89a", 6))) return "image/gif";
    size_t i = 0;
    if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) i = 3;   /* a UTF-8 byte order mark */
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) i++;
    char head[1025];
    size_t n = len - i < 1024 ? len - i : 1024;
    memcpy(head, data + i, n);
    head[n] = 0;
    for (size_t k = 0; k < n; k++) if (!head[k]) head[k] = ' ';
    if (!strncasecmp(head, "<svg", 4) || (!strncasecmp(head, "<?xml", 5) && strcasestr(head, "<svg")))
        return "image/svg+xml";
    if (!strncasecmp(head, "<!doctype html", 14) || !strncasecmp(head, "<html", 5))
        return "text/html";
    return NULL;
}

static char *base64(const unsigned char *data, size_t len, size_t *out_len) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = data[i] << 16 | (i + 1 < len ? data[i + 1] << 8 : 0) |
                     (i + 2 < len ? data[i + 2] : 0);
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
    }
    *out_len = o;
    return out;
}

static int write_all(const char *buf, size_t len) {
    while (len) {
        ssize_t n = write(1, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *mime = NULL, *path = NULL;
    if (argc > 0 && argv[0][0]) self = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            size_t k = 0;
            while (k < NKINDS && strcmp(kinds[k].option, a)) k++;
            if (k == NKINDS) {
                fprintf(stderr, "%s: unknown option %s\n", self, a);
                return usage(stderr, 2);
            }
            mime = kinds[k].mime;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "%s: one file at a time (%s, then %s)\n", self, path, a);
            return usage(stderr, 2);
        }
    }
    if (!path) path = "-";
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", self, path, strerror(errno));
        return 1;
    }
    size_t len = 0, cap = 1 << 16;
    unsigned char *data = malloc(cap);
    for (;;) {
        if (!data) {
            fprintf(stderr, "%s: out of memory\n", self);
            return 1;
        }
        if (len == cap) {
            if (cap > MAX_BYTES) {
                fprintf(stderr, "%s: %s is larger than 16 MiB, too large for a notebook; "
                        "show a smaller copy (a scaled image, the first lines)\n", self, path);
                return 1;
            }
            cap *= 2;
            data = realloc(data, cap);
            continue;
        }
        ssize_t n = read(fd, data + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "%s: %s: %s\n", self, path, strerror(errno));
            return 1;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    if (len > MAX_BYTES) {
        fprintf(stderr, "%s: %s is larger than 16 MiB, too large for a notebook; show a "
                "smaller copy (a scaled image, the first lines)\n", self, path);
        return 1;
    }
    if (!mime && strcmp(path, "-")) mime = by_name(path);
    if (!mime) mime = by_content(data, len);
    if (!mime) {
        fprintf(stderr, "%s: cannot tell what kind of file %s is; say it: %s --png, --jpeg, "
                "--gif, --svg, --html, --markdown or --text %s\n", self, path, self, path);
        return 1;
    }
    const char *slash = strrchr(path, '/');
    const char *name = !strcmp(path, "-") ? "stdin" : slash ? slash + 1 : path;
    size_t name_len, data_len;
    char *name64 = base64((const unsigned char *)name, strlen(name), &name_len);
    char *data64 = base64(data, len, &data_len);
    if (!name64 || !data64) {
        fprintf(stderr, "%s: out of memory\n", self);
        return 1;
    }
    char head[128];
    int h = snprintf(head, sizeof head, "\033_rootfs-kernel;display;%s;", mime);
    if (write_all(head, (size_t)h) || write_all(name64, name_len) || write_all(";", 1) ||
        write_all(data64, data_len) || write_all("\033\\", 2)) {
        fprintf(stderr, "%s: cannot write to stdout: %s\n", self, strerror(errno));
        return 1;
    }
    return 0;
}
