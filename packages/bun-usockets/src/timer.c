/* Timers as timerfds, so that they live in the loop's epoll set like any fd. */
#define _GNU_SOURCE
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct us_timer_t {
    struct us_poll_t poll;
    struct us_loop_t *loop;
    void (*cb)(struct us_timer_t *);
    /* ext memory follows */
};

struct us_timer_t *us_create_timer(struct us_loop_t *loop, int fallthrough, unsigned int ext_size) {
    struct us_timer_t *t = calloc(1, sizeof(struct us_timer_t) + ext_size);
    if (!t) return NULL;
    t->poll.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    t->poll.kind = US_POLL_TIMER;
    t->poll.keeps_alive = !fallthrough;
    t->loop = loop;
    if (t->poll.fd < 0 || us_internal_poll_add(loop, &t->poll, EPOLLIN) != 0) {
        if (t->poll.fd >= 0) close(t->poll.fd);
        free(t);
        return NULL;
    }
    return t;
}

void *us_timer_ext(struct us_timer_t *t) { return t + 1; }
struct us_loop_t *us_timer_loop(struct us_timer_t *t) { return t->loop; }

static void arm(struct us_timer_t *t, long long first_ns, long long repeat_ns) {
    struct itimerspec spec = {
        .it_value = {.tv_sec = first_ns / 1000000000LL, .tv_nsec = first_ns % 1000000000LL},
        .it_interval = {.tv_sec = repeat_ns / 1000000000LL, .tv_nsec = repeat_ns % 1000000000LL},
    };
    timerfd_settime(t->poll.fd, 0, &spec, NULL);
}

void us_timer_set(struct us_timer_t *t, void (*cb)(struct us_timer_t *), int ms, int repeat_ms) {
    if (t->poll.closed) return;
    t->cb = cb;
    arm(t, (long long)ms * 1000000LL, (long long)repeat_ms * 1000000LL);
}

void us_timer_set_us(struct us_timer_t *t, void (*cb)(struct us_timer_t *), long long us) {
    if (t->poll.closed) return;
    t->cb = cb;
    /* A zero it_value disarms a timerfd: an already-due timer fires after 1 ns. */
    arm(t, us <= 0 ? 1 : us * 1000LL, 0);
}

void us_timer_close(struct us_timer_t *t) { us_internal_poll_close(t->loop, &t->poll); }

void us_internal_dispatch_timer(struct us_timer_t *t) {
    uint64_t expirations;
    if (read(t->poll.fd, &expirations, sizeof(expirations)) != sizeof(expirations)) return;
    if (t->cb) t->cb(t);
}
