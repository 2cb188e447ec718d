/*
 * Embedding rust-quic in a host event loop that is not usockets (Bun's, here,
 * through bun:ffi): the engine's loop runs on an engine thread that never calls
 * the host, which takes a baton to deliver the callbacks on its own thread when
 * woken by a datagram; fetch's client on a thread of its own; plus helpers shaped
 * for an FFI that cannot pass C structs by value (PEM buffers, header blocks
 * serialized into one buffer).
 *
 * Everything here is ours (rust-quic/src/embed/); upstream has no equivalent.
 * Threading, lifetimes and the rest of the ABI are quic.h's.
 */
#ifndef US_QUIC_EMBED_H
#define US_QUIC_EMBED_H

#include "quic.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct us_quic_embed_s us_quic_embed_t;

/* A loop for embedding. NULL if the loop or its pipes could not be created. */
us_quic_embed_t *us_quic_embed_create(void);
/* The embedded loop, for us_create_quic_client_context and friends; NULL for NULL. */
struct us_loop_t *us_quic_embed_loop(us_quic_embed_t *e);
/* Starts the engine thread, which runs the loop from now on (packets, crypto,
 * timers, and the requests the engine answers alone: static routes) and never
 * calls a callback: what would reach one is held, and the thread sends a one-byte
 * datagram to 127.0.0.1:port (a UDP socket the host polls; it means "take the
 * baton and call us_quic_embed_run"). Until then the host runs iterations itself.
 * 0, or -1 (port 0, started already, no socket or thread). */
int us_quic_embed_set_wake_port(us_quic_embed_t *e, unsigned int port);
/* The host takes the baton, waiting for the engine thread's iteration to end.
 * Every other call into the loop's objects (contexts, connections, streams) needs
 * it while the engine thread runs. Held until us_quic_embed_release; taking it
 * again meanwhile is a no-op. NULL: nothing. */
void us_quic_embed_lock(us_quic_embed_t *e);
/* With the baton: the callbacks of what the engine thread held for the host (before
 * that thread started: one non-blocking iteration on the caller's thread). Returns
 * how many handles keep the loop alive (-1 for NULL). Connections whose requests
 * reached the callbacks send nothing yet: us_quic_embed_release, once the handlers
 * have answered, sends ACKs and answers in the same packets. */
int us_quic_embed_run(us_quic_embed_t *e);
/* With the baton, outside any callback: sends what the host wrote
 * (us_quic_loop_process) and gives the baton back to the engine thread. */
void us_quic_embed_release(us_quic_embed_t *e);
/* Stops the engine thread and frees the loop. Every context on it must be freed
 * first. The caller may hold the baton. */
void us_quic_embed_free(us_quic_embed_t *e);

/* An HTTP/3 server context on loop from PEM buffers (certificate chain, key,
 * optional passphrase) with an idle timeout in seconds. NULL on failure, with the
 * reason (NUL-terminated, cut to err_len) in err. */
us_quic_socket_context_t *us_quic_embed_server_context(struct us_loop_t *loop, const char *cert, unsigned int cert_len,
    const char *key, unsigned int key_len, const char *passphrase, unsigned int passphrase_len,
    unsigned int idle_timeout_s, char *err, unsigned int err_len);
/* Another certificate, chosen by SNI for hostname (NUL-terminated; exact or
 * "*.example.com"), from PEM buffers. 0, or -1 with the reason in err. */
int us_quic_embed_add_server_name(us_quic_socket_context_t *ctx, const char *hostname, const char *cert,
    unsigned int cert_len, const char *key, unsigned int key_len, const char *passphrase,
    unsigned int passphrase_len, char *err, unsigned int err_len);

/* The stream's current header block serialized into buf as repeated
 * [u32 name length][name][u32 value length][value] (native endian). Returns the
 * bytes needed: when more than cap, nothing was written (call again with room). */
unsigned int us_quic_embed_read_headers(us_quic_stream_t *s, unsigned char *buf, unsigned int cap);
/* Sends a header block in the us_quic_embed_read_headers layout, ending the
 * stream when end_stream. 0, or -1 when refused (stream state, malformed buffer). */
int us_quic_embed_send_headers(us_quic_stream_t *s, const unsigned char *buf, unsigned int len, int end_stream);
/* Headers (read_headers layout), a body and FIN in one call, for a response whose
 * bytes are known. 0 or -1. */
int us_quic_embed_respond(us_quic_stream_t *s, const unsigned char *block, unsigned int block_len,
    const unsigned char *body, unsigned int body_len);
/* The stream's connection's remote IP as text into buf (NUL-terminated) and its
 * port into *port. The text's length, or -1. */
int us_quic_embed_remote_address(us_quic_stream_t *s, char *buf, unsigned int cap, int *port);

/* A static response answered by the engine for GET or HEAD of path (which starts
 * with "/"): block holds the fields in read_headers layout with ":status" first
 * (the engine adds date, content-length and ETag handling), body the bytes.
 * Replaces a route of the same path. 0 or -1. */
int us_quic_embed_add_static_route(us_quic_socket_context_t *ctx, const unsigned char *path, unsigned int path_len,
    const unsigned char *block, unsigned int block_len, const unsigned char *body, unsigned int body_len);
