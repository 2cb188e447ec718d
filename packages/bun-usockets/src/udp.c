/* UDP sockets: batched receive (recvmmsg, UDP GRO split into datagrams), batched
 * send (sendmmsg) and segmented send (UDP GSO with a sendmmsg fallback). */
#define _GNU_SOURCE
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define RECV_SLOTS 32
#define RECV_SLOT_SIZE 65536
/* A GRO slot of 64 KiB holds at most this many datagrams of the smallest QUIC size. */
#define MAX_VIEWS (RECV_SLOTS * 64)
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000

struct us_udp_packet_buffer_t {
    struct mmsghdr msgs[RECV_SLOTS];
    struct iovec iov[RECV_SLOTS];
    struct sockaddr_storage peers[RECV_SLOTS];
    struct sockaddr_storage locals[RECV_SLOTS];
    char control[RECV_SLOTS][128];
    /* One view per datagram after GRO segments are split. */
    char *view_data[MAX_VIEWS];
    int view_len[MAX_VIEWS];
    int view_slot[MAX_VIEWS];
    char *data; /* RECV_SLOTS * RECV_SLOT_SIZE */
};

struct us_udp_socket_t {
    struct us_poll_t poll;
    struct us_loop_t *loop;
    void (*data_cb)(struct us_udp_socket_t *, struct us_udp_packet_buffer_t *, int);
    void (*drain_cb)(struct us_udp_socket_t *);
    void (*close_cb)(struct us_udp_socket_t *);
    void (*error_cb)(struct us_udp_socket_t *, int);
    void *user;
    int family;
    int port;
    int gso;
    int want_writable;
    struct sockaddr_storage bound;
};

struct us_udp_packet_buffer_t *us_internal_create_packet_buffer(void) {
    struct us_udp_packet_buffer_t *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->data = malloc((size_t)RECV_SLOTS * RECV_SLOT_SIZE);
    if (!b->data) {
        free(b);
        return NULL;
    }
    return b;
}

void us_internal_free_packet_buffer(struct us_udp_packet_buffer_t *b) {
    if (!b) return;
    free(b->data);
    free(b);
}

static int resolve_bind_address(const char *host, unsigned short port, struct sockaddr_storage *out,
    socklen_t *out_len) {
    memset(out, 0, sizeof(*out));
    if (!host || !*host) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons(port);
        *out_len = sizeof(*a6);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char service[16];
    snprintf(service, sizeof(service), "%u", port);
    if (getaddrinfo(host, service, &hints, &res) != 0 || !res) return EADDRNOTAVAIL;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

struct us_udp_socket_t *us_create_udp_socket(struct us_loop_t *loop,
    void (*data_cb)(struct us_udp_socket_t *, struct us_udp_packet_buffer_t *, int),
    void (*drain_cb)(struct us_udp_socket_t *), void (*close_cb)(struct us_udp_socket_t *),
    const char *host, unsigned short port, int flags, int *err, void *user) {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int e = resolve_bind_address(host, port, &addr, &addr_len);
    if (e) {
        if (err) *err = e;
        return NULL;
    }
    int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0) {
        if (err) *err = errno;
        return NULL;
    }
    int one = 1, zero = 0;
    if (addr.ss_family == AF_INET6) {
        /* The wildcard is dual-stack; a specific IPv6 address is IPv6 only. */
        int v6only = host && *host && strcmp(host, "::") != 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? &one : &zero, sizeof(int));
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    }
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    /* Don't fragment, and ignore the kernel's path-MTU cache: QUIC finds the path's MTU itself
       (DPLPMTUD), and a probe larger than the path must be lost, not fragmented. A datagram
       larger than the interface fails with EMSGSIZE, which the send path drops like a loss. */
    int probe = IP_PMTUDISC_PROBE;
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof(probe));
    if (addr.ss_family == AF_INET6) {
        int probe6 = IPV6_PMTUDISC_PROBE;
        setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe6, sizeof(probe6));
    }
    if (flags & LIBUS_LISTEN_REUSE_PORT) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    /* Large buffers: a QUIC flight at high bandwidth is many datagrams. */
    int bufsize = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
    setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&addr, addr_len) != 0) {
        if (err) *err = errno;
        close(fd);
        return NULL;
    }
    struct us_udp_socket_t *s = calloc(1, sizeof(*s));
    if (!s) {
        if (err) *err = ENOMEM;
        close(fd);
        return NULL;
    }
    s->poll.fd = fd;
    s->poll.kind = US_POLL_UDP;
    s->poll.keeps_alive = 1;
    s->loop = loop;
    s->data_cb = data_cb;
    s->drain_cb = drain_cb;
    s->close_cb = close_cb;
    s->user = user;
    s->family = addr.ss_family;
    socklen_t bl = sizeof(s->bound);
    getsockname(fd, (struct sockaddr *)&s->bound, &bl);
    s->port = ntohs(s->bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&s->bound)->sin6_port
                                                   : ((struct sockaddr_in *)&s->bound)->sin_port);
    /* Probe GSO once: the option is per send, but a kernel without it refuses this.
     * US_DISABLE_GSO=1 forces the sendmmsg path (tests cover both). */
    int seg = 1200;
    const char *no_gso = getenv("US_DISABLE_GSO");
    s->gso = !(no_gso && *no_gso == '1') && setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &seg, sizeof(seg)) == 0;
    if (s->gso) {
        seg = 0;
        setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &seg, sizeof(seg));
    }
    if (us_internal_poll_add(loop, &s->poll, EPOLLIN) != 0) {
        if (err) *err = errno;
        close(fd);
        free(s);
        return NULL;
    }
    return s;
}

