/* Private to the loop's C files: the poll record every handle starts with. */
#ifndef US_INTERNAL_H
#define US_INTERNAL_H

#include "libusockets.h"

enum us_poll_kind { US_POLL_WAKEUP = 1, US_POLL_TIMER = 2, US_POLL_UDP = 3 };

/* Every fd registered in the loop's epoll set begins with this record, so an
 * epoll event's data.ptr can be dispatched by kind. */
struct us_poll_t {
    int fd;
    int kind;
    int keeps_alive;
    int closed;
    struct us_poll_t *next_closed; /* freed at the end of the iteration */
};

struct us_loop_t {
    int epoll_fd;
    struct us_poll_t wakeup; /* eventfd */
    void (*wakeup_cb)(struct us_loop_t *);
    void (*pre_cb)(struct us_loop_t *);
    void (*post_cb)(struct us_loop_t *);
    int alive;               /* handles that keep the loop alive */
    long long iteration;
    int dispatching;
    struct us_poll_t *closed_head;
    void *quic_head;
    void (*quic_process)(struct us_loop_t *);
    struct us_udp_packet_buffer_t *recv_buf; /* shared by all UDP sockets of the loop */
    /* ext memory follows */
};

int us_internal_poll_add(struct us_loop_t *loop, struct us_poll_t *p, unsigned int events);
int us_internal_poll_change(struct us_loop_t *loop, struct us_poll_t *p, unsigned int events);
/* Removes the fd from epoll, closes it and queues the record for freeing after
 * the current iteration. */
void us_internal_poll_close(struct us_loop_t *loop, struct us_poll_t *p);
void us_internal_dispatch_timer(struct us_timer_t *t);
void us_internal_dispatch_udp(struct us_udp_socket_t *s, unsigned int events);
/* Splits one received buffer of `total` bytes, coalesced by UDP GRO into
 * `segment`-byte datagrams (0: not coalesced, one datagram), into views
 * appended at index `views` (data pointer, length, receive slot); returns the
 * new view count, never more than `max_views`. */
int us_internal_split_datagrams(char *data, int total, int segment, int slot, char **view_data, int *view_len,
                                int *view_slot, int views, int max_views);
void us_internal_free_closed_udp(struct us_poll_t *p);
struct us_udp_packet_buffer_t *us_internal_create_packet_buffer(void);
void us_internal_free_packet_buffer(struct us_udp_packet_buffer_t *buf);

#endif
