/*
 * Compiles against quic.h and quic_embed.h and calls every function in them,
 * over real loopback exchanges: a server and a client context on one usockets
 * loop, then the same on an embedded loop driven as Bun drives it.
 * Closes happen from inside callbacks; run under valgrind or ASan to check
 * that nothing is used after it is freed and nothing leaks.
 *
 *   abi-test CERT.pem KEY.pem
 *
 * Ends with "N passed, M failed"; exit status 0 only if nothing failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <poll.h>

#include "quic.h"
#include "quic_embed.h"

static int passed, failed;
#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (cond) passed++;                                                         \
        else {                                                                      \
            failed++;                                                               \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
        }                                                                           \
    } while (0)

static struct us_loop_t *loop;
static us_quic_socket_context_t *server, *client;
static us_quic_listen_socket_t *listener;
static us_quic_socket_t *client_conn;
static struct us_timer_t *watchdog;
static int marker;
static int step, server_closes, client_closes, responses_done, reset_seen, hsk_ok;
static int kinds_seen[4];
static unsigned long long close_stream_id = ~0ULL, reset_stream_id = ~0ULL;
static char body[64];
static size_t body_len;

static struct us_quic_header_t hdr(const char *n, const char *v) {
    struct us_quic_header_t h = {n, (unsigned)strlen(n), v, (unsigned)strlen(v), -1};
    return h;
}

static int is_server(us_quic_stream_t *s) { return us_quic_stream_context(s) == server; }

static const char *find(us_quic_stream_t *s, const char *name, unsigned *len) {
    for (unsigned i = 0; i < us_quic_stream_header_count(s); i++) {
        const struct us_quic_header_t *h = us_quic_stream_header(s, i);
        CHECK(h->qpack_index == -1);
        if (h->name_len == strlen(name) && !memcmp(h->name, name, h->name_len)) {
            *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

static void finish_all(void) {
    us_timer_close(watchdog);
    us_quic_socket_context_shutdown(server);
    us_quic_listen_socket_close(listener);
    if (client_conn) us_quic_socket_close(client_conn); /* from inside a callback */
}

/* ---- connection callbacks ---- */

static void on_open(us_quic_socket_t *s) {
    CHECK(us_quic_socket_ext(s) != NULL);
    if (us_quic_socket_context(s) == client) {
        /* The connect's user pointer is the first word of the connection ext. */
        CHECK(*(void **)us_quic_socket_ext(s) == &marker);
    }
}

static void on_hsk_done(us_quic_socket_t *s, int ok) {
    CHECK(ok == 1);
    hsk_ok = ok;
    char status[256];
    CHECK(us_quic_socket_status(s, status, sizeof status) > 0);
    CHECK(strstr(status, "established") != NULL);
    struct us_quic_socket_info_t info;
    CHECK(us_quic_socket_info(s, &info) == 0 && info.established == 1 && info.bytes_received > 0 && info.resumed == 0 && info.early_data == 0);
    char name[64];
    CHECK(us_quic_socket_alpn(s, name, sizeof name) == 2 && !strcmp(name, "h3"));
    CHECK(us_quic_socket_server_name(s, name, sizeof name) >= 0);
    CHECK(us_quic_socket_alpn(s, name, 1) == -1);
    if (us_quic_socket_context(s) == client) {
        unsigned char der[4096];
        int der_len = us_quic_socket_peer_certificate(s, der, sizeof der);
        CHECK(der_len > 100 && der[0] == 0x30); /* a DER SEQUENCE */
        CHECK(us_quic_socket_peer_certificate(s, NULL, 0) == der_len);
    }
    /* HTTP/3 without DATAGRAM negotiated: refused clearly, nothing queued. */
    CHECK(us_quic_socket_send_datagram(s, "x", 1) == -2);
    CHECK(us_quic_socket_datagram_max_size(s) == -1);
    us_quic_socket_make_uni_stream(s); /* HTTP/3 owns uni streams: never granted */
    CHECK(us_quic_socket_streams_avail(s) > 0);
    us_quic_socket_make_stream(s);
}

static int settings_seen;
static void on_settings(us_quic_socket_t *s) {
    unsigned long long v = 0;
    settings_seen++;
    /* No WebTransport here: no extended CONNECT; the field-section limit is announced. */
    CHECK(us_quic_socket_peer_setting(s, 0x8, &v) == 0);
    if (us_quic_socket_context(s) == client) CHECK(us_quic_socket_peer_setting(s, 0x6, &v) == 1 && v == 32 * 1024);
    us_quic_socket_make_webtransport_stream(NULL, 0, 0);
}

static void on_stream_datagram(us_quic_stream_t *s, const char *data, unsigned int len) {
    (void)s, (void)data, (void)len;
    CHECK(!"no HTTP datagram is sent in this test");
}

static void on_goaway(us_quic_socket_t *s) { CHECK(us_quic_socket_streams_avail(s) == 0); }

