/*
 * QUIC and HTTP/3 for usockets: the C ABI of rust-quic (quiche + BoringSSL).
 *
 * Same names, argument types and meanings as upstream Bun's quic.h (lsquic), so a
 * Bun tree links librust_quic.a where quic.c was. Functions after the
 * "Extensions" marker are ours; upstream has no equivalent.
 *
 * Threading: every function must be called on the thread that runs the context's
 * loop. Callbacks run on that thread, from inside the loop's iteration.
 *
 * Lifetime: nothing is freed inside a callback. Closing a connection, stream,
 * listen socket or context from anywhere (including its own callbacks) marks it
 * closing; memory is released by the sweep that runs after callbacks return
 * (us_quic_loop_process, in the loop's post step). Pointers stay valid until the
 * object's close callback has returned.
 */
#ifndef US_QUIC_H
#define US_QUIC_H

#define LIBUS_USE_QUIC 1

#include "libusockets.h"

#ifdef __cplusplus
extern "C" {
#endif

struct us_quic_socket_context_s;
struct us_quic_listen_socket_s;
struct us_quic_socket_s;
struct us_quic_stream_s;

typedef struct us_quic_socket_context_s us_quic_socket_context_t;
typedef struct us_quic_listen_socket_s us_quic_listen_socket_t;
typedef struct us_quic_socket_s us_quic_socket_t;
typedef struct us_quic_stream_s us_quic_stream_t;

/* A header field. Outgoing: the caller's memory, read during the call only.
 * Incoming: owned by the stream, valid from on_stream_headers until on_stream_close.
 * qpack_index is a QPACK static-table hint (0..98) or -1; incoming headers carry -1. */
struct us_quic_header_t {
    const char *name;
    unsigned int name_len;
    const char *value;
    unsigned int value_len;
    int qpack_index;
};

/* Kept for source compatibility; the engine needs no process-wide initialisation. */
void us_quic_global_init(void);

/* A server context: TLS from `options` (cert/key/ca files or in-memory PEM,
 * passphrase), ALPN h3, idle timeout in seconds (0 = 30 s). NULL on a TLS error. */
us_quic_socket_context_t *us_create_quic_socket_context(
    struct us_loop_t *loop, struct us_bun_socket_context_options_t options,
    unsigned int ext_size, unsigned int idle_timeout_s);

/* Send GOAWAY on every connection and refuse new ones; in-flight streams finish,
 * then each connection closes with H3_NO_ERROR. */
void us_quic_socket_context_shutdown(us_quic_socket_context_t *ctx);
/* Close every listen socket and connection now (on_stream_close and on_close still
 * fire) and free the context after the current callbacks return. */
void us_quic_socket_context_free(us_quic_socket_context_t *ctx);

/* Serve another certificate for `hostname` (exact, or "*.example.com" for one
 * label). 0 on success, -1 on a TLS error. */
int us_quic_socket_context_add_server_name(us_quic_socket_context_t *ctx,
    const char *hostname, struct us_bun_socket_context_options_t options);

void *us_quic_socket_context_ext(us_quic_socket_context_t *ctx);
struct us_loop_t *us_quic_socket_context_loop(us_quic_socket_context_t *ctx);

/* Bind a UDP socket (host NULL = all addresses) and accept connections on it.
 * flags: LIBUS_LISTEN_REUSE_PORT. NULL on failure. */
us_quic_listen_socket_t *us_quic_socket_context_listen(
    us_quic_socket_context_t *ctx, const char *host, int port, int flags,
    unsigned int stream_ext_size);

void us_quic_listen_socket_close(us_quic_listen_socket_t *ls);
int us_quic_listen_socket_port(us_quic_listen_socket_t *ls);
/* Writes the bound IP in binary (4 or 16 bytes) into buf; returns its length, or -1. */
int us_quic_listen_socket_local_address(us_quic_listen_socket_t *ls, char *buf, int len);

/* A client context: one per loop is enough for every outbound connection.
 * Certificates are checked against the system roots; reject_unauthorized is
 * chosen per connection. */
us_quic_socket_context_t *us_create_quic_client_context(
    struct us_loop_t *loop, unsigned int ext_size,
    unsigned int conn_ext_size, unsigned int stream_ext_size);

struct us_quic_pending_connect_s;
struct addrinfo_request;

/* Connect to host:port. An IP literal connects now (returns 1, *out_qs set,
 * on_open fires before this returns). A host name returns 0 with *out_pending:
 * resolve it (us_quic_pending_connect_set_address or the addrinfo request), then
 * call us_quic_pending_connect_resolved. -1 on error. `sni` may be NULL (host is
 * used); reject_unauthorized=1 verifies the certificate chain and the name. */
int us_quic_socket_context_connect(
    us_quic_socket_context_t *ctx, const char *host, int port, const char *sni,
    int reject_unauthorized, us_quic_socket_t **out_qs,
    struct us_quic_pending_connect_s **out_pending, void *user);

void *us_quic_pending_connect_user(struct us_quic_pending_connect_s *pc);
/* Our loop has no asynchronous resolver of its own: this returns NULL. Use
 * us_quic_pending_connect_host and us_quic_pending_connect_set_address. */
struct addrinfo_request *us_quic_pending_connect_addrinfo(struct us_quic_pending_connect_s *pc);
/* Start the connection to the address set before; frees `pc`. NULL on failure
 * (no address, bind failed). */
us_quic_socket_t *us_quic_pending_connect_resolved(struct us_quic_pending_connect_s *pc);
/* Abandon and free `pc`. */
void us_quic_pending_connect_cancel(struct us_quic_pending_connect_s *pc);

/* Ask for a new bidirectional stream; on_stream_open(stream, 1) fires once the
 * peer's MAX_STREAMS allows it (now, or when credit arrives). */
void us_quic_socket_make_stream(us_quic_socket_t *s);
/* Streams that could be opened now; 0 after GOAWAY or once closing. */
unsigned us_quic_socket_streams_avail(us_quic_socket_t *s);
/* A one-line text summary of the connection (state, rtt, cwnd, bytes); returns
 * the length written (without NUL), or -1. */
int us_quic_socket_status(us_quic_socket_t *s, char *buf, unsigned int len);

/* Connection callbacks. Server: on_open fires when the handshake completes.
 * Client: on_open fires when the connection is created, on_hsk_done when the
 * handshake completes (ok=1) or fails (ok=0, on_close follows). */
void us_quic_socket_context_on_open(us_quic_socket_context_t *ctx,
    void (*on_open)(us_quic_socket_t *));
void us_quic_socket_context_on_hsk_done(us_quic_socket_context_t *ctx,
    void (*on_hsk_done)(us_quic_socket_t *, int ok));
/* The peer sent GOAWAY: no new streams; the ones in flight finish. */
void us_quic_socket_context_on_goaway(us_quic_socket_context_t *ctx,
    void (*on_goaway)(us_quic_socket_t *));
void us_quic_socket_context_on_close(us_quic_socket_context_t *ctx,
    void (*on_close)(us_quic_socket_t *));

/* Stream callbacks. on_stream_headers fires for each header block (1xx responses,
 * the final head, trailers: see us_quic_stream_headers_kind). on_stream_data with
 * fin=1 marks the end of the peer's body (len may be 0). on_stream_close fires
 * exactly once per opened stream, last. An HTTP/3 server's request stream opens
 * (on_stream_open) together with its head: a stream reset or malformed before its
 * head, or answered by the engine itself (static route, 431), is never announced. */
void us_quic_socket_context_on_stream_open(us_quic_socket_context_t *ctx,
    void (*on_open)(us_quic_stream_t *, int is_client));
void us_quic_socket_context_on_stream_headers(us_quic_socket_context_t *ctx,
    void (*on_headers)(us_quic_stream_t *));
void us_quic_socket_context_on_stream_data(us_quic_socket_context_t *ctx,
    void (*on_data)(us_quic_stream_t *, const char *, unsigned int, int fin));
void us_quic_socket_context_on_stream_writable(us_quic_socket_context_t *ctx,
    void (*on_writable)(us_quic_stream_t *));
void us_quic_socket_context_on_stream_close(us_quic_socket_context_t *ctx,
    void (*on_close)(us_quic_stream_t *));

/* Body bytes as DATA frames. Returns the bytes accepted (0..len) under flow
 * control; on_stream_writable fires when more fits (want_write is set for you
 * after a short write). -1 when the stream cannot be written (closed, reset, no
 * headers sent yet on a server stream). */
int us_quic_stream_write(us_quic_stream_t *s, const char *data, unsigned int len);
/* want_read(s, 0) stops delivering body data; flow control then holds the peer. */
void us_quic_stream_want_read(us_quic_stream_t *s, int want);
void us_quic_stream_want_write(us_quic_stream_t *s, int want);
/* A header block (request, response, or trailers once a body was written).
 * end_stream=1 sends FIN after it. 0 on success, -1 on error. */
int us_quic_stream_send_headers(us_quic_stream_t *s,
    const struct us_quic_header_t *headers, unsigned int count, int end_stream);
/* A 1xx interim response (`:status` only, e.g. "100", "103"). 0 or -1. */
int us_quic_stream_send_informational(us_quic_stream_t *s, const char *status3);
/* FIN after what was written. */
void us_quic_stream_shutdown(us_quic_stream_t *s);
/* Send what was written now instead of at the end of the loop iteration. */
void us_quic_stream_flush(us_quic_stream_t *s);
/* Stop reading: STOP_SENDING(H3_NO_ERROR) unless the peer already finished. */
void us_quic_stream_shutdown_read(us_quic_stream_t *s);
/* FIN (if not sent) and stop reading; on_stream_close follows. */
void us_quic_stream_close(us_quic_stream_t *s);
/* Abort: RESET_STREAM and STOP_SENDING with H3_REQUEST_CANCELLED, never a FIN. */
void us_quic_stream_reset(us_quic_stream_t *s);
/* 1 while written bytes are still held by the engine (not yet handed to QUIC). */
int us_quic_stream_has_unacked(us_quic_stream_t *s);

void *us_quic_stream_ext(us_quic_stream_t *s);
us_quic_socket_t *us_quic_stream_socket(us_quic_stream_t *s);
us_quic_socket_context_t *us_quic_stream_context(us_quic_stream_t *s);

/* Run every QUIC context on `loop`: expire timers, send what is pending, sweep
 * closed objects, arm the loop's QUIC timer. Our loop calls it in its post step. */
void us_quic_loop_process(struct us_loop_t *loop);
/* Send now if anything was written since the last process. */
void us_quic_loop_flush_if_pending(struct us_loop_t *loop);

unsigned int us_quic_stream_header_count(us_quic_stream_t *s);
const struct us_quic_header_t *us_quic_stream_header(us_quic_stream_t *s, unsigned int i);

void *us_quic_socket_ext(us_quic_socket_t *s);
us_quic_socket_context_t *us_quic_socket_context(us_quic_socket_t *s);
/* The peer's IP in binary into buf (at least 16 bytes): *len is 4 or 16 (a
 * v4-mapped address is written as 4 bytes), plus its port and family. */
void us_quic_socket_remote_address(us_quic_socket_t *s, char *buf, int *len, int *port, int *is_ipv6);
/* CONNECTION_CLOSE with H3_NO_ERROR; streams and on_close follow. */
void us_quic_socket_close(us_quic_socket_t *s);

/* ---------------------------------------------------------------------------
 * Extensions (rust-quic only)
 * ------------------------------------------------------------------------- */

/* Server connections' ext size (default 64 bytes); set before listening. */
void us_quic_socket_context_set_conn_ext_size(us_quic_socket_context_t *ctx, unsigned int size);
/* Largest request/response header section accepted (decoded bytes, default 64 KiB).
 * A larger one gets 431 (server) or a stream error; the connection lives on. */
void us_quic_socket_context_set_max_header_size(us_quic_socket_context_t *ctx, unsigned int size);

/* Client contexts: also trust these PEM certificates (added to the system roots)
 * for connections made with reject_unauthorized=1. len 0 clears. 0 or -1. */
int us_quic_socket_context_set_ca(us_quic_socket_context_t *ctx, const char *pem, unsigned int len);

/* Extension. Server contexts: ask clients for a certificate (request_cert) and,
 * with reject_unauthorized, refuse the handshake unless the client's certificate
 * chains to `ca` (PEM; len 0 = the system roots), as Node's and Bun's
 * requestCert / rejectUnauthorized. us_create_quic_socket_context reads the same
 * from its options (ca, request_cert, reject_unauthorized). Applies to new
 * connections. 0 or -1. */
int us_quic_socket_context_set_client_verification(us_quic_socket_context_t *ctx,
    const char *ca, unsigned int ca_len, int request_cert, int reject_unauthorized);

/* Extension. Client contexts: the certificate chain and key (PEM, optional
 * passphrase) presented to servers that request one. cert_len 0 removes it.
 * 0 or -1 (unreadable, or the key does not match the certificate). */
int us_quic_socket_context_set_client_certificate(us_quic_socket_context_t *ctx,
    const char *cert, unsigned int cert_len, const char *key, unsigned int key_len,
    const char *passphrase, unsigned int passphrase_len);

/* What the last on_stream_headers delivered. */
#define US_QUIC_HEADERS_INFORMATIONAL 1
#define US_QUIC_HEADERS_INITIAL 2
#define US_QUIC_HEADERS_TRAILERS 3
/* Extension: a WebTransport stream linked to a session (no fields; see
 * us_quic_stream_webtransport_session). Its data is unframed bytes. */
#define US_QUIC_HEADERS_WEBTRANSPORT 4
int us_quic_stream_headers_kind(us_quic_stream_t *s);
/* Reset with an application error code of the caller's choice. */
void us_quic_stream_reset_with_code(us_quic_stream_t *s, unsigned long long code);
/* The code of the peer's RESET_STREAM / STOP_SENDING, or of our own stream error
 * (e.g. 0x10e H3_MESSAGE_ERROR), or -1 when the stream ended cleanly. Valid in
 * on_stream_close. */
long long us_quic_stream_error_code(us_quic_stream_t *s);
unsigned long long us_quic_stream_id(us_quic_stream_t *s);
/* The connection's close error: 1 if the peer or we sent CONNECTION_CLOSE with an
 * error, with its code and whether it was an application (H3) code. */
int us_quic_socket_close_error(us_quic_socket_t *s, unsigned long long *code, int *is_app);
/* The socket error that ended a client connection (ECONNREFUSED when the server's
 * port answered with ICMP port unreachable, ...), or 0. A dead port fails the
 * handshake at once (on_hsk_done(s, 0)) instead of after a timeout. Like every
 * accessor, valid until on_close has returned (read it in on_hsk_done/on_close). */
int us_quic_socket_errno(us_quic_socket_t *s);
/* Host name for a pending connect (NUL-terminated, owned by pc). */
const char *us_quic_pending_connect_host(struct us_quic_pending_connect_s *pc);
/* Set the resolved IP literal (v4 or v6). 0 on success, -1 if not an IP. */
int us_quic_pending_connect_set_address(struct us_quic_pending_connect_s *pc, const char *ip);

/* Raw QUIC (Bun.quic): streams carry bytes instead of HTTP/3 messages.
 * set_raw_alpn takes the ALPN list in wire format (each protocol preceded by its
 * length byte, e.g. "\x08" "bun-quic"); set before listening or connecting. */
int us_quic_socket_context_set_raw_alpn(us_quic_socket_context_t *ctx, const unsigned char *wire, unsigned int len);
/* QUIC DATAGRAM (RFC 9221) on new connections. 0 or -1. */
int us_quic_socket_context_set_datagrams(us_quic_socket_context_t *ctx, int enabled);
/* Stream limits granted to peers on new connections. 0 or -1. */
int us_quic_socket_context_set_max_streams(us_quic_socket_context_t *ctx, unsigned int bidi, unsigned int uni);
/* A locally opened unidirectional stream (raw QUIC only); on_stream_open(s, 1)
 * fires when allowed. A stream is unidirectional when (us_quic_stream_id(s) & 2). */
void us_quic_socket_make_uni_stream(us_quic_socket_t *s);
/* Received DATAGRAM frames, one call each (the buffer is valid during the call). */
void us_quic_socket_context_on_datagram(us_quic_socket_context_t *ctx,
    void (*on_datagram)(us_quic_socket_t *, const char *, unsigned int));
/* Queue a DATAGRAM: 0 queued, -1 larger than us_quic_socket_datagram_max_size
 * (never silently truncated or dropped here), -2 not negotiated / not open,
 * -3 send queue full. */
int us_quic_socket_send_datagram(us_quic_socket_t *s, const char *data, unsigned int len);
/* Largest DATAGRAM payload that fits now, or -1 when DATAGRAM is unavailable. */
int us_quic_socket_datagram_max_size(us_quic_socket_t *s);

/* CONNECTION_CLOSE with an application error code and reason of the caller's choice. */
void us_quic_socket_close_with_error(us_quic_socket_t *s, unsigned long long code, const char *reason, unsigned int reason_len);
/* STOP_SENDING with an application error code of the caller's choice. */
void us_quic_stream_stop_sending(us_quic_stream_t *s, unsigned long long code);
/* Extension. The congestion controller of new connections: "bbr2" (default;
 * BBRv2, which keeps its rate through random loss and reordering), "cubic" or
 * "reno". 0, or -1 for another name. */
int us_quic_socket_context_set_congestion_control(us_quic_socket_context_t *ctx, const char *name, unsigned int len);
/* Idle timeout of new connections, in milliseconds. 0 or -1. */
int us_quic_socket_context_set_idle_timeout(us_quic_socket_context_t *ctx, unsigned int ms);
/* Extension. The 32-byte key a server derives its stateless reset tokens from
 * (HMAC-SHA256 of each connection ID, RFC 9000 10.3.2); random per context unless
 * set. A server answers a short-header packet of a connection it does not have with
 * a Stateless Reset (smaller than the packet, at most 100 a second, burst 200), so
 * processes, or a restarted server, sharing the key make their peers close at once.
 * 0, or -1 (not a server context, or len is not 32). */
int us_quic_socket_context_set_reset_key(us_quic_socket_context_t *ctx, const unsigned char *key, unsigned int len);
/* Extension. What 0-RTT (TLS early data on a resumed session) may carry on new
 * connections. Early data can be replayed by anyone who captured it, so:
 * US_QUIC_EARLY_DATA_OFF: tickets allow none, clients send none;
 * US_QUIC_EARLY_DATA_SAFE (the default): HTTP/3 servers run GET, HEAD and OPTIONS
 *   requests that arrive in it at once, with an `early-data: 1` field added (RFC 8470),
 *   and hold any other request until the handshake completes (a replay never completes
 *   one); clients send 0-RTT when their ticket allows it. Raw QUIC: as OFF;
 * US_QUIC_EARLY_DATA_ALL: everything runs at once (HTTP/3 requests marked
 *   `early-data: 1`; answer 425 Too Early to what must not).
 * Clients resume with the latest ticket of the same server name and port, each ticket
 * once (a context keeps 256). 0, or -1 (unknown mode). */
#define US_QUIC_EARLY_DATA_OFF 0
#define US_QUIC_EARLY_DATA_SAFE 1
#define US_QUIC_EARLY_DATA_ALL 2
int us_quic_socket_context_set_early_data(us_quic_socket_context_t *ctx, int mode);
/* Extension. A server's session-ticket keys: len is a multiple of 48 (per key: 16-byte
 * name, 16-byte HMAC-SHA256 key, 16-byte AES-128 key, as Node's ticketKeys); the first
 * seals new tickets, the others still open the tickets they sealed (rotate by putting
 * the new key first). Processes sharing the keys resume, and accept 0-RTT of, each
 * other's sessions. Without this a context draws its own, replaced every 12 hours.
 * Applies to the next handshake. 0, or -1 (not a server, bad length). */
int us_quic_socket_context_set_ticket_keys(us_quic_socket_context_t *ctx, const unsigned char *keys, unsigned int len);
/* Extension. A directory for the qlog (JSON-SEQ) of each new connection,
 * <trace id>-<server|client>.sqlog: quiche's transport events and the engine's
 * HTTP/3 ones (header blocks, SETTINGS). A context starts with $QLOGDIR; NULL turns
 * it off. A file that cannot be made is reported once on stderr. 0, or -1 (NULL ctx). */
int us_quic_socket_context_set_qlog_dir(us_quic_socket_context_t *ctx, const char *dir);
/* Extension. Clients: the session ticket (from us_quic_socket_session, maybe of another
 * process) the next connection to server_name (its SNI, or the IP literal connected to)
 * and port offers, as if an earlier connection had left it; verify as that connection
 * will pass it (a ticket is offered only to connections that verify alike). 0, or -1
 * (not a client, empty ticket). */
int us_quic_socket_context_add_session(us_quic_socket_context_t *ctx, const char *server_name, int port, int verify,
    const unsigned char *ticket, unsigned int len);
/* Extension. Clients: the connection's latest session ticket (quiche's serialized
 * session and the server's transport parameters), copied into buf when it fits; its
 * length (0: none yet, the server sends one after the handshake), or -1 (NULL). */
int us_quic_socket_session(us_quic_socket_t *s, unsigned char *buf, unsigned int len);
/* Extension. Address validation (RFC 9000 8.1.2): when a new client must first echo a
 * Retry token sealed for its address (one more round trip) before the server spends
 * a handshake on it. US_QUIC_RETRY_NEVER; US_QUIC_RETRY_ALWAYS; US_QUIC_RETRY_ABOVE_RATE
 * (the default): while new connections arrive faster than the limits'
 * handshakes_per_second. Until validated, quiche sends a client at most three times
 * the bytes it received. Tokens last 10 s and are bound to the client's address and
 * port. 0, or -1 (not a server, unknown mode). */
#define US_QUIC_RETRY_NEVER 0
#define US_QUIC_RETRY_ALWAYS 1
#define US_QUIC_RETRY_ABOVE_RATE 2
int us_quic_socket_context_set_retry(us_quic_socket_context_t *ctx, int mode);
/* Extension. The 32-byte key Retry tokens are sealed with (AES-256-GCM); random per
 * context unless set, so processes behind one address share it. 0, or -1 (not a
 * server, len is not 32). */
int us_quic_socket_context_set_token_key(us_quic_socket_context_t *ctx, const unsigned char *key, unsigned int len);
/* Extension. The connection IDs a server issues from now on (its first, a Retry's,
 * NEW_CONNECTION_ID's) in QUIC-LB's plaintext encoding (draft-ietf-quic-load-balancers):
 * 16 bytes, the first holding config_id (0-6) in its top 3 bits and 15 (the length
 * minus one) in the rest, then server_id (1-11 bytes), then a random nonce. A load
 * balancer that routes by connection ID then keeps each connection on this server.
 * A socket this context listens on afterwards with LIBUS_LISTEN_REUSE_PORT gets a
 * classic-BPF reuse-port program: a short-header packet goes to the socket whose index
 * in the port's group is its server ID's first byte (so each process behind one port
 * takes its index, in the order they bind, as that byte), and a long header (a new
 * connection) by the kernel's hash; a migrating client keeps reaching its process.
 * len 0: random IDs again (the default). 0, or -1 (not a server, config_id above 6,
 * server_id too long). */
int us_quic_socket_context_set_quic_lb(us_quic_socket_context_t *ctx, unsigned int config_id,
    const unsigned char *server_id, unsigned int len);
/* Extension. Limits that bound what one client can cost a server; 0 turns a
 * limit off. A request past a deadline gets 408; a connection past a rate or the stall count is
 * closed with H3_EXCESSIVE_LOAD; a new connection past a count is refused with
 * CONNECTION_REFUSED. Each outcome has a counter in us_quic_context_stats_t. */
typedef struct us_quic_limits_t {
    /* A request stream's head must be complete this long after the stream
     * opened (a client trickling HEADERS). Default 10000 ms. */
    unsigned int request_head_timeout_ms;
    /* A request body the server reads must make progress at least this often
     * until a response begins (a long response is never cut); time the
     * application holds the stream paused does not count. Default 30000 ms. */
    unsigned int request_body_timeout_ms;
    /* Requests of one connection that may hit a deadline above before the
     * connection is closed. Default 4. */
    unsigned int stalled_requests_per_connection;
    /* Request streams a client may open per second on one connection, bursts of
     * twice that. Default 0 (concurrency is already bounded by MAX_STREAMS). */
    unsigned int stream_opens_per_second;
    /* Request streams a client may cancel (RESET_STREAM / STOP_SENDING before the
     * exchange ended) per second on one connection, bursts of twice that: the
     * "rapid reset" attack. Default 200. */
    unsigned int stream_resets_per_second;
    /* Connections open at once from one client IP address. Default 4096. */
    unsigned int connections_per_address;
    /* Connections open at once on the context. Default 65536. */
    unsigned int max_connections;
    /* Fields of a request head (pseudo-headers included) past which it gets 431.
     * Default 200, as Bun's own server. */
    unsigned int max_header_fields;
    /* New connections per second (burst as many again) past which clients must
     * first prove their address with a Retry round trip (see
     * us_quic_socket_context_set_retry); 0: no Retry for load. Default 5000. */
    unsigned int handshakes_per_second;
} us_quic_limits_t;
/* The context's limits into *out. 0 or -1. */
int us_quic_socket_context_get_limits(us_quic_socket_context_t *ctx, us_quic_limits_t *out);
/* Server contexts: replace the limits (read them first to change a few). 0, or
 * -1 for a client context. */
int us_quic_socket_context_set_limits(us_quic_socket_context_t *ctx, const us_quic_limits_t *limits);

/* Per-connection figures. */
struct us_quic_socket_info_t {
    unsigned long long rtt_us;
    unsigned long long packets_sent;
    unsigned long long packets_received;
    unsigned long long packets_lost;
    unsigned long long bytes_sent;
    unsigned long long bytes_received;
    unsigned long long streams;
    unsigned long long established;
    unsigned long long resumed; /* a resumed session (a ticket) */
    /* 0-RTT: the server accepted it (once the handshake is done), or it is
     * flowing now (during the handshake). */
    unsigned long long early_data;
};
int us_quic_socket_info(us_quic_socket_t *s, struct us_quic_socket_info_t *out);
/* The negotiated ALPN protocol / the SNI server name, NUL-terminated in buf;
 * the length, or -1 if buf is too small. */
int us_quic_socket_alpn(us_quic_socket_t *s, char *buf, unsigned int len);
int us_quic_socket_server_name(us_quic_socket_t *s, char *buf, unsigned int len);

/* Extension: WebTransport over HTTP/3 and HTTP datagrams (RFC 9297).
 * set_webtransport(ctx, n) with n > 0 announces extended CONNECT (RFC 9220),
 * H3_DATAGRAM and the WebTransport settings (draft-02 flag and the later drafts'
 * WT_MAX_SESSIONS = n), enables QUIC DATAGRAM and accepts WebTransport streams:
 * a peer's bidirectional stream starting with signal 0x41 or unidirectional
 * stream of type 0x54 fires on_stream_headers with US_QUIC_HEADERS_WEBTRANSPORT
 * (after on_stream_open) and then carries raw bytes. Which session it belongs to
 * (a CONNECT stream id) is for the application to check. 0 or -1. */
int us_quic_socket_context_set_webtransport(us_quic_socket_context_t *ctx, unsigned int max_sessions);
/* The peer's SETTINGS arrived (HTTP/3); a client waits for it before an extended CONNECT. */
void us_quic_socket_context_on_settings(us_quic_socket_context_t *ctx, void (*on_settings)(us_quic_socket_t *));
/* A peer SETTINGS value: 1 and *value when sent, 0 when not sent, -1 when the
 * peer's SETTINGS have not arrived yet. */
int us_quic_socket_peer_setting(us_quic_socket_t *s, unsigned long long id, unsigned long long *value);
/* A locally opened WebTransport stream of session `session_id`; on_stream_open(s, 1)
 * fires when stream credit allows, with the session prefix already queued. */
void us_quic_socket_make_webtransport_stream(us_quic_socket_t *s, unsigned long long session_id, int unidirectional);
/* The peer's leaf certificate (DER): its length, copied into buf when it fits;
 * -1 when there is none (yet). For certificate pinning (serverCertificateHashes). */
int us_quic_socket_peer_certificate(us_quic_socket_t *s, unsigned char *buf, unsigned int len);
/* The session (CONNECT stream id) a WebTransport stream belongs to, or -1. */
long long us_quic_stream_webtransport_session(us_quic_stream_t *s);
/* HTTP datagrams of request stream s (quarter stream id added/removed by the
 * engine). A datagram for a stream that is gone is dropped; one without a
 * valid quarter stream id closes the connection with H3_DATAGRAM_ERROR. */
void us_quic_socket_context_on_stream_datagram(us_quic_socket_context_t *ctx,
    void (*on_stream_datagram)(us_quic_stream_t *, const char *, unsigned int));
/* Same results as us_quic_socket_send_datagram. */
int us_quic_stream_send_datagram(us_quic_stream_t *s, const char *data, unsigned int len);
/* Largest HTTP datagram payload for s now, or -1. */
int us_quic_stream_datagram_max_size(us_quic_stream_t *s);

/* Counters of a context, for stats and tests. */
struct us_quic_context_stats_t {
    unsigned long long connections_accepted;
    unsigned long long connections_active;
    unsigned long long requests;
    unsigned long long bytes_received;
    unsigned long long bytes_sent;
    unsigned long long packets_received;
    unsigned long long packets_sent;
    unsigned long long packets_dropped;
    unsigned long long stream_errors;
    /* Requests answered 408: head or body past its deadline. */
    unsigned long long requests_timed_out;
    /* Requests answered 431: head over the size or field-count limit. */
    unsigned long long headers_too_large;
    /* Initial datagrams refused at the connection limits (an attempt may send several). */
    unsigned long long connections_refused;
    /* Connections closed for load: stalled requests, open or reset floods,
     * streams past MAX_STREAMS (STREAM_LIMIT_ERROR). */
    unsigned long long connections_closed_for_load;
    /* HTTP/3 connections closed (GOAWAY) after no request was open for the idle
     * timeout, however often the client pinged. */
    unsigned long long connections_closed_idle;
    /* Handshakes that resumed a session. */
    unsigned long long connections_resumed;
    /* Connections whose 0-RTT was accepted (servers: that they accepted). */
    unsigned long long early_data_accepted;
    /* Servers: requests that reached the application in 0-RTT (early-data: 1). */
    unsigned long long requests_in_early_data;
    /* Servers: requests that arrived in 0-RTT and waited for the handshake. */
    unsigned long long requests_held_for_handshake;
    /* Servers: Retry packets sent (address validation). */
    unsigned long long retries_sent;
    /* Servers: Initials whose token did not open (forged, expired, another address or key). */
    unsigned long long invalid_tokens;
};
void us_quic_socket_context_stats(us_quic_socket_context_t *ctx, struct us_quic_context_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* US_QUIC_H */