void us_udp_socket_close(struct us_udp_socket_t *s) { us_internal_poll_close(s->loop, &s->poll); }

void us_internal_free_closed_udp(struct us_poll_t *p) {
    struct us_udp_socket_t *s = (struct us_udp_socket_t *)p;
    if (s->close_cb) s->close_cb(s);
    free(s);
}

void *us_udp_socket_user(struct us_udp_socket_t *s) { return s->user; }
struct us_loop_t *us_udp_socket_loop(struct us_udp_socket_t *s) { return s->loop; }
int us_udp_socket_fd(struct us_udp_socket_t *s) { return s->poll.fd; }
int us_udp_socket_bound_port(struct us_udp_socket_t *s) { return s->port; }
int us_udp_socket_gso_enabled(struct us_udp_socket_t *s) { return s->gso; }

void us_udp_socket_on_error(struct us_udp_socket_t *s, void (*error_cb)(struct us_udp_socket_t *, int)) {
    s->error_cb = error_cb;
}

/* Reports a pending socket error (an ICMP error on a connected socket). */
static int report_socket_error(struct us_udp_socket_t *s) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->poll.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) return 0;
    if (s->error_cb) s->error_cb(s, err);
    return 1;
}

int us_udp_socket_bound_addr(struct us_udp_socket_t *s, struct sockaddr_storage *out) {
    *out = s->bound;
    return s->bound.ss_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6) : (int)sizeof(struct sockaddr_in);
}

static socklen_t sockaddr_len(const struct sockaddr_storage *a) {
    return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* An IPv4 destination on a dual-stack IPv6 socket must be written as v4-mapped. */
static const struct sockaddr_storage *adapt_destination(struct us_udp_socket_t *s,
    const struct sockaddr_storage *to, struct sockaddr_storage *scratch) {
    if (s->family == AF_INET6 && to->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)to;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)scratch;
        memset(scratch, 0, sizeof(*scratch));
        v6->sin6_family = AF_INET6;
        v6->sin6_port = v4->sin_port;
        v6->sin6_addr.s6_addr[10] = 0xff;
        v6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&v6->sin6_addr.s6_addr[12], &v4->sin_addr, 4);
        return scratch;
    }
    return to;
}

int us_udp_socket_connect(struct us_udp_socket_t *s, const struct sockaddr_storage *peer) {
    struct sockaddr_storage scratch;
    const struct sockaddr_storage *to = adapt_destination(s, peer, &scratch);
    return connect(s->poll.fd, (const struct sockaddr *)to, sockaddr_len(to)) == 0 ? 0 : errno;
}

static void want_writable(struct us_udp_socket_t *s, int want) {
    if (s->want_writable == want || s->poll.closed) return;
    s->want_writable = want;
    us_internal_poll_change(s->loop, &s->poll, EPOLLIN | (want ? EPOLLOUT : 0));
}