static void on_close(us_quic_socket_t *s) {
    unsigned long long code = 99;
    int app = 0;
    if (us_quic_socket_context(s) == server) server_closes++;
    else {
        client_closes++;
        client_conn = NULL;
        CHECK(us_quic_socket_close_error(s, &code, &app) == 1);
        CHECK(code == 0x100 && app == 1);
        /* The server's ticket arrived after the handshake: it resumes a later connection. */
        unsigned char ticket[4096];
        int ticket_len = us_quic_socket_session(s, NULL, 0);
        CHECK(ticket_len > 32 && ticket_len <= (int)sizeof ticket);
        CHECK(us_quic_socket_session(s, ticket, sizeof ticket) == ticket_len);
        CHECK(us_quic_socket_context_add_session(client, "example.test", 443, 1, ticket, (unsigned)ticket_len) == 0);
        CHECK(us_quic_socket_context_add_session(client, "example.test", 443, 1, ticket, 0) == -1); /* empty */
        CHECK(us_quic_socket_context_add_session(server, "example.test", 443, 1, ticket, (unsigned)ticket_len) == -1); /* a client's */
    }
    CHECK(us_quic_socket_session(NULL, NULL, 0) == -1);
    us_quic_socket_close(s); /* closing a closed connection is harmless */
    us_quic_socket_close_with_error(s, 7, "again", 5);
}

/* ---- stream callbacks ---- */

static void on_stream_open(us_quic_stream_t *s, int is_client) {
    CHECK(us_quic_stream_ext(s) != NULL);
    CHECK(us_quic_stream_socket(s) != NULL);
    if (!is_client) return;
    step++;
    struct us_quic_header_t req[5] = {hdr(":method", "GET"), hdr(":scheme", "https"), hdr(":authority", "localhost"),
        hdr(":path", step == 1 ? "/abi" : step == 2 ? "/reset" : "/close"), hdr("x-test", "1")};
    CHECK(us_quic_stream_send_headers(s, req, 5, 0) == 0);
    CHECK(us_quic_stream_write(s, "", 0) == 0);
    CHECK(us_quic_stream_write(NULL, "x", 1) == -1);
    us_quic_stream_want_read(s, 1);
    us_quic_stream_want_write(s, 0);
    us_quic_stream_flush(s);
    if (step == 2) {
        /* Reset once the server has the head (its 103 says so): a stream reset
         * before its head arrives is never announced to the server. */
        reset_stream_id = us_quic_stream_id(s);
        return;
    }
    if (step == 3) close_stream_id = us_quic_stream_id(s);
    us_quic_stream_shutdown(s);
}

static void on_stream_headers(us_quic_stream_t *s) {
    int kind = us_quic_stream_headers_kind(s);
    unsigned len = 0;
    CHECK(us_quic_stream_webtransport_session(s) == -1);
    if (!is_server(s)) {
        /* The client did not enable DATAGRAM: no HTTP datagrams either. */
        CHECK(us_quic_stream_datagram_max_size(s) == -1);
        CHECK(us_quic_stream_send_datagram(s, "x", 1) == -2);
        if (kind >= 1 && kind <= 3) kinds_seen[kind]++;
        if (kind == US_QUIC_HEADERS_INITIAL) CHECK(find(s, ":status", &len) != NULL && len == 3);
        if (kind == US_QUIC_HEADERS_INFORMATIONAL && us_quic_stream_id(s) == reset_stream_id) {
            us_quic_stream_reset_with_code(s, 0x10c); /* aborts with that code; never a FIN */
            CHECK(us_quic_stream_write(s, "x", 1) == -1);
            us_quic_socket_make_stream(us_quic_stream_socket(s));
        }
        return;
    }
    const char *path = find(s, ":path", &len);
    CHECK(path != NULL);
    unsigned xlen = 0;
    CHECK(find(s, "x-test", &xlen) != NULL && xlen == 1);
    CHECK(us_quic_stream_header(s, 1000) == NULL);
    if (!path) return;
    if (len == 6 && !memcmp(path, "/close", 6)) {
        us_quic_stream_stop_sending(s, 0x10c);
        us_quic_stream_reset_with_code(NULL, 0x10c); /* NULL is refused, not dereferenced */
        us_quic_stream_shutdown_read(s);
        us_quic_stream_close(s); /* close from inside on_stream_headers */
        return;
    }
    if (len != 4) { /* /reset: say the head arrived, then wait for the client's RESET_STREAM */
        CHECK(us_quic_stream_send_informational(s, "103") == 0);
        return;
    }
    /* remote address: binary, 4 bytes for 127.0.0.1 */
    char addr[16];
    int alen = sizeof addr, port = 0, v6 = 1;
    us_quic_socket_remote_address(us_quic_stream_socket(s), addr, &alen, &port, &v6);
    CHECK(alen == 4 && !memcmp(addr, "\x7f\x00\x00\x01", 4) && port > 0 && v6 == 0);
    CHECK(us_quic_stream_send_informational(s, "103") == 0);
    CHECK(us_quic_stream_send_informational(s, "200") == -1);
    struct us_quic_header_t res[2] = {hdr(":status", "200"), hdr("content-length", "5")};
    CHECK(us_quic_stream_send_headers(s, res, 2, 0) == 0);
    CHECK(us_quic_stream_write(s, "hello", 5) == 5);
    struct us_quic_header_t trailer = hdr("x-trailer", "t");
    struct us_quic_header_t bad_trailer = hdr(":status", "200");
    CHECK(us_quic_stream_send_headers(s, &bad_trailer, 1, 1) == -1);
    CHECK(us_quic_stream_send_headers(s, &trailer, 1, 1) == 0);
    CHECK(us_quic_stream_write(s, "late", 4) == -1);
    (void)us_quic_stream_has_unacked(s);
    us_quic_stream_flush(s);
}

