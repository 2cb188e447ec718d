/*
 * h3-server: serves a directory over HTTP/3, plus `/echo` (the request body back).
 * Written only against quic.h and libusockets.h; links librust_quic.a.
 *
 *   h3-server --cert cert.pem --key key.pem [--host 0.0.0.0] [--port 4433] [--root .]
 *             [--reset-key HEX64]   (the stateless reset key: a restart with the same
 *                                    key resets the connections it lost)
 *             [--ticket-keys HEX]   (session-ticket keys, 96 hex digits each, the first
 *                                    sealing: a restart with them resumes old sessions)
 *             [--early-data off|safe|all]   (what 0-RTT may carry; default safe)
 *             [--retry never|always|auto]   (address validation; default auto:
 *                                    only while handshakes exceed the limits' rate)
 *             [--quic-lb CONFIG:HEX] (connection IDs in QUIC-LB's plaintext encoding:
 *                                    config rotation 0-6, server ID of 1-11 bytes)
 *             [--reuse-port]         (share the port with other processes; with --quic-lb
 *                                    a short-header packet goes to the process whose
 *                                    index in the group is its server ID's first byte)
 *
 * `/early-data` answers "early" to a request that arrived in 0-RTT (the engine
 * marked it `early-data: 1`) and "after-handshake" to any other.
 *
 * Prints "listening on <port>" once bound. SIGINT/SIGTERM: GOAWAY, drain, exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quic.h"

#define ECHO_LIMIT (64u * 1024 * 1024)

/* Per-stream state, in the stream's ext memory. */
struct request {
    int fd;             /* file being sent, or -1 */
    off_t offset, size;
    char *body;         /* echo buffer, then response body */
    size_t body_len, body_cap, body_sent;
    int is_echo, is_head, responded;
};

static const char *root_dir = ".";
static const char *reset_key_hex, *ticket_keys_hex, *early_data_mode, *retry_mode, *quic_lb;
static char root_real[PATH_MAX];
static struct us_loop_t *loop;
static us_quic_socket_context_t *ctx;
static us_quic_listen_socket_t *listener;
static volatile sig_atomic_t stop_requested;

static struct request *req_of(us_quic_stream_t *s) { return (struct request *)us_quic_stream_ext(s); }

static const char *content_type(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    if (!strcmp(dot, ".html") || !strcmp(dot, ".htm")) return "text/html; charset=utf-8";
    if (!strcmp(dot, ".txt")) return "text/plain; charset=utf-8";
    if (!strcmp(dot, ".js")) return "text/javascript";
    if (!strcmp(dot, ".css")) return "text/css";
    if (!strcmp(dot, ".json")) return "application/json";
    if (!strcmp(dot, ".png")) return "image/png";
    return "application/octet-stream";
}

static struct us_quic_header_t hdr(const char *n, const char *v) {
    struct us_quic_header_t h = {n, (unsigned)strlen(n), v, (unsigned)strlen(v), -1};
    return h;
}

static void send_head(us_quic_stream_t *s, int status, const char *type, long long length, int end) {
    char st[4], len[24];
    snprintf(st, sizeof st, "%d", status);
    snprintf(len, sizeof len, "%lld", length);
    struct us_quic_header_t h[4] = {hdr(":status", st), hdr("content-length", len), hdr("server", "rust-quic h3-server"),
        hdr("content-type", type)};
    us_quic_stream_send_headers(s, h, 4, end);
}

/* Writes as much as flow control accepts; FIN when everything is out. */
static void pump(us_quic_stream_t *s) {
    struct request *r = req_of(s);
    char chunk[64 * 1024];
    for (;;) {
        const char *data;
        size_t n;
        if (r->fd >= 0) {
            if (r->offset >= r->size) break;
            ssize_t got = pread(r->fd, chunk, sizeof chunk, r->offset);
            if (got <= 0) {
                us_quic_stream_reset(s); /* never pretend a truncated file is complete */
                return;
            }
            data = chunk;
            n = (size_t)got;
        } else {
            if (r->body_sent >= r->body_len) break;
            data = r->body + r->body_sent;
            n = r->body_len - r->body_sent;
        }
        int w = us_quic_stream_write(s, data, (unsigned)n);
        if (w < 0) return;
        if (r->fd >= 0) r->offset += w;
        else r->body_sent += (size_t)w;
        if ((size_t)w < n) {
            us_quic_stream_want_write(s, 1);
            return;
        }
    }
    us_quic_stream_shutdown(s);
}

static void respond_text(us_quic_stream_t *s, int status, const char *text) {
    struct request *r = req_of(s);
    r->responded = 1;
    size_t n = strlen(text);
    send_head(s, status, "text/plain; charset=utf-8", (long long)n, r->is_head || n == 0);
    if (r->is_head || n == 0) return;
    r->body = strdup(text);
    r->body_len = n;
    pump(s);
}