int us_udp_socket_send(struct us_udp_socket_t *s, void **payloads, size_t *lengths, void **addresses,
    int num) {
    if (s->poll.closed) return -1;
    struct mmsghdr msgs[64];
    struct iovec iov[64];
    struct sockaddr_storage scratch[64];
    int sent_total = 0;
    while (sent_total < num) {
        int batch = num - sent_total < 64 ? num - sent_total : 64;
        for (int i = 0; i < batch; i++) {
            int k = sent_total + i;
            const struct sockaddr_storage *to = adapt_destination(s, addresses[k], &scratch[i]);
            iov[i].iov_base = payloads[k];
            iov[i].iov_len = lengths[k];
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg_hdr.msg_name = (void *)to;
            msgs[i].msg_hdr.msg_namelen = sockaddr_len(to);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(s->poll.fd, msgs, batch, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) want_writable(s, 1);
            return sent_total;
        }
        sent_total += r;
        if (r < batch) {
            want_writable(s, 1);
            return sent_total;
        }
    }
    return sent_total;
}

/* The most bytes of datagrams of `seg` bytes one GSO send may carry. */
static size_t gso_chunk_limit(size_t seg) {
    size_t max_chunk = seg * GSO_MAX_SEGMENTS;
    if (max_chunk > GSO_MAX_BYTES) max_chunk = (GSO_MAX_BYTES / seg) * seg;
    return max_chunk ? max_chunk : seg;
}

static int send_gso_chunk(struct us_udp_socket_t *s, const char *data, size_t len, size_t seg,
    const struct sockaddr_storage *to) {
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    char control[CMSG_SPACE(sizeof(uint16_t))];
    struct msghdr msg = {.msg_name = (void *)to, .msg_namelen = sockaddr_len(to), .msg_iov = &iov, .msg_iovlen = 1};
    if (len > seg) {
        memset(control, 0, sizeof(control));
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = IPPROTO_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg16 = (uint16_t)seg;
        memcpy(CMSG_DATA(cm), &seg16, sizeof(seg16));
    }
    for (;;) {
        ssize_t r = sendmsg(s->poll.fd, &msg, 0);
        if (r >= 0) return 1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
        /* EIO/EINVAL: this path cannot segment (no checksum offload, old kernel). */
        if (len > seg && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) return -2;
        return -1;
    }
}

int us_udp_socket_send_segments(struct us_udp_socket_t *s, const char *data, size_t len,
    size_t segment_size, const struct sockaddr_storage *to_in, size_t *sent_bytes) {
    *sent_bytes = 0;
    if (s->poll.closed || segment_size == 0) return -1;
    struct sockaddr_storage scratch;
    const struct sockaddr_storage *to = adapt_destination(s, to_in, &scratch);
    size_t off = 0;
    while (off < len && s->gso) {
        size_t max_chunk = gso_chunk_limit(segment_size);
        size_t chunk = len - off < max_chunk ? len - off : max_chunk;
        int r = send_gso_chunk(s, data + off, chunk, segment_size, to);
        if (r == 1) {
            off += chunk;
            *sent_bytes = off;
            continue;
        }
        if (r == -2) {
            s->gso = 0;
            break;
        }
        if (r == 0) {
            want_writable(s, 1);
            return 0;
        }
        return -1;
    }
    if (off == len) return 1;
    /* Fallback: one datagram per segment in sendmmsg batches. */
    void *payloads[64];
    size_t lengths[64];
    void *addresses[64];
    while (off < len) {
        int n = 0;
        size_t o = off;
        while (o < len && n < 64) {
            size_t l = len - o < segment_size ? len - o : segment_size;
            payloads[n] = (void *)(data + o);
            lengths[n] = l;
            addresses[n] = (void *)to;
            o += l;
            n++;
        }
        int sent = us_udp_socket_send(s, payloads, lengths, addresses, n);
        for (int i = 0; i < (sent > 0 ? sent : 0); i++) off += lengths[i];
        *sent_bytes = off;
        if (sent < n) return 0;
    }
    return 1;
}

/* GSO messages per sendmmsg call. */
#define BATCH_MESSAGES 32

