/*
 * h3-client: one HTTP/3 request, like a small curl. Written only against quic.h
 * and libusockets.h; links librust_quic.a.
 *
 *   h3-client [--insecure] [--cacert FILE] [--data @FILE|STRING] [-X METHOD]
 *             [-H 'name: value'] [-o FILE] [-v] [--timeout SECONDS] https://HOST:PORT/PATH
 *
 * The body goes to stdout (or -o FILE); -v prints the response head to stderr.
 * Exit status: 0 when a complete response arrived (any status), 1 on a
 * connection or stream error, 2 on bad usage, 3 on timeout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "quic.h"

struct stream_state {
    size_t sent;
    int done;
};

static struct us_loop_t *loop;
static us_quic_socket_context_t *ctx;
static us_quic_socket_t *conn;
static char host[256], authority[300], path[4096];
static int port = 443, verbose, insecure;
static const char *method;
static char *body;
static size_t body_len;
static FILE *out;
static const char *extra_headers[32];
static int extra_count;
static int result = 1, finished;
static struct us_timer_t *deadline;

static struct us_quic_header_t hdr(const char *n, unsigned nl, const char *v, unsigned vl) {
    struct us_quic_header_t h = {n, nl, v, vl, -1};
    return h;
}

static void finish(int code) {
    if (finished) return;
    finished = 1;
    result = code;
    if (conn) us_quic_socket_close(conn);
    us_timer_close(deadline);
}

static void pump(us_quic_stream_t *s) {
    struct stream_state *st = us_quic_stream_ext(s);
    while (st->sent < body_len) {
        int w = us_quic_stream_write(s, body + st->sent, (unsigned)(body_len - st->sent));
        if (w < 0) return;
        st->sent += (size_t)w;
        if (st->sent < body_len) {
            us_quic_stream_want_write(s, 1);
            return;
        }
    }
    us_quic_stream_shutdown(s);
}

static void on_hsk_done(us_quic_socket_t *s, int ok) {
    if (!ok) {
        int err = us_quic_socket_errno(s);
        fprintf(stderr, "h3-client: handshake with %s failed%s%s\n", authority, err ? ": " : "", err ? strerror(err) : "");
        finish(1);
        return;
    }
    char status[512];
    if (verbose && us_quic_socket_status(s, status, sizeof status) > 0) fprintf(stderr, "* connected: %s\n", status);
    us_quic_socket_make_stream(s);
}

static void on_close(us_quic_socket_t *s) {
    unsigned long long code;
    int app;
    if (!finished && us_quic_socket_close_error(s, &code, &app))
        fprintf(stderr, "h3-client: connection closed (%s error 0x%llx)\n", app ? "application" : "transport", code);
    conn = NULL;
    finish(result);
}

static void on_stream_open(us_quic_stream_t *s, int is_client) {
    if (!is_client) return;
    struct stream_state *st = us_quic_stream_ext(s);
    memset(st, 0, sizeof *st);
    struct us_quic_header_t h[40];
    unsigned n = 0;
    char len[24];
    h[n++] = hdr(":method", 7, method, (unsigned)strlen(method));
    h[n++] = hdr(":scheme", 7, "https", 5);
    h[n++] = hdr(":authority", 10, authority, (unsigned)strlen(authority));
    h[n++] = hdr(":path", 5, path, (unsigned)strlen(path));
    h[n++] = hdr("user-agent", 10, "rust-quic-h3-client", 19);
    if (body) {
        snprintf(len, sizeof len, "%zu", body_len);
        h[n++] = hdr("content-length", 14, len, (unsigned)strlen(len));
    }
    for (int i = 0; i < extra_count; i++) {
        const char *colon = strchr(extra_headers[i], ':');
        if (!colon) continue;
        const char *v = colon + 1;
        while (*v == ' ') v++;
        h[n++] = hdr(extra_headers[i], (unsigned)(colon - extra_headers[i]), v, (unsigned)strlen(v));
    }
    if (us_quic_stream_send_headers(s, h, n, body == NULL) != 0) {
        fprintf(stderr, "h3-client: could not send the request\n");
        finish(1);
        return;
    }
    if (body) pump(s);
}

static void on_stream_headers(us_quic_stream_t *s) {
    if (!verbose) return;
    int kind = us_quic_stream_headers_kind(s);
    for (unsigned i = 0; i < us_quic_stream_header_count(s); i++) {
        const struct us_quic_header_t *h = us_quic_stream_header(s, i);
        fprintf(stderr, "%s %.*s: %.*s\n", kind == US_QUIC_HEADERS_TRAILERS ? "<<" : "<", (int)h->name_len, h->name,
            (int)h->value_len, h->value);
    }
}

static void on_stream_data(us_quic_stream_t *s, const char *data, unsigned len, int fin) {
    if (len) fwrite(data, 1, len, out);
    if (fin) ((struct stream_state *)us_quic_stream_ext(s))->done = 1;
}

static void on_stream_writable(us_quic_stream_t *s) { pump(s); }

static void on_stream_close(us_quic_stream_t *s) {
    struct stream_state *st = us_quic_stream_ext(s);
    long long code = us_quic_stream_error_code(s);
    fflush(out);
    if (st->done && code < 0) {
        finish(0);
    } else {
        fprintf(stderr, "h3-client: stream reset (H3 error 0x%llx)\n", (unsigned long long)code);
        finish(1);
    }
}

static void on_deadline(struct us_timer_t *t) {
    (void)t;
    fprintf(stderr, "h3-client: timed out\n");
    finish(3);
}

static int load_file(const char *name, char **data, size_t *len) {
    FILE *f = fopen(name, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc(size > 0 ? (size_t)size : 1);
    *len = fread(*data, 1, (size_t)(size > 0 ? size : 0), f);
    fclose(f);
    return 0;
}

static void usage(void) {
    fprintf(stderr,
        "usage: h3-client [--insecure] [--cacert FILE] [--data @FILE|STRING] [-X METHOD] [-H 'n: v'] [-o FILE] [-v]\n"
        "                 [--timeout SECONDS] https://HOST:PORT/PATH\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *url = NULL, *outfile = NULL, *cacert = NULL;
    int timeout_s = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--insecure") || !strcmp(a, "-k")) insecure = 1;
        else if (!strcmp(a, "-v")) verbose = 1;
        else if (!strcmp(a, "--data") && v) {
            i++;
            if (v[0] == '@') {
                if (load_file(v + 1, &body, &body_len) != 0) {
                    fprintf(stderr, "h3-client: cannot read %s\n", v + 1);
                    return 2;
                }
            } else {
                body = strdup(v);
                body_len = strlen(v);
            }
        } else if (!strcmp(a, "-o") && v) outfile = v, i++;
        else if (!strcmp(a, "-X") && v) method = v, i++;
        else if (!strcmp(a, "-H") && v && extra_count < 32) extra_headers[extra_count++] = v, i++;
        else if (!strcmp(a, "--cacert") && v) cacert = v, i++;
        else if (!strcmp(a, "--timeout") && v) timeout_s = atoi(v), i++;
        else if (a[0] != '-' && !url) url = a;
        else usage();
    }
    if (!url || strncmp(url, "https://", 8) != 0) usage();
    if (!method) method = body ? "POST" : "GET";
    /* https://host[:port][/path] with [v6] hosts. */
    const char *p = url + 8, *hend;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend) usage();
        snprintf(host, sizeof host, "%.*s", (int)(hend - p - 1), p + 1);
        hend++;
    } else {
        hend = p + strcspn(p, ":/");
        snprintf(host, sizeof host, "%.*s", (int)(hend - p), p);
    }
    if (*hend == ':') port = atoi(hend + 1);
    const char *slash = strchr(hend, '/');
    snprintf(path, sizeof path, "%s", slash ? slash : "/");
    snprintf(authority, sizeof authority, "%.*s", (int)((slash ? slash : hend + strlen(hend)) - (url + 8)), url + 8);
    out = outfile ? fopen(outfile, "wb") : stdout;
    if (!out) {
        fprintf(stderr, "h3-client: cannot write %s\n", outfile);
        return 2;
    }

    loop = us_create_loop(NULL, NULL, NULL, NULL, 0);
    ctx = us_create_quic_client_context(loop, 0, sizeof(void *), sizeof(struct stream_state));
    if (cacert) {
        char *pem;
        size_t len;
        if (load_file(cacert, &pem, &len) != 0 || us_quic_socket_context_set_ca(ctx, pem, (unsigned)len) != 0) {
            fprintf(stderr, "h3-client: cannot use CA file %s\n", cacert);
            return 2;
        }
        free(pem);
    }
    us_quic_socket_context_on_hsk_done(ctx, on_hsk_done);
    us_quic_socket_context_on_close(ctx, on_close);
    us_quic_socket_context_on_stream_open(ctx, on_stream_open);
    us_quic_socket_context_on_stream_headers(ctx, on_stream_headers);
    us_quic_socket_context_on_stream_data(ctx, on_stream_data);
    us_quic_socket_context_on_stream_writable(ctx, on_stream_writable);
    us_quic_socket_context_on_stream_close(ctx, on_stream_close);
    deadline = us_create_timer(loop, 0, 0);
    us_timer_set(deadline, on_deadline, timeout_s * 1000, 0);

    struct us_quic_pending_connect_s *pending = NULL;
    int r = us_quic_socket_context_connect(ctx, host, port, NULL, !insecure, &conn, &pending, NULL);
    if (r == 0) {
        /* A host name: resolve it here (a CLI may block), then connect. */
        struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
        char ip[INET6_ADDRSTRLEN] = {0};
        if (getaddrinfo(us_quic_pending_connect_host(pending), NULL, &hints, &res) == 0 && res) {
            void *addr = res->ai_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                                                    : (void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
            inet_ntop(res->ai_family, addr, ip, sizeof ip);
            freeaddrinfo(res);
        }
        if (!ip[0] || us_quic_pending_connect_set_address(pending, ip) != 0) {
            fprintf(stderr, "h3-client: cannot resolve %s\n", host);
            us_quic_pending_connect_cancel(pending);
            return 1;
        }
        conn = us_quic_pending_connect_resolved(pending);
    }
    if (r < 0 || !conn) {
        fprintf(stderr, "h3-client: cannot connect to %s\n", authority);
        return 1;
    }
    us_loop_run(loop);
    us_quic_socket_context_free(ctx);
    us_loop_free(loop);
    if (out != stdout) fclose(out);
    free(body);
    return result;
}