static void on_stream_data(us_quic_stream_t *s, const char *data, unsigned len, int fin) {
    if (is_server(s)) return;
    if (len && body_len + len < sizeof body) {
        memcpy(body + body_len, data, len);
        body_len += len;
    }
    if (fin) {
        responses_done++;
        us_quic_socket_make_stream(us_quic_stream_socket(s));
    }
}

static void on_stream_writable(us_quic_stream_t *s) { (void)s; }

static void on_stream_close(us_quic_stream_t *s) {
    long long code = us_quic_stream_error_code(s);
    if (is_server(s) && code == 0x10c) reset_seen++;
    /* Everything is still readable inside on_stream_close. */
    CHECK(us_quic_stream_ext(s) != NULL);
    us_quic_stream_close(s);
    us_quic_stream_reset(s);
    if (!is_server(s) && us_quic_stream_id(s) == close_stream_id) finish_all();
}

/* A client aimed at a UDP port nobody listens on: ICMP makes it fail at once. */
static int dead_hsk = -1, dead_errno;
static void on_dead_hsk(us_quic_socket_t *s, int ok) {
    dead_hsk = ok;
    dead_errno = us_quic_socket_errno(s);
}

static int closed_udp_port(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void on_watchdog(struct us_timer_t *t) {
    (void)t;
    fprintf(stderr, "FAIL: watchdog fired at step %d\n", step);
    failed++;
    finish_all();
}

static struct us_bun_socket_context_options_t files(const char *cert, const char *key) {
    struct us_bun_socket_context_options_t o;
    memset(&o, 0, sizeof o);
    o.cert_file_name = cert;
    o.key_file_name = key;
    return o;
}

static void install(us_quic_socket_context_t *c) {
    us_quic_socket_context_on_open(c, on_open);
    us_quic_socket_context_on_hsk_done(c, on_hsk_done);
    us_quic_socket_context_on_goaway(c, on_goaway);
    us_quic_socket_context_on_close(c, on_close);
    us_quic_socket_context_on_stream_open(c, on_stream_open);
    us_quic_socket_context_on_stream_headers(c, on_stream_headers);
    us_quic_socket_context_on_stream_data(c, on_stream_data);
    us_quic_socket_context_on_stream_writable(c, on_stream_writable);
    us_quic_socket_context_on_stream_close(c, on_stream_close);
    us_quic_socket_context_on_settings(c, on_settings);
    us_quic_socket_context_on_stream_datagram(c, on_stream_datagram);
}

/* ---- the embed ABI (quic_embed.h): a static route fetched on an embedded loop ---- */

/* [u32 len][name][u32 len][value]... as us_quic_embed_read_headers writes it. */
static unsigned put_field(unsigned char *out, unsigned off, const char *name, const char *value) {
    unsigned n = (unsigned)strlen(name), v = (unsigned)strlen(value);
    memcpy(out + off, &n, 4);
    memcpy(out + off + 4, name, n);
    memcpy(out + off + 4 + n, &v, 4);
    memcpy(out + off + 8 + n, value, v);
    return off + 8 + n + v;
}

static int embed_status, embed_body_len, embed_done;
static char embed_body[64];
static us_quic_socket_context_t *embed_client;

static void embed_on_hsk_done(us_quic_socket_t *s, int ok) {
    if (ok) us_quic_socket_make_stream(s);
    else embed_done = 1;
}

static void embed_on_stream_open(us_quic_stream_t *s, int is_client) {
    if (!is_client) return;
    unsigned char block[256];
    unsigned len = put_field(block, 0, ":method", "GET");
    len = put_field(block, len, ":scheme", "https");
    len = put_field(block, len, ":authority", "localhost");
    len = put_field(block, len, ":path", "/static");
    CHECK(us_quic_embed_send_headers(s, (const unsigned char *)"\x05", 1, 0) == -1); /* malformed block */
    CHECK(us_quic_embed_send_headers(s, block, len, 1) == 0);
}

static void embed_on_stream_headers(us_quic_stream_t *s) {
    unsigned char small[4];
    unsigned need = us_quic_embed_read_headers(s, small, sizeof small);
    CHECK(need > sizeof small); /* too small: nothing written, the size needed returned */
    unsigned char buf[1024];
    CHECK(us_quic_embed_read_headers(s, buf, sizeof buf) == need);
    unsigned n, v;
    memcpy(&n, buf, 4);
    memcpy(&v, buf + 4 + n, 4);
    if (n == 7 && !memcmp(buf + 4, ":status", 7)) embed_status = atoi((const char *)(buf + 8 + n));
    char ip[64];
    int port = 0;
    CHECK(us_quic_embed_remote_address(s, ip, sizeof ip, &port) == 9 && !strcmp(ip, "127.0.0.1") && port > 0);
    CHECK(us_quic_embed_remote_address(s, ip, 4, &port) == -1);
}

static void embed_on_stream_data(us_quic_stream_t *s, const char *data, unsigned len, int fin) {
    if (embed_body_len + len <= sizeof embed_body) memcpy(embed_body + embed_body_len, data, len);
    embed_body_len += (int)len;
    if (fin) {
        embed_done = 1;
        us_quic_socket_close(us_quic_stream_socket(s));
    }
}

static void embed_on_stream_noop(us_quic_stream_t *s) { (void)s; }

/* A UDP socket on 127.0.0.1 (an ephemeral port): the host's wake-up socket in these tests. */
static int loopback_udp_socket(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&at, sizeof at) == 0);
    return fd;
}