/* One message of a batch send: a GSO chunk of batch `batch` starting at `offset`. */
struct batch_message {
    int batch;
    size_t offset;
    size_t len;
    size_t seg;
};

int us_udp_socket_send_batches(struct us_udp_socket_t *s, const struct us_udp_batch *batches, int num,
    size_t *next_sent_bytes) {
    *next_sent_bytes = 0;
    if (s->poll.closed) return num;
    int done = 0;
    size_t done_bytes = 0; /* of batches[done], in whole messages */
    while (done < num && s->gso) {
        struct mmsghdr msgs[BATCH_MESSAGES];
        struct iovec iov[BATCH_MESSAGES];
        struct sockaddr_storage scratch[BATCH_MESSAGES];
        char control[BATCH_MESSAGES][CMSG_SPACE(sizeof(uint16_t))];
        struct batch_message what[BATCH_MESSAGES];
        int n = 0;
        int b = done;
        size_t off = done_bytes;
        while (b < num && n < BATCH_MESSAGES) {
            const struct us_udp_batch *batch = &batches[b];
            size_t seg = batch->segment_size ? batch->segment_size : 1;
            size_t max_chunk = gso_chunk_limit(seg);
            size_t chunk = batch->len - off < max_chunk ? batch->len - off : max_chunk;
            const struct sockaddr_storage *to = adapt_destination(s, batch->to, &scratch[n]);
            iov[n].iov_base = (void *)(batch->data + off);
            iov[n].iov_len = chunk;
            memset(&msgs[n], 0, sizeof(msgs[n]));
            msgs[n].msg_hdr.msg_name = (void *)to;
            msgs[n].msg_hdr.msg_namelen = sockaddr_len(to);
            msgs[n].msg_hdr.msg_iov = &iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
            if (chunk > seg) {
                memset(control[n], 0, sizeof(control[n]));
                msgs[n].msg_hdr.msg_control = control[n];
                msgs[n].msg_hdr.msg_controllen = sizeof(control[n]);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[n].msg_hdr);
                cm->cmsg_level = IPPROTO_UDP;
                cm->cmsg_type = UDP_SEGMENT;
                cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t seg16 = (uint16_t)seg;
                memcpy(CMSG_DATA(cm), &seg16, sizeof(seg16));
            }
            what[n] = (struct batch_message){.batch = b, .offset = off, .len = chunk, .seg = seg};
            n++;
            off += chunk;
            if (off >= batch->len) {
                b++;
                off = 0;
            }
        }
        int r = sendmmsg(s->poll.fd, msgs, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                want_writable(s, 1);
                *next_sent_bytes = done_bytes;
                return done;
            }
            if (what[0].len > what[0].seg && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) {
                /* This path cannot segment: send the rest without GSO. */
                s->gso = 0;
                break;
            }
            /* The first message failed for good: drop its batch, go on with the next. */
            done = what[0].batch + 1;
            done_bytes = 0;
            continue;
        }
        /* r messages went out: advance past them. */
        if (r == 0) {
            want_writable(s, 1);
            *next_sent_bytes = done_bytes;
            return done;
        }
        struct batch_message last = what[r - 1];
        if (last.offset + last.len >= batches[last.batch].len) {
            done = last.batch + 1;
            done_bytes = 0;
        } else {
            done = last.batch;
            done_bytes = last.offset + last.len;
        }
        if (r < n) {
            want_writable(s, 1);
            *next_sent_bytes = done_bytes;
            return done;
        }
    }
    /* Without GSO: each batch as us_udp_socket_send_segments sends it. */
    while (done < num) {
        const struct us_udp_batch *batch = &batches[done];
        size_t sent = 0;
        int r = us_udp_socket_send_segments(s, batch->data + done_bytes, batch->len - done_bytes,
            batch->segment_size, batch->to, &sent);
        if (r == 0) {
            *next_sent_bytes = done_bytes + sent;
            return done;
        }
        done++;
        done_bytes = 0;
    }
    return done;
}

char *us_udp_packet_buffer_payload(struct us_udp_packet_buffer_t *b, int i) { return b->view_data[i]; }
int us_udp_packet_buffer_payload_length(struct us_udp_packet_buffer_t *b, int i) { return b->view_len[i]; }
char *us_udp_packet_buffer_peer(struct us_udp_packet_buffer_t *b, int i) {
    return (char *)&b->peers[b->view_slot[i]];
}
char *us_udp_packet_buffer_local(struct us_udp_packet_buffer_t *b, int i) {
    return (char *)&b->locals[b->view_slot[i]];
}