static void serve_file(us_quic_stream_t *s, const char *url_path) {
    struct request *r = req_of(s);
    char decoded[PATH_MAX], full[PATH_MAX * 2 + 16], real[PATH_MAX];
    size_t qlen = strcspn(url_path, "?#");
    if (qlen >= sizeof decoded) return respond_text(s, 414, "path too long\n");
    memcpy(decoded, url_path, qlen);
    decoded[qlen] = 0;
    snprintf(full, sizeof full, "%s%s", root_real, decoded);
    struct stat st;
    if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
        strncat(full, decoded[qlen - 1] == '/' ? "index.html" : "/index.html", sizeof full - strlen(full) - 1);
    }
    /* Resolve and refuse anything outside the root (.., symlinks). */
    size_t rl = strlen(root_real);
    if (!realpath(full, real) || strncmp(real, root_real, rl) != 0 || (real[rl] != '/' && real[rl] != 0 && rl > 1))
        return respond_text(s, 404, "not found\n");
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return respond_text(s, 404, "not found\n");
    }
    r->responded = 1;
    send_head(s, 200, content_type(real), (long long)st.st_size, r->is_head || st.st_size == 0);
    if (r->is_head || st.st_size == 0) {
        close(fd);
        return;
    }
    r->fd = fd;
    r->size = st.st_size;
    pump(s);
}

static void on_stream_open(us_quic_stream_t *s, int is_client) {
    (void)is_client;
    struct request *r = req_of(s);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

static void on_stream_headers(us_quic_stream_t *s) {
    struct request *r = req_of(s);
    const char *method = NULL, *path = NULL;
    unsigned mlen = 0, plen = 0;
    for (unsigned i = 0; i < us_quic_stream_header_count(s); i++) {
        const struct us_quic_header_t *h = us_quic_stream_header(s, i);
        if (h->name_len == 7 && !memcmp(h->name, ":method", 7)) method = h->value, mlen = h->value_len;
        if (h->name_len == 5 && !memcmp(h->name, ":path", 5)) path = h->value, plen = h->value_len;
    }
    if (us_quic_stream_headers_kind(s) != US_QUIC_HEADERS_INITIAL || !method || !path) return;
    char p[PATH_MAX];
    if (plen >= sizeof p) return respond_text(s, 414, "path too long\n");
    memcpy(p, path, plen);
    p[plen] = 0;
    if (!strcmp(p, "/early-data")) {
        unsigned elen = 0;
        const char *early = NULL;
        for (unsigned i = 0; i < us_quic_stream_header_count(s); i++) {
            const struct us_quic_header_t *h = us_quic_stream_header(s, i);
            if (h->name_len == 10 && !memcmp(h->name, "early-data", 10)) early = h->value, elen = h->value_len;
        }
        return respond_text(s, 200, early && elen == 1 && early[0] == '1' ? "early\n" : "after-handshake\n");
    }
    /* /echo answers any method with the request body (ngtcp2's client sends it on a GET). */
    if (!strcmp(p, "/echo")) {
        r->is_echo = 1; /* answered when the body is complete */
        return;
    }
    r->is_head = mlen == 4 && !memcmp(method, "HEAD", 4);
    if (!r->is_head && !(mlen == 3 && !memcmp(method, "GET", 3))) return respond_text(s, 405, "method not allowed\n");
    serve_file(s, p);
}

static void on_stream_data(us_quic_stream_t *s, const char *data, unsigned len, int fin) {
    struct request *r = req_of(s);
    if (r->is_echo && !r->responded && len > 0) {
        if (r->body_len + len > ECHO_LIMIT) {
            r->responded = 1;
            free(r->body);
            r->body = NULL;
            r->body_len = 0;
            us_quic_stream_shutdown_read(s);
            respond_text(s, 413, "payload too large\n");
            return;
        }
        if (r->body_len + len > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap * 2 : 64 * 1024;
            while (cap < r->body_len + len) cap *= 2;
            r->body = realloc(r->body, cap);
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, data, len);
        r->body_len += len;
    }
    if (fin && r->is_echo && !r->responded) {
        r->responded = 1;
        send_head(s, 200, "application/octet-stream", (long long)r->body_len, r->body_len == 0);
        if (r->body_len) pump(s);
    }
}

static void on_stream_writable(us_quic_stream_t *s) { pump(s); }

static void on_stream_close(us_quic_stream_t *s) {
    struct request *r = req_of(s);
    if (r->fd >= 0) close(r->fd);
    free(r->body);
    r->fd = -1;
    r->body = NULL;
}

static void on_wakeup(struct us_loop_t *l) {
    (void)l;
    if (stop_requested == 1) {
        stop_requested = 2;
        fprintf(stderr, "h3-server: shutting down (GOAWAY, draining)\n");
        us_quic_socket_context_shutdown(ctx);
        us_quic_listen_socket_close(listener);
    }
}

static void on_signal(int sig) {
    (void)sig;
    if (stop_requested == 0) {
        stop_requested = 1;
        us_wakeup_loop(loop);
    } else {
        _exit(1);
    }
}

static void usage(void) {
    fprintf(stderr, "usage: h3-server --cert FILE --key FILE [--host ADDR] [--port N] [--root DIR] [--reset-key HEX64]\n"
                    "                 [--ticket-keys HEX96...] [--early-data off|safe|all] [--retry never|always|auto]\n"
                    "                 [--quic-lb CONFIG:HEX] [--reuse-port]\n");
    exit(2);
}

struct named_mode {
    const char *name;
    int mode;
};

/* The mode a command-line word names in table (ended by a NULL name), or usage(). */
static int mode_named(const char *word, const struct named_mode *table) {
    for (; table->name; table++) {
        if (!strcmp(word, table->name)) return table->mode;
    }
    usage();
    return -1;
}

/* Hex digits into out (at most max bytes); the byte count, or usage() on bad input. */
static size_t parse_hex(const char *hex, unsigned char *out, size_t max) {
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > max) usage();
    for (size_t i = 0; i < n / 2; i++) {
        unsigned byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1) usage();
        out[i] = (unsigned char)byte;
    }
    return n / 2;
}