static unsigned udp_port(int fd) {
    struct sockaddr_in at;
    socklen_t len = sizeof at;
    CHECK(getsockname(fd, (struct sockaddr *)&at, &len) == 0);
    return ntohs(at.sin_port);
}

static void test_embed(const char *cert, unsigned cert_len, const char *key, unsigned key_len) {
    CHECK(us_quic_embed_loop(NULL) == NULL && us_quic_embed_set_wake_port(NULL, 1) == -1 && us_quic_embed_run(NULL) == -1);
    CHECK(us_quic_embed_read_headers(NULL, NULL, 0) == 0);
    CHECK(us_quic_embed_send_headers(NULL, NULL, 0, 1) == -1);
    CHECK(us_quic_embed_respond(NULL, NULL, 0, NULL, 0) == -1);
    CHECK(us_quic_embed_remote_address(NULL, NULL, 0, NULL) == -1);
    us_quic_embed_t *e = us_quic_embed_create();
    CHECK(e != NULL);
    struct us_loop_t *eloop = us_quic_embed_loop(e);
    /* The host's wake-up socket, as Bun's UDP socket would be. */
    int wake = loopback_udp_socket();
    CHECK(us_quic_embed_set_wake_port(e, 0) == -1);
    CHECK(us_quic_embed_set_wake_port(e, udp_port(wake)) == 0);
    CHECK(us_quic_embed_set_wake_port(e, udp_port(wake)) == -1); /* started already */
    /* The engine thread runs the loop now: the host holds the baton for every call. */
    us_quic_embed_lock(NULL);
    us_quic_embed_release(NULL);
    us_quic_embed_lock(e);
    us_quic_embed_lock(e); /* held already: a no-op */
    char err[256] = "";
    CHECK(us_quic_embed_server_context(eloop, "garbage", 7, key, key_len, NULL, 0, 5, err, sizeof err) == NULL);
    CHECK(err[0] != 0);
    us_quic_socket_context_t *srv =
        us_quic_embed_server_context(eloop, cert, cert_len, key, key_len, NULL, 0, 5, err, sizeof err);
    CHECK(srv != NULL);
    CHECK(us_quic_embed_add_server_name(srv, "other.test", "garbage", 7, key, key_len, NULL, 0, err, sizeof err) == -1);
    CHECK(us_quic_embed_add_server_name(srv, "*.other.test", cert, cert_len, key, key_len, NULL, 0, err, sizeof err) == 0);
    unsigned char fields[64];
    unsigned flen = put_field(fields, 0, ":status", "200");
    flen = put_field(fields, flen, "content-type", "text/plain");
    CHECK(us_quic_embed_add_static_route(srv, (const unsigned char *)"nopath", 6, fields, flen, NULL, 0) == -1);
    CHECK(us_quic_embed_add_static_route(srv, (const unsigned char *)"/gone", 5, fields, flen, NULL, 0) == 0);
    us_quic_embed_clear_static_routes(srv);
    CHECK(us_quic_embed_add_static_route(srv, (const unsigned char *)"/static", 7, fields, flen,
              (const unsigned char *)"embedded", 8) == 0);
    us_quic_listen_socket_t *ls = us_quic_socket_context_listen(srv, "127.0.0.1", 0, 0, 0);
    CHECK(ls != NULL);

    embed_client = us_create_quic_client_context(eloop, 0, 0, 0);
    us_quic_socket_context_on_hsk_done(embed_client, embed_on_hsk_done);
    us_quic_socket_context_on_stream_open(embed_client, embed_on_stream_open);
    us_quic_socket_context_on_stream_headers(embed_client, embed_on_stream_headers);
    us_quic_socket_context_on_stream_data(embed_client, embed_on_stream_data);
    us_quic_socket_context_on_stream_writable(embed_client, embed_on_stream_noop);
    us_quic_socket_context_on_stream_close(embed_client, embed_on_stream_noop);
    us_quic_socket_t *conn = NULL;
    struct us_quic_pending_connect_s *pending = NULL;
    CHECK(us_quic_socket_context_connect(embed_client, "127.0.0.1", us_quic_listen_socket_port(ls), "localhost", 0,
              &conn, &pending, NULL) == 1);
    us_quic_embed_release(e);
    /* As Bun drives it: wait for a wake-up datagram, take the baton, deliver
     * what the engine thread held, flush and give the baton back. */
    for (int i = 0; i < 2000 && !embed_done; i++) {
        struct pollfd pfd = {.fd = wake, .events = POLLIN};
        if (poll(&pfd, 1, 5) > 0) {
            char byte;
            CHECK(recv(wake, &byte, 1, 0) == 1);
            us_quic_embed_lock(e);
            CHECK(us_quic_embed_run(e) >= 0);
            us_quic_embed_release(e);
        }
    }
    CHECK(embed_status == 200);
    CHECK(embed_body_len == 8 && !memcmp(embed_body, "embedded", 8));
    us_quic_embed_lock(e);
    us_quic_listen_socket_close(ls);
    us_quic_socket_context_free(embed_client);
    us_quic_socket_context_free(srv);
    us_quic_loop_process(eloop);
    us_quic_embed_free(e); /* with the baton held: let go */
    close(wake);
    /* An embed whose engine thread never started frees its pipes too (valgrind counts fds). */
    us_quic_embed_free(us_quic_embed_create());
}

