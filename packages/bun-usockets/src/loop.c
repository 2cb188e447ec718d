/* The loop: one epoll set, an eventfd for cross-thread wakeups, pre/post hooks,
 * and deferred freeing of handles closed during an iteration. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define US_MAX_EVENTS 256

struct us_loop_t *us_create_loop(void *hint, void (*wakeup_cb)(struct us_loop_t *),
    void (*pre_cb)(struct us_loop_t *), void (*post_cb)(struct us_loop_t *),
    unsigned int ext_size) {
    (void)hint;
    struct us_loop_t *loop = calloc(1, sizeof(struct us_loop_t) + ext_size);
    if (!loop) return NULL;
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    loop->wakeup.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop->recv_buf = us_internal_create_packet_buffer();
    if (loop->epoll_fd < 0 || loop->wakeup.fd < 0 || !loop->recv_buf) {
        if (loop->epoll_fd >= 0) close(loop->epoll_fd);
        if (loop->wakeup.fd >= 0) close(loop->wakeup.fd);
        us_internal_free_packet_buffer(loop->recv_buf);
        free(loop);
        return NULL;
    }
    loop->wakeup.kind = US_POLL_WAKEUP;
    loop->wakeup_cb = wakeup_cb;
    loop->pre_cb = pre_cb;
    loop->post_cb = post_cb;
    us_internal_poll_add(loop, &loop->wakeup, EPOLLIN);
    return loop;
}

static void free_closed(struct us_loop_t *loop) {
    while (loop->closed_head) {
        struct us_poll_t *p = loop->closed_head;
        loop->closed_head = p->next_closed;
        if (p->kind == US_POLL_UDP) us_internal_free_closed_udp(p);
        else free(p);
    }
}

void us_loop_free(struct us_loop_t *loop) {
    free_closed(loop);
    close(loop->wakeup.fd);
    close(loop->epoll_fd);
    us_internal_free_packet_buffer(loop->recv_buf);
    free(loop);
}

void *us_loop_ext(struct us_loop_t *loop) { return loop + 1; }
int us_loop_fd(struct us_loop_t *loop) { return loop->epoll_fd; }
int us_loop_alive_count(struct us_loop_t *loop) { return loop->alive; }
long long us_loop_iteration_number(struct us_loop_t *loop) { return loop->iteration; }

void us_internal_loop_set_quic(struct us_loop_t *loop, void *quic_head,
    void (*process)(struct us_loop_t *)) {
    loop->quic_head = quic_head;
    loop->quic_process = process;
}

void *us_internal_loop_quic(struct us_loop_t *loop) { return loop->quic_head; }
int us_internal_loop_dispatching(struct us_loop_t *loop) { return loop->dispatching; }

void us_wakeup_loop(struct us_loop_t *loop) {
    uint64_t one = 1;
    /* A full counter means a wakeup is already pending: nothing to do. */
    ssize_t r = write(loop->wakeup.fd, &one, sizeof(one));
    (void)r;
}

int us_internal_poll_add(struct us_loop_t *loop, struct us_poll_t *p, unsigned int events) {
    struct epoll_event ev = {.events = events, .data.ptr = p};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, p->fd, &ev) != 0) return -1;
    if (p->keeps_alive) loop->alive++;
    return 0;
}

int us_internal_poll_change(struct us_loop_t *loop, struct us_poll_t *p, unsigned int events) {
    struct epoll_event ev = {.events = events, .data.ptr = p};
    return epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, p->fd, &ev);
}

void us_internal_poll_close(struct us_loop_t *loop, struct us_poll_t *p) {
    if (p->closed) return;
    p->closed = 1;
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    p->fd = -1;
    if (p->keeps_alive) loop->alive--;
    p->next_closed = loop->closed_head;
    loop->closed_head = p;
    /* Outside an iteration nothing can still hold the record: free it now. */
    if (!loop->dispatching) free_closed(loop);
}

int us_loop_run_once(struct us_loop_t *loop, int timeout_ms) {
    struct epoll_event events[US_MAX_EVENTS];
    if (loop->pre_cb) loop->pre_cb(loop);
    int n = epoll_wait(loop->epoll_fd, events, US_MAX_EVENTS, timeout_ms);
    if (n < 0) {
        if (errno != EINTR) return -1;
        n = 0;
    }
    loop->iteration++;
    loop->dispatching = 1;
    for (int i = 0; i < n; i++) {
        struct us_poll_t *p = events[i].data.ptr;
        if (p->closed) continue; /* closed by an earlier event of this batch */
        switch (p->kind) {
        case US_POLL_WAKEUP: {
            uint64_t count;
            ssize_t r = read(p->fd, &count, sizeof(count));
            (void)r;
            if (loop->wakeup_cb) loop->wakeup_cb(loop);
            break;
        }
        case US_POLL_TIMER:
            us_internal_dispatch_timer((struct us_timer_t *)p);
            break;
        case US_POLL_UDP:
            us_internal_dispatch_udp((struct us_udp_socket_t *)p, events[i].events);
            break;
        }
    }
    if (loop->post_cb) loop->post_cb(loop);
    if (loop->quic_process) loop->quic_process(loop);
    loop->dispatching = 0;
    free_closed(loop);
    return loop->alive > 0 ? n : -1;
}

void us_loop_run(struct us_loop_t *loop) {
    while (loop->alive > 0) {
        if (us_loop_run_once(loop, -1) < 0) break;
    }
}