int main(int argc, char **argv) {
    const char *host = NULL, *cert = NULL, *key = NULL;
    int port = 4433, listen_options = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--host") && v) host = v, i++;
        else if (!strcmp(a, "--port") && v) port = atoi(v), i++;
        else if (!strcmp(a, "--cert") && v) cert = v, i++;
        else if (!strcmp(a, "--key") && v) key = v, i++;
        else if (!strcmp(a, "--root") && v) root_dir = v, i++;
        else if (!strcmp(a, "--reset-key") && v) reset_key_hex = v, i++;
        else if (!strcmp(a, "--ticket-keys") && v) ticket_keys_hex = v, i++;
        else if (!strcmp(a, "--early-data") && v) early_data_mode = v, i++;
        else if (!strcmp(a, "--retry") && v) retry_mode = v, i++;
        else if (!strcmp(a, "--quic-lb") && v) quic_lb = v, i++;
        else if (!strcmp(a, "--reuse-port")) listen_options = LIBUS_LISTEN_REUSE_PORT;
        else usage();
    }
    if (!cert || !key || port < 0 || port > 65535) usage();
    if (!realpath(root_dir, root_real)) {
        fprintf(stderr, "h3-server: root %s: %s\n", root_dir, strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    loop = us_create_loop(NULL, on_wakeup, NULL, NULL, 0);
    struct us_bun_socket_context_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.cert_file_name = cert;
    opts.key_file_name = key;
    ctx = us_create_quic_socket_context(loop, opts, 0, 30);
    if (!ctx) {
        fprintf(stderr, "h3-server: could not load the certificate or key\n");
        return 1;
    }
    if (reset_key_hex) {
        unsigned char reset_key[32];
        if (parse_hex(reset_key_hex, reset_key, sizeof reset_key) != sizeof reset_key) usage();
        if (us_quic_socket_context_set_reset_key(ctx, reset_key, sizeof reset_key) != 0) usage();
    }
    if (ticket_keys_hex) {
        unsigned char keys[48 * 8];
        size_t n = parse_hex(ticket_keys_hex, keys, sizeof keys);
        if (us_quic_socket_context_set_ticket_keys(ctx, keys, (unsigned)n) != 0) usage();
    }
    if (early_data_mode) {
        static const struct named_mode modes[] = {
            {"off", US_QUIC_EARLY_DATA_OFF}, {"safe", US_QUIC_EARLY_DATA_SAFE}, {"all", US_QUIC_EARLY_DATA_ALL}, {NULL, 0}};
        if (us_quic_socket_context_set_early_data(ctx, mode_named(early_data_mode, modes)) != 0) usage();
    }
    if (retry_mode) {
        static const struct named_mode modes[] = {{"never", US_QUIC_RETRY_NEVER},
            {"always", US_QUIC_RETRY_ALWAYS}, {"auto", US_QUIC_RETRY_ABOVE_RATE}, {NULL, 0}};
        if (us_quic_socket_context_set_retry(ctx, mode_named(retry_mode, modes)) != 0) usage();
    }
    if (quic_lb) {
        unsigned char server_id[16];
        const char *colon = strchr(quic_lb, ':');
        if (!colon || colon == quic_lb) usage();
        size_t n = parse_hex(colon + 1, server_id, sizeof server_id);
        if (n == 0) usage();
        if (us_quic_socket_context_set_quic_lb(ctx, (unsigned)atoi(quic_lb), server_id, (unsigned)n) != 0) usage();
    }
    us_quic_socket_context_on_stream_open(ctx, on_stream_open);
    us_quic_socket_context_on_stream_headers(ctx, on_stream_headers);
    us_quic_socket_context_on_stream_data(ctx, on_stream_data);
    us_quic_socket_context_on_stream_writable(ctx, on_stream_writable);
    us_quic_socket_context_on_stream_close(ctx, on_stream_close);
    listener = us_quic_socket_context_listen(ctx, host, port, listen_options, sizeof(struct request));
    if (!listener) {
        fprintf(stderr, "h3-server: cannot listen on %s:%d\n", host ? host : "*", port);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on %d\n", us_quic_listen_socket_port(listener));
    fflush(stdout);
    us_loop_run(loop);
    us_quic_socket_context_free(ctx);
    us_loop_free(loop);
    return 0;
}