/* The client thread's events, as a host reads them after a wake byte. */
static int ct_hsk_ok, ct_status[16], ct_body_len[16], ct_fin[16], ct_closed[16], ct_conn_closed;
static long long ct_code[16];
static char ct_body[16][16];

static void ct_take_events(us_quic_client_thread_t *t) {
    unsigned len = 0;
    const unsigned char *ev = us_quic_client_thread_poll(t, &len);
    for (unsigned off = 0; off + 9 <= len;) {
        unsigned char kind = ev[off];
        unsigned id, size;
        memcpy(&id, ev + off + 1, 4);
        memcpy(&size, ev + off + 5, 4);
        const unsigned char *p = ev + off + 9;
        off += 9 + size;
        unsigned r = id % 16;
        if (kind == US_QUIC_CLIENT_EVENT_HANDSHAKE) ct_hsk_ok = p[0];
        else if (kind == US_QUIC_CLIENT_EVENT_CONNECTION_CLOSED) ct_conn_closed++;
        else if (kind == US_QUIC_CLIENT_EVENT_HEADERS && size > 12 && p[0] == US_QUIC_HEADERS_INITIAL && !memcmp(p + 5, ":status", 7)) ct_status[r] = atoi((const char *)p + 16);
        else if (kind == US_QUIC_CLIENT_EVENT_DATA) {
            if (ct_body_len[r] + size - 1 <= sizeof ct_body[r]) memcpy(ct_body[r] + ct_body_len[r], p + 1, size - 1);
            ct_body_len[r] += (int)size - 1;
            ct_fin[r] |= p[0];
        } else if (kind == US_QUIC_CLIENT_EVENT_REQUEST_CLOSED) {
            ct_closed[r]++;
            memcpy(&ct_code[r], p, 8);
        }
    }
}

/* Runs the server's loop and takes the client thread's events until done() or ~5 s. */
static void ct_pump(struct us_loop_t *sloop, us_quic_client_thread_t *t, int wake, int (*done)(void)) {
    for (int i = 0; i < 5000 && !done(); i++) {
        us_loop_run_once(sloop, 1);
        struct pollfd pfd = {.fd = wake, .events = POLLIN};
        if (poll(&pfd, 1, 0) > 0) {
            char byte;
            CHECK(recv(wake, &byte, 1, 0) == 1);
            ct_take_events(t);
        }
    }
}

static int ct_requests_done(void) { return ct_closed[10] && ct_closed[12] && ct_closed[13]; }
static int ct_connection_done(void) { return ct_conn_closed > 0; }

