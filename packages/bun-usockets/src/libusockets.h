/*
 * A small usockets-compatible event loop: the subset QUIC needs.
 *
 * Same names and shapes as uSockets (us_create_loop, us_loop_run, us_create_timer,
 * us_timer_set, us_create_udp_socket, ...), on Linux epoll. Every handle is an fd in
 * one epoll set, timers included (timerfd), so the whole loop is represented by one
 * pollable fd (us_loop_fd): an embedding loop such as Bun's can watch that fd and
 * run one non-blocking iteration (us_loop_run_once) when it becomes readable.
 *
 * Single-threaded: every function here must be called on the thread that runs the
 * loop, except us_wakeup_loop.
 */
#ifndef LIBUSOCKETS_H
#define LIBUSOCKETS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

struct us_loop_t;
struct us_timer_t;
struct us_udp_socket_t;
struct us_udp_packet_buffer_t;

/* TLS options, as usockets passes them to SSL contexts. Either file names or
 * in-memory PEM (arrays of strings with counts); in-memory wins when both are set. */
struct us_bun_socket_context_options_t {
    const char *key_file_name;
    const char *cert_file_name;
    const char *passphrase;
    const char *dh_params_file_name;
    const char *ca_file_name;
    const char *ssl_ciphers;
    int ssl_prefer_low_memory_usage;
    const char **key;
    unsigned int key_count;
    const char **cert;
    unsigned int cert_count;
    const char **ca;
    unsigned int ca_count;
    unsigned int secure_options;
    int reject_unauthorized;
    int request_cert;
    unsigned int client_renegotiation_limit;
    unsigned int client_renegotiation_window;
};

/* ---- loop ---- */

/* `hint` is ignored (usockets uses it for an existing native loop). The three
 * callbacks may be NULL. pre runs before each poll, post after each batch of events. */
struct us_loop_t *us_create_loop(void *hint, void (*wakeup_cb)(struct us_loop_t *loop),
    void (*pre_cb)(struct us_loop_t *loop), void (*post_cb)(struct us_loop_t *loop),
    unsigned int ext_size);
/* Frees the loop. Every handle must already be closed. */
void us_loop_free(struct us_loop_t *loop);
void *us_loop_ext(struct us_loop_t *loop);
/* Runs until no handle keeps the loop alive (fallthrough timers do not). */
void us_loop_run(struct us_loop_t *loop);
/* Thread-safe: makes a blocked us_loop_run wake up and call wakeup_cb. */
void us_wakeup_loop(struct us_loop_t *loop);
/* Number of iterations run so far (usockets' us_loop_iteration_number). */
long long us_loop_iteration_number(struct us_loop_t *loop);

/* Embedding extensions. us_loop_fd is the epoll fd: readable whenever an
 * iteration would have work. us_loop_run_once runs one iteration, waiting at most
 * timeout_ms (0 = never block, -1 = block); returns the number of events handled,
 * or -1 if the loop has nothing alive any more. */
int us_loop_fd(struct us_loop_t *loop);
int us_loop_run_once(struct us_loop_t *loop, int timeout_ms);
/* Number of handles that keep the loop alive. */
int us_loop_alive_count(struct us_loop_t *loop);

/* The QUIC layer's per-loop slot (upstream keeps quic_head in the loop struct).
 * `process` runs in every loop post, after the user's post_cb. */
void us_internal_loop_set_quic(struct us_loop_t *loop, void *quic_head,
    void (*process)(struct us_loop_t *loop));
void *us_internal_loop_quic(struct us_loop_t *loop);
/* 1 while the loop is inside an iteration (dispatching events or post hooks). */
int us_internal_loop_dispatching(struct us_loop_t *loop);

/* ---- timers (timerfd) ---- */

/* fallthrough=1: the timer does not keep the loop alive. */
struct us_timer_t *us_create_timer(struct us_loop_t *loop, int fallthrough, unsigned int ext_size);
void *us_timer_ext(struct us_timer_t *timer);
struct us_loop_t *us_timer_loop(struct us_timer_t *timer);
/* First expiry after ms (0 = disarm), then every repeat_ms (0 = one shot). */
void us_timer_set(struct us_timer_t *timer, void (*cb)(struct us_timer_t *timer), int ms, int repeat_ms);
/* Like us_timer_set with microsecond resolution for protocol timers. */
void us_timer_set_us(struct us_timer_t *timer, void (*cb)(struct us_timer_t *timer), long long us);
void us_timer_close(struct us_timer_t *timer);

/* ---- UDP ---- */