/* Forgets every static route (before registering a reloaded set). */
void us_quic_embed_clear_static_routes(us_quic_socket_context_t *ctx);

/* fetch's HTTP/3 client on a thread of its own (rust-quic/src/embed/client_thread.rs),
 * as upstream runs its client on Bun's HTTP thread: packets, crypto, loss recovery
 * and timers run there. The host calls the functions below from one thread of its
 * own; each takes a lock the client thread holds while it runs an iteration, so it
 * is as synchronous as a call on the host's loop. Connections and requests are
 * named by ids the host chooses (not 0); the engine's objects never leave the
 * thread's module, so a call naming a closed one does nothing (or returns -1).
 *
 * Events reach the host through a buffer: a one-byte datagram on the host's wake-up
 * port (127.0.0.1, a UDP socket the host polls) means "poll". Each
 * event is [u8 kind][u32 id][u32 payload length][payload], little endian:
 *   1 HANDSHAKE (connection)      [u8 ok][i32 errno]
 *   2 GOAWAY (connection)
 *   3 CONNECTION_CLOSED (connection; its waiting requests are closed first)
 *   4 HEADERS (request)           [u8 us_quic_stream_headers_kind][block, us_quic_embed_read_headers layout]
 *   5 DATA (request)              [u8 fin][bytes]
 *   6 WRITABLE (request)          (its stream opened with a body to come, or flow control has room)
 *   7 REQUEST_CLOSED (request)    [i64 stream error code, -1 for none] - the request's last event */
#define US_QUIC_CLIENT_EVENT_HANDSHAKE 1
#define US_QUIC_CLIENT_EVENT_GOAWAY 2
#define US_QUIC_CLIENT_EVENT_CONNECTION_CLOSED 3
#define US_QUIC_CLIENT_EVENT_HEADERS 4
#define US_QUIC_CLIENT_EVENT_DATA 5
#define US_QUIC_CLIENT_EVENT_WRITABLE 6
#define US_QUIC_CLIENT_EVENT_REQUEST_CLOSED 7
typedef struct us_quic_client_thread_s us_quic_client_thread_t;

/* Starts the thread and its loop, waking the host with a datagram to 127.0.0.1:wake_port.
 * NULL if it could not (or wake_port is 0). */
us_quic_client_thread_t *us_quic_client_thread_create(unsigned int wake_port);
/* A client configuration: trust besides the system roots (PEM, len 0 for none) and a
 * client certificate with its key (len 0 for none). Its id (>= 0), or -1 (no context),
 * -2 (ca holds no certificate), -3 (certificate and key not usable). */
int us_quic_client_thread_add_config(us_quic_client_thread_t *t, const char *ca, unsigned int ca_len,
    const char *cert, unsigned int cert_len, const char *key, unsigned int key_len, const char *passphrase,
    unsigned int passphrase_len);
/* Connects to an IP literal with configuration `config`, as connection `id`;
 * server_name (NULL: none) is the SNI, checked with the chain when verify. 0; 1
 * when it resumes the session of an earlier connection to that server name and
 * port and offers 0-RTT (requests made now go in 0-RTT if the ticket allows it,
 * else after the handshake: send only safe ones before on_handshake); or -1. */
int us_quic_client_thread_connect(us_quic_client_thread_t *t, int config, unsigned int id, const char *ip,
    int port, const char *server_name, int verify);
/* Request `id` on connection `conn`: the header block goes out when a stream opens,
 * with FIN when end_stream. 0, or -1 (unknown connection, id in use). */
int us_quic_client_thread_request(us_quic_client_thread_t *t, unsigned int conn, unsigned int id,
    const unsigned char *block, unsigned int len, int end_stream);
/* Body bytes: the count accepted (0 before the stream opens or under full flow
 * control: WRITABLE follows), -1 once the request is closed. */
int us_quic_client_thread_write(us_quic_client_thread_t *t, unsigned int id, const char *data, unsigned int len);
/* Ends the request body (FIN). */
void us_quic_client_thread_shutdown(us_quic_client_thread_t *t, unsigned int id);
/* Resets the request with an HTTP/3 error code; REQUEST_CLOSED follows. */
void us_quic_client_thread_reset(us_quic_client_thread_t *t, unsigned int id, unsigned long long code);
/* Stops (0) or resumes (1) delivering the response body. */
void us_quic_client_thread_want_read(us_quic_client_thread_t *t, unsigned int id, int want);
/* Closes connection `id`. */
void us_quic_client_thread_close(us_quic_client_thread_t *t, unsigned int id);
/* Wakes the thread to send what the calls since the last flush queued. */
void us_quic_client_thread_flush(us_quic_client_thread_t *t);
/* The events since the last poll (valid until the next poll) and their length in *len. */
const unsigned char *us_quic_client_thread_poll(us_quic_client_thread_t *t, unsigned int *len);
/* Stops the thread and frees everything. */
void us_quic_client_thread_free(us_quic_client_thread_t *t);

#ifdef __cplusplus
}
#endif

#endif /* US_QUIC_EMBED_H */