static void test_client_thread(const char *cert, unsigned cert_len, const char *key, unsigned key_len) {
    unsigned len = 7;
    CHECK(us_quic_client_thread_create(0) == NULL); /* no wake-up port */
    CHECK(us_quic_client_thread_add_config(NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0) == -1);
    CHECK(us_quic_client_thread_connect(NULL, 0, 1, "127.0.0.1", 1, NULL, 0) == -1);
    CHECK(us_quic_client_thread_request(NULL, 1, 1, NULL, 0, 1) == -1);
    CHECK(us_quic_client_thread_write(NULL, 1, "x", 1) == -1);
    CHECK(us_quic_client_thread_poll(NULL, &len) == NULL);
    us_quic_client_thread_shutdown(NULL, 1);
    us_quic_client_thread_reset(NULL, 1, 0x10c);
    us_quic_client_thread_want_read(NULL, 1, 1);
    us_quic_client_thread_close(NULL, 1);
    us_quic_client_thread_flush(NULL);
    us_quic_client_thread_free(NULL);

    /* The server: a static route on a loop of this thread. */
    struct us_loop_t *sloop = us_create_loop(NULL, NULL, NULL, NULL, 0);
    char err[256] = "";
    us_quic_socket_context_t *srv =
        us_quic_embed_server_context(sloop, cert, cert_len, key, key_len, NULL, 0, 5, err, sizeof err);
    unsigned char fields[64];
    unsigned flen = put_field(fields, 0, ":status", "200");
    CHECK(us_quic_embed_add_static_route(srv, (const unsigned char *)"/static", 7, fields, flen,
              (const unsigned char *)"threaded", 8) == 0);
    us_quic_listen_socket_t *ls = us_quic_socket_context_listen(srv, "127.0.0.1", 0, 0, 0);
    int port = us_quic_listen_socket_port(ls);

    int wake = loopback_udp_socket();
    us_quic_client_thread_t *t = us_quic_client_thread_create(udp_port(wake));
    CHECK(t != NULL);
    CHECK(us_quic_client_thread_add_config(t, "garbage", 7, NULL, 0, NULL, 0, NULL, 0) == -2);
    CHECK(us_quic_client_thread_add_config(t, NULL, 0, "garbage", 7, "x", 1, NULL, 0) == -3);
    /* Trusting the test certificate: the connection below verifies it. */
    int config = us_quic_client_thread_add_config(t, cert, cert_len, NULL, 0, NULL, 0, NULL, 0);
    CHECK(config == 0);
    CHECK(us_quic_client_thread_connect(t, 7, 1, "127.0.0.1", port, "localhost", 1) == -1); /* no such config */
    CHECK(us_quic_client_thread_connect(t, config, 0, "127.0.0.1", port, "localhost", 1) == -1); /* id 0 */
    CHECK(us_quic_client_thread_connect(t, config, 1, "localhost", port, NULL, 1) == -1); /* not an IP literal */
    CHECK(us_quic_client_thread_connect(t, config, 1, "127.0.0.1", port, "localhost", 1) == 0); /* no ticket yet */
    CHECK(us_quic_client_thread_connect(t, config, 1, "127.0.0.1", port, "localhost", 1) == -1); /* id in use */

    unsigned char get[128];
    unsigned glen = put_field(get, 0, ":method", "GET");
    glen = put_field(get, glen, ":scheme", "https");
    glen = put_field(get, glen, ":authority", "localhost");
    glen = put_field(get, glen, ":path", "/static");
    CHECK(us_quic_client_thread_request(t, 1, 10, get, glen, 1) == 0);
    CHECK(us_quic_client_thread_request(t, 1, 10, get, glen, 1) == -1); /* id in use */
    CHECK(us_quic_client_thread_request(t, 99, 11, get, glen, 1) == -1); /* no such connection */
    /* A body that ends at once (FIN after the head), and one request reset. */
    CHECK(us_quic_client_thread_request(t, 1, 12, get, glen, 0) == 0);
    CHECK(us_quic_client_thread_write(t, 12, "", 0) >= 0);
    us_quic_client_thread_shutdown(t, 12);
    CHECK(us_quic_client_thread_request(t, 1, 13, get, glen, 0) == 0);
    us_quic_client_thread_reset(t, 13, 0x10c);
    us_quic_client_thread_want_read(t, 10, 1);
    us_quic_client_thread_flush(t);
    ct_pump(sloop, t, wake, ct_requests_done);
    CHECK(ct_hsk_ok == 1);
    CHECK(ct_status[10] == 200 && ct_body_len[10] == 8 && !memcmp(ct_body[10], "threaded", 8) && ct_fin[10]);
    CHECK(ct_closed[10] == 1 && ct_code[10] == -1);
    CHECK(ct_status[12] == 200 && ct_closed[12] == 1);
    CHECK(ct_closed[13] == 1 && ct_code[13] == 0x10c && ct_status[13] == 0);
    CHECK(us_quic_client_thread_write(t, 10, "x", 1) == -1); /* closed: unknown now */
    us_quic_client_thread_close(t, 1);
    us_quic_client_thread_flush(t);
    ct_pump(sloop, t, wake, ct_connection_done);
    CHECK(ct_conn_closed == 1);
    us_quic_client_thread_free(t);
    close(wake);
    us_quic_listen_socket_close(ls);
    us_quic_socket_context_free(srv);
    us_loop_run_once(sloop, 0);
    us_loop_free(sloop);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: abi-test CERT.pem KEY.pem\n");
        return 2;
    }
    us_quic_global_init();
    loop = us_create_loop(NULL, NULL, NULL, NULL, 0);
    CHECK(us_create_quic_socket_context(loop, files("/nonexistent.pem", argv[2]), 0, 5) == NULL);
    server = us_create_quic_socket_context(loop, files(argv[1], argv[2]), 32, 5);
    CHECK(server != NULL);
    if (!server) return 1;
    CHECK(us_quic_socket_context_ext(server) != NULL);
    CHECK(us_quic_socket_context_loop(server) == loop);
    CHECK(us_quic_socket_context_add_server_name(server, "*.example.test", files(argv[1], argv[2])) == 0);
    CHECK(us_quic_socket_context_add_server_name(server, "bad.test", files(argv[1], "/nonexistent")) == -1);
    us_quic_socket_context_set_conn_ext_size(server, 32);
    us_quic_socket_context_set_max_header_size(server, 32 * 1024);
    unsigned char reset_key[32] = {1, 2, 3};
    CHECK(us_quic_socket_context_set_reset_key(server, reset_key, 31) == -1); /* 32 bytes or nothing */
    CHECK(us_quic_socket_context_set_reset_key(server, reset_key, sizeof reset_key) == 0);
    unsigned char ticket_keys[96] = {7};
    CHECK(us_quic_socket_context_set_ticket_keys(server, ticket_keys, 47) == -1); /* 48 bytes per key */
    CHECK(us_quic_socket_context_set_ticket_keys(server, ticket_keys, sizeof ticket_keys) == 0);
    CHECK(us_quic_socket_context_set_early_data(server, 3) == -1);
    CHECK(us_quic_socket_context_set_early_data(server, US_QUIC_EARLY_DATA_SAFE) == 0);
    CHECK(us_quic_socket_context_set_retry(server, 5) == -1);
    CHECK(us_quic_socket_context_set_retry(server, US_QUIC_RETRY_ALWAYS) == 0); /* this test's client answers a Retry */
    CHECK(us_quic_socket_context_set_token_key(server, reset_key, 31) == -1);
    CHECK(us_quic_socket_context_set_token_key(server, reset_key, sizeof reset_key) == 0);
    const unsigned char server_id[2] = {0x5e, 0x01};
    CHECK(us_quic_socket_context_set_quic_lb(server, 7, server_id, 2) == -1); /* 7 means unroutable */
    CHECK(us_quic_socket_context_set_quic_lb(server, 1, server_id, 12) == -1); /* no 4-byte nonce left */
    CHECK(us_quic_socket_context_set_quic_lb(server, 1, server_id, 0) == 0);  /* random, as by default */
    CHECK(us_quic_socket_context_set_quic_lb(server, 1, server_id, 2) == 0);  /* the rest runs on QUIC-LB IDs */
    install(server);
    listener = us_quic_socket_context_listen(server, "127.0.0.1", 0, 0, 64);
    CHECK(listener != NULL);
    CHECK(us_quic_listen_socket_port(listener) > 0);
    /* A second listen socket on the same context, IPv6 loopback if available. */
    us_quic_listen_socket_t *second = us_quic_socket_context_listen(server, "127.0.0.1", 0, 0, 64);
    CHECK(second != NULL && us_quic_listen_socket_port(second) != us_quic_listen_socket_port(listener));
    us_quic_listen_socket_close(second);
    char local[16];
    CHECK(us_quic_listen_socket_local_address(listener, local, sizeof local) == 4);
    CHECK(!memcmp(local, "\x7f\x00\x00\x01", 4));

    client = us_create_quic_client_context(loop, 8, 16, 64);
    CHECK(client != NULL);
    CHECK(us_quic_socket_context_set_reset_key(client, (const unsigned char *)"0123456789abcdef0123456789abcdef", 32) == -1); /* a server's */
    CHECK(us_quic_socket_context_set_ticket_keys(client, ticket_keys, 48) == -1); /* a server's */
    CHECK(us_quic_socket_context_set_early_data(client, US_QUIC_EARLY_DATA_ALL) == 0);
    CHECK(us_quic_socket_context_set_retry(client, US_QUIC_RETRY_NEVER) == -1); /* a server's */
    CHECK(us_quic_socket_context_set_token_key(client, reset_key, sizeof reset_key) == -1);
    CHECK(us_quic_socket_context_set_quic_lb(client, 1, server_id, 2) == -1); /* a server's */
    CHECK(us_quic_socket_context_set_quic_lb(NULL, 1, server_id, 2) == -1);
    CHECK(us_quic_socket_context_set_qlog_dir(NULL, "/tmp") == -1);
    CHECK(us_quic_socket_context_set_qlog_dir(client, NULL) == 0); /* off ($QLOGDIR is not set here) */
    install(client);
    us_quic_socket_context_on_datagram(client, NULL);
    /* Raw-QUIC settings on a scratch context (the HTTP/3 test keeps its own). */
    us_quic_socket_context_t *raw = us_create_quic_client_context(loop, 0, 0, 0);
    CHECK(us_quic_socket_context_set_raw_alpn(raw, (const unsigned char *)"\x08" "bun-quic", 9) == 0);
    CHECK(us_quic_socket_context_set_raw_alpn(raw, (const unsigned char *)"\x09" "bun-quic", 9) == -1);
    CHECK(us_quic_socket_context_set_datagrams(raw, 1) == 0);
    CHECK(us_quic_socket_context_set_max_streams(raw, 10, 10) == 0);
    CHECK(us_quic_socket_context_set_webtransport(raw, 1) == -1); /* raw QUIC has no HTTP/3 */
    us_quic_socket_context_t *wt = us_create_quic_client_context(loop, 0, 0, 0);
    CHECK(us_quic_socket_context_set_webtransport(wt, 4) == 0);
    us_quic_socket_context_free(wt);
    CHECK(us_quic_socket_peer_setting(NULL, 8, NULL) == -1);
    CHECK(us_quic_stream_webtransport_session(NULL) == -1);
    CHECK(us_quic_stream_send_datagram(NULL, "x", 1) == -2);
    CHECK(us_quic_stream_datagram_max_size(NULL) == -1);
    CHECK(us_quic_socket_context_set_idle_timeout(raw, 5000) == 0);
    CHECK(us_quic_socket_context_set_congestion_control(raw, "cubic", 5) == 0);
    CHECK(us_quic_socket_context_set_congestion_control(raw, "vegas", 5) == -1);
    CHECK(us_quic_socket_context_set_congestion_control(raw, "bbr2", 4) == 0);
    us_quic_limits_t limits;
    CHECK(us_quic_socket_context_get_limits(server, &limits) == 0);
    CHECK(limits.request_head_timeout_ms == 10000 && limits.max_header_fields == 200);
    CHECK(us_quic_socket_context_set_limits(raw, &limits) == -1); /* a client context */
    limits.stream_resets_per_second = 50;
    CHECK(us_quic_socket_context_set_limits(server, &limits) == 0);
    us_quic_limits_t again;
    CHECK(us_quic_socket_context_get_limits(server, &again) == 0 && again.stream_resets_per_second == 50);
    us_quic_socket_context_free(raw);
    FILE *f = fopen(argv[1], "rb");
    char pem[16384];
    size_t pem_len = f ? fread(pem, 1, sizeof pem, f) : 0;
    if (f) fclose(f);
    CHECK(us_quic_socket_context_set_ca(client, "garbage", 7) == -1);
    CHECK(us_quic_socket_context_set_ca(client, pem, (unsigned)pem_len) == 0);
    /* Client certificates: the server asks for one (accepting any), the client shows the test certificate. */
    CHECK(us_quic_socket_context_set_client_verification(client, NULL, 0, 1, 1) == -1); /* not a server */
    CHECK(us_quic_socket_context_set_client_verification(server, "garbage", 7, 1, 1) == -1);
    CHECK(us_quic_socket_context_set_client_verification(server, NULL, 0, 1, 0) == 0);
    FILE *kf = fopen(argv[2], "rb");
    char key_pem[16384];
    size_t key_len = kf ? fread(key_pem, 1, sizeof key_pem, kf) : 0;
    if (kf) fclose(kf);
    CHECK(us_quic_socket_context_set_client_certificate(client, "garbage", 7, "x", 1, NULL, 0) == -1);
    CHECK(us_quic_socket_context_set_client_certificate(client, pem, (unsigned)pem_len, key_pem, (unsigned)key_len, NULL, 0) == 0);

    /* A host name goes through a pending connect; one is cancelled. */
    struct us_quic_pending_connect_s *pending = NULL;
    us_quic_socket_t *qs = NULL;
    CHECK(us_quic_socket_context_connect(client, "localhost", us_quic_listen_socket_port(listener), NULL, 1, &qs,
              &pending, &marker) == 0);
    CHECK(pending != NULL && qs == NULL);
    CHECK(us_quic_pending_connect_user(pending) == &marker);
    CHECK(us_quic_pending_connect_addrinfo(pending) == NULL);
    CHECK(strcmp(us_quic_pending_connect_host(pending), "localhost") == 0);
    CHECK(us_quic_pending_connect_set_address(pending, "not-an-ip") == -1);
    CHECK(us_quic_pending_connect_set_address(pending, "127.0.0.1") == 0);
    client_conn = us_quic_pending_connect_resolved(pending);
    CHECK(client_conn != NULL);
    struct us_quic_pending_connect_s *other = NULL;
    CHECK(us_quic_socket_context_connect(client, "unused.test", 9, NULL, 1, &qs, &other, NULL) == 0);
    us_quic_pending_connect_cancel(other);
    CHECK(us_quic_socket_context_connect(client, "127.0.0.1", 0, NULL, 1, &qs, &other, NULL) == -1);

    us_quic_socket_context_t *dead = us_create_quic_client_context(loop, 0, 0, 0);
    us_quic_socket_context_on_hsk_done(dead, on_dead_hsk);
    us_quic_socket_t *dead_conn = NULL;
    CHECK(us_quic_socket_context_connect(dead, "127.0.0.1", closed_udp_port(), NULL, 0, &dead_conn, &other, NULL) == 1);
    CHECK(dead_conn != NULL && us_quic_socket_errno(dead_conn) == 0);

    watchdog = us_create_timer(loop, 0, 0);
    us_timer_set(watchdog, on_watchdog, 10000, 0);
    us_quic_loop_flush_if_pending(loop);
    us_quic_loop_process(loop);
    us_loop_run(loop);

    CHECK(hsk_ok == 1);
    CHECK(settings_seen == 2);
    CHECK(responses_done >= 1);
    CHECK(body_len == 5 && !memcmp(body, "hello", 5));
    CHECK(kinds_seen[1] == 2 && kinds_seen[2] >= 1 && kinds_seen[3] == 1);
    CHECK(reset_seen == 1);
    CHECK(client_closes == 1 && server_closes == 1);
    struct us_quic_context_stats_t st;
    us_quic_socket_context_stats(server, &st);
    CHECK(st.connections_accepted == 1 && st.requests >= 2 && st.connections_active == 0);
    CHECK(st.bytes_sent > 0 && st.packets_received > 0);
    CHECK(st.connections_resumed == 0 && st.early_data_accepted == 0); /* one connection, no ticket before it */
    CHECK(st.requests_in_early_data == 0 && st.requests_held_for_handshake == 0);
    CHECK(st.retries_sent >= 1 && st.invalid_tokens == 0); /* more when a slow run (valgrind) retransmits the first Initial */

    CHECK(dead_hsk == 0 && dead_errno == ECONNREFUSED);
    us_quic_socket_context_free(dead);
    us_quic_socket_context_free(client);
    us_quic_socket_context_free(server);
    us_loop_free(loop);
    test_embed(pem, (unsigned)pem_len, key_pem, (unsigned)key_len);
    test_client_thread(pem, (unsigned)pem_len, key_pem, (unsigned)key_len);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