/* Bound to host:port (host NULL = all addresses, dual-stack). flags:
 * LIBUS_LISTEN_REUSE_PORT shares the port between sockets (SO_REUSEPORT).
 * data_cb gets a batch of `count` received datagrams (recvmmsg); drain_cb fires when
 * a send that was refused (EAGAIN) can be retried. On failure returns NULL and sets
 * *err to an errno value. */
#define LIBUS_LISTEN_DEFAULT 0
#define LIBUS_LISTEN_EXCLUSIVE_PORT 1
#define LIBUS_LISTEN_REUSE_PORT 4
struct us_udp_socket_t *us_create_udp_socket(struct us_loop_t *loop,
    void (*data_cb)(struct us_udp_socket_t *s, struct us_udp_packet_buffer_t *buf, int count),
    void (*drain_cb)(struct us_udp_socket_t *s), void (*close_cb)(struct us_udp_socket_t *s),
    const char *host, unsigned short port, int flags, int *err, void *user);
/* Closes the fd now; close_cb runs and the memory is freed at the end of the
 * current iteration, so a socket closed inside its own data_cb stays valid. */
void us_udp_socket_close(struct us_udp_socket_t *s);
void *us_udp_socket_user(struct us_udp_socket_t *s);
struct us_loop_t *us_udp_socket_loop(struct us_udp_socket_t *s);
int us_udp_socket_fd(struct us_udp_socket_t *s);
int us_udp_socket_bound_port(struct us_udp_socket_t *s);
/* Writes the bound address as a sockaddr into buf; returns its length or -1. */
int us_udp_socket_bound_addr(struct us_udp_socket_t *s, struct sockaddr_storage *out);
/* Sends `num` datagrams in one sendmmsg. addresses are struct sockaddr_storage *.
 * Returns how many were sent (fewer when the kernel buffer is full: drain_cb follows). */
int us_udp_socket_send(struct us_udp_socket_t *s, void **payloads, size_t *lengths,
    void **addresses, int num);
/* Sends `len` bytes as datagrams of `segment_size` (the last may be shorter) to one
 * address: one UDP GSO send where the kernel allows it, else sendmmsg. Returns
 * 1 when all were sent, 0 when the kernel buffer is full (nothing or a prefix was
 * sent: *sent_bytes says how much; drain_cb follows), -1 on another error. */
/* One GSO batch of a send to several destinations: `len` bytes as datagrams of
 * `segment_size` (the last may be shorter) to `to`. */
struct us_udp_batch {
    const char *data;
    size_t len;
    size_t segment_size;
    const struct sockaddr_storage *to;
};
/* Sends `num` batches, to any destinations, in as few sendmmsg calls as the kernel
 * allows (each message one GSO batch; without GSO, as us_udp_socket_send_segments).
 * Returns how many batches are done: sent, or dropped after an error that was
 * not a full buffer. When fewer than `num`, the buffer is full (drain_cb follows)
 * and *next_sent_bytes says how much of the next batch went out. */
int us_udp_socket_send_batches(struct us_udp_socket_t *s, const struct us_udp_batch *batches, int num,
    size_t *next_sent_bytes);
int us_udp_socket_send_segments(struct us_udp_socket_t *s, const char *data, size_t len,
    size_t segment_size, const struct sockaddr_storage *to, size_t *sent_bytes);
/* Extensions. Connect the socket to one peer (a client's socket): the kernel then
 * reports ICMP errors such as port unreachable, which error_cb receives as an
 * errno value (ECONNREFUSED, EHOSTUNREACH, ...). 0 on success, else an errno. */
int us_udp_socket_connect(struct us_udp_socket_t *s, const struct sockaddr_storage *peer);
void us_udp_socket_on_error(struct us_udp_socket_t *s, void (*error_cb)(struct us_udp_socket_t *s, int err));

/* Whether sends use UDP GSO (the kernel accepted UDP_SEGMENT). */
int us_udp_socket_gso_enabled(struct us_udp_socket_t *s);

char *us_udp_packet_buffer_payload(struct us_udp_packet_buffer_t *buf, int index);
int us_udp_packet_buffer_payload_length(struct us_udp_packet_buffer_t *buf, int index);
/* The sender, as a struct sockaddr_storage *. */
char *us_udp_packet_buffer_peer(struct us_udp_packet_buffer_t *buf, int index);
/* The local address the datagram was sent to (IP_PKTINFO), as sockaddr_storage *,
 * port filled from the socket. */
char *us_udp_packet_buffer_local(struct us_udp_packet_buffer_t *buf, int index);

#ifdef __cplusplus
}
#endif

#endif /* LIBUSOCKETS_H */
