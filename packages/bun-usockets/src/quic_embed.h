/*
 * Embedding rust-quic in a host event loop that is not usockets (Bun's, here,
 * through bun:ffi): the engine's loop runs one iteration at a time on the
 * host's thread, woken through a pipe by a watcher thread that touches no
 * engine state; plus helpers shaped for an FFI that cannot pass C structs by
 * value (PEM buffers, header blocks serialized into one buffer).
 *
 * Everything here is ours (rust-quic/src/embed.rs); upstream has no equivalent.
 * Threading, lifetimes and the rest of the ABI are quic.h's.
 */
#ifndef US_QUIC_EMBED_H
#define US_QUIC_EMBED_H

#include "quic.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct us_quic_embed_s us_quic_embed_t;

/* A loop for embedding, with its watcher thread. NULL if the pipes or the thread
 * could not be created. */
us_quic_embed_t *us_quic_embed_create(void);
/* The embedded loop, for us_create_quic_client_context and friends; NULL for NULL. */
struct us_loop_t *us_quic_embed_loop(us_quic_embed_t *e);
/* The fd the host reads: each byte means "call us_quic_embed_run". Made blocking
 * (as a host's pipe reader expects); the engine keeps it and closes it in
 * us_quic_embed_free, so stop reading it first. -1 for NULL. */
int us_quic_embed_wake_fd(us_quic_embed_t *e);
/* One non-blocking iteration on the caller's thread, then re-arms the watcher.
 * Returns how many handles keep the loop alive (-1 for NULL). Connections whose
 * requests reached the callbacks in this iteration send nothing yet: the host
 * calls us_quic_loop_process once its handlers have answered, so ACKs and answers
 * share packets. */
int us_quic_embed_run(us_quic_embed_t *e);
/* Stops the watcher and frees the loop. Every context on it must be freed first. */
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

#ifdef __cplusplus
}
#endif

#endif /* US_QUIC_EMBED_H */