/* Reads the destination address (pktinfo) and the GRO segment size of one message. */
static int parse_control(struct us_udp_socket_t *s, struct msghdr *h, struct sockaddr_storage *local) {
    int gro = 0;
    *local = s->bound;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_GRO) {
            memcpy(&gro, CMSG_DATA(cm), sizeof(int));
        } else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            struct sockaddr_in *a = (struct sockaddr_in *)local;
            memset(local, 0, sizeof(*local));
            a->sin_family = AF_INET;
            a->sin_addr = pi.ipi_addr;
            a->sin_port = htons(s->port);
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)local;
            memset(local, 0, sizeof(*local));
            a->sin6_family = AF_INET6;
            a->sin6_addr = pi.ipi6_addr;
            a->sin6_port = htons(s->port);
        }
    }
    return gro;
}

int us_internal_split_datagrams(char *data, int total, int segment, int slot, char **view_data, int *view_len,
                                int *view_slot, int views, int max_views) {
    int seg = segment > 0 ? segment : total;
    for (int off = 0; off < total && views < max_views; off += seg) {
        view_data[views] = data + off;
        view_len[views] = total - off < seg ? total - off : seg;
        view_slot[views] = slot;
        views++;
    }
    return views;
}

/* v4-mapped IPv6 addresses become plain IPv4, so the layers above see one form. */
static void unmap_v4(struct sockaddr_storage *a) {
    if (a->ss_family != AF_INET6) return;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)a;
    if (!IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = v6->sin6_port};
    memcpy(&v4.sin_addr, &v6->sin6_addr.s6_addr[12], 4);
    memset(a, 0, sizeof(*a));
    memcpy(a, &v4, sizeof(v4));
}

void us_internal_dispatch_udp(struct us_udp_socket_t *s, unsigned int events) {
    if (events & EPOLLOUT) {
        want_writable(s, 0);
        if (s->drain_cb) s->drain_cb(s);
        if (s->poll.closed) return;
    }
    if (events & EPOLLERR) {
        report_socket_error(s);
        if (s->poll.closed) return;
    }
    if (!(events & EPOLLIN)) return;
    struct us_udp_packet_buffer_t *b = s->loop->recv_buf;
    /* Bounded: at most 4 batches per wakeup so one busy socket cannot starve the loop. */
    for (int round = 0; round < 4 && !s->poll.closed; round++) {
        for (int i = 0; i < RECV_SLOTS; i++) {
            b->iov[i].iov_base = b->data + (size_t)i * RECV_SLOT_SIZE;
            b->iov[i].iov_len = RECV_SLOT_SIZE;
            memset(&b->msgs[i].msg_hdr, 0, sizeof(struct msghdr));
            b->msgs[i].msg_hdr.msg_name = &b->peers[i];
            b->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
            b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
            b->msgs[i].msg_hdr.msg_iovlen = 1;
            b->msgs[i].msg_hdr.msg_control = b->control[i];
            b->msgs[i].msg_hdr.msg_controllen = sizeof(b->control[i]);
        }
        int n = recvmmsg(s->poll.fd, b->msgs, RECV_SLOTS, MSG_DONTWAIT, NULL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            /* recvmmsg consumed the pending error: hand over its errno. */
            if (s->error_cb) s->error_cb(s, errno);
            return;
        }
        if (n <= 0) return;
        int views = 0;
        for (int i = 0; i < n; i++) {
            struct msghdr *h = &b->msgs[i].msg_hdr;
            int total = (int)b->msgs[i].msg_len;
            if (h->msg_flags & MSG_TRUNC) continue;
            int gro = parse_control(s, h, &b->locals[i]);
            unmap_v4(&b->peers[i]);
            unmap_v4(&b->locals[i]);
            views = us_internal_split_datagrams(b->iov[i].iov_base, total, gro, i, b->view_data, b->view_len,
                                                b->view_slot, views, MAX_VIEWS);
        }
        if (views > 0) s->data_cb(s, b, views);
        if (n < RECV_SLOTS) return;
    }
}
