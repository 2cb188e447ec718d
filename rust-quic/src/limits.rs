//! Limits that bound what one client can cost a server: slow request heads and
//! bodies, stalled connections, stream open and reset floods, and connection
//! counts. The policy state here takes `now` and answers verdicts; the
//! connection code (peer_context.rs, stream.rs, listen_socket.rs) acts on them.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Server limits; 0 turns a limit off. quic.h: `us_quic_limits_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Limits {
    /// A request stream's head must be complete this long after the stream
    /// opened (a client trickling HEADERS gets 408).
    pub request_head_timeout_ms: u32,
    /// A request body the server is reading must make progress (any bytes)
    /// at least this often until a response begins; a stall gets 408. Time
    /// the application holds the body paused does not count.
    pub request_body_timeout_ms: u32,
    /// Requests on one connection that may hit one of the two deadlines above
    /// before the whole connection is closed (H3_EXCESSIVE_LOAD).
    pub stalled_requests_per_connection: u32,
    /// Request streams a client may open per second on one connection,
    /// with a burst of as many again (H3_EXCESSIVE_LOAD past it).
    pub stream_opens_per_second: u32,
    /// Request streams a client may cancel (RESET_STREAM or STOP_SENDING before
    /// the exchange ended) per second on one connection, with a burst of as many
    /// again: the HTTP/2 "rapid reset" attack (CVE-2023-44487) in HTTP/3 form.
    pub stream_resets_per_second: u32,
    /// Connections open at once from one client IP address; a new one past it
    /// is refused (CONNECTION_REFUSED).
    pub connections_per_address: u32,
    /// Connections open at once on the server context.
    pub max_connections: u32,
    /// Fields in a request head (pseudo-headers included) past which it gets 431.
    pub max_header_fields: u32,
    /// New connections per second (with a burst of as many again) past which a
    /// client must first prove its address with a Retry round trip
    /// (`RetryPolicy::AboveRate`): a flood of spoofed Initials then costs a
    /// small Retry packet each instead of a handshake.
    pub handshakes_per_second: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_head_timeout_ms: 10_000,
            request_body_timeout_ms: 30_000,
            stalled_requests_per_connection: 4,
            // Completed requests are real load, already bounded by the stream
            // concurrency limit (MAX_STREAMS) and the server's own pace.
            stream_opens_per_second: 0,
            stream_resets_per_second: 200,
            connections_per_address: 4096,
            max_connections: 65_536,
            // Bun's own server refuses about 200 fields, over either protocol.
            max_header_fields: 200,
            // About twice what two cores sign per second (ECDSA P-256): only a
            // flood, not a busy day, pays the extra round trip.
            handshakes_per_second: 5_000,
        }
    }
}

/// RFC 9000 8.1: until a client's address is validated, a server sends it at
/// most three times the bytes it received from it. quiche keeps this limit
/// without the padding it adds to datagrams that carry an Initial (each padded
/// to 1,200 bytes after the check), so toward an address that never answers
/// (a spoofed Initial's victim) it sent ~4.6x; the engine counts the
/// datagrams themselves. A datagram past the budget is not sent: quiche counts
/// it lost and sends it again once the client's next datagram raises the budget.
#[derive(Clone, Copy, Debug, Default)]
pub struct AmplificationBudget {
    /// Bytes that may still be sent; None once the address is validated.
    left: Option<u64>,
}

impl AmplificationBudget {
    /// A server connection whose client sent `received` bytes so far, not validated.
    pub fn unvalidated(received: usize) -> AmplificationBudget {
        AmplificationBudget { left: Some(3 * received as u64) }
    }

    /// The address is validated (the handshake completed, or a Retry token): no limit.
    pub fn validated(&mut self) {
        self.left = None;
    }

    pub fn received(&mut self, len: usize) {
        if let Some(left) = self.left.as_mut() {
            *left += 3 * len as u64;
        }
    }

    /// Whether a datagram of `len` bytes may go (and is charged).
    pub fn send(&mut self, len: usize) -> bool {
        match self.left.as_mut() {
            None => true,
            Some(left) if *left >= len as u64 => {
                *left -= len as u64;
                true
            }
            Some(_) => false,
        }
    }
}

/// Allowance for `rate` events a second with a burst of `rate` more.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    tokens: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    pub const fn new() -> TokenBucket {
        TokenBucket { tokens: 0.0, at: None }
    }

    /// Takes one token; false once the allowance is spent. `rate` 0 never refuses.
    pub fn take(&mut self, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let burst = 2.0 * f64::from(rate);
        let refill = self.at.map_or(burst, |at| now.saturating_duration_since(at).as_secs_f64() * f64::from(rate));
        self.tokens = (self.tokens + refill).min(burst);
        self.at = Some(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

impl Default for TokenBucket {
    fn default() -> TokenBucket {
        TokenBucket::new()
    }
}

/// What a connection's guard decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Close the connection with H3_EXCESSIVE_LOAD, for this reason.
    Close(&'static str),
}

/// One server connection's deadlines and allowances.
#[derive(Debug)]
pub struct ConnectionGuard {
    /// Request streams whose head must arrive by then (earliest first); entries
    /// whose head arrived are dropped as they reach the front.
    pub head_deadlines: VecDeque<(Instant, u64)>,
    /// When to look for request bodies that stopped making progress.
    pub body_check_at: Option<Instant>,
    /// Request streams open now.
    open_requests: u32,
    /// With no request open: when the connection has been idle long enough
    /// to close, however often the client pings.
    quiet_until: Option<Instant>,
    stalled: u32,
    opens: TokenBucket,
    resets: TokenBucket,
}

impl ConnectionGuard {
    pub fn new() -> ConnectionGuard {
        ConnectionGuard {
            head_deadlines: VecDeque::new(),
            body_check_at: None,
            open_requests: 0,
            quiet_until: None,
            stalled: 0,
            opens: TokenBucket::new(),
            resets: TokenBucket::new(),
        }
    }

    /// A client opened request stream `id`.
    pub fn stream_opened(&mut self, limits: &Limits, id: u64, now: Instant) -> Verdict {
        if !self.opens.take(limits.stream_opens_per_second, now) {
            return Verdict::Close("request streams opened too fast");
        }
        if limits.request_head_timeout_ms > 0 {
            let at = now + Duration::from_millis(u64::from(limits.request_head_timeout_ms));
            // Kept in deadline order, so the front is the earliest even after the
            // timeout changed (`next_deadline` and the expiry read only the front).
            let i = self.head_deadlines.partition_point(|&(t, _)| t <= at);
            self.head_deadlines.insert(i, (at, id));
        }
        self.open_requests += 1;
        self.quiet_until = None;
        Verdict::Allow
    }

    /// Stream `id`'s head arrived: its deadline goes at once when it is at
    /// either end of the queue, as it is when the head came with the stream's
    /// first bytes (almost always); one in the middle waits for the expiry
    /// pass. Without this the queue would hold every request of the last head
    /// timeout under a steady load, where quiche's timers keep moving and the
    /// pass seldom runs (10 s × the request rate, searched on every open).
    pub fn head_arrived(&mut self, id: u64) {
        if self.head_deadlines.back().is_some_and(|&(_, last)| last == id) {
            self.head_deadlines.pop_back();
        } else if self.head_deadlines.front().is_some_and(|&(_, first)| first == id) {
            self.head_deadlines.pop_front();
        }
    }

    /// A request stream ended (or the connection was just established, with
    /// none): with none left open, the connection may stay quiet for `idle`.
    pub fn request_closed(&mut self, idle: Duration, now: Instant) {
        self.open_requests = self.open_requests.saturating_sub(1);
        if self.open_requests == 0 && !idle.is_zero() {
            self.quiet_until = Some(now + idle);
        }
    }

    /// True once the connection has had no request open for its idle time:
    /// a client that only pings (which refreshes the QUIC idle timer) is not
    /// making progress.
    pub fn quiet_too_long(&mut self, now: Instant) -> bool {
        if self.quiet_until.is_some_and(|t| t <= now) {
            self.quiet_until = None;
            return true;
        }
        false
    }

    /// A client cancelled a request stream before its exchange ended.
    pub fn stream_cancelled(&mut self, limits: &Limits, now: Instant) -> Verdict {
        if self.resets.take(limits.stream_resets_per_second, now) {
            Verdict::Allow
        } else {
            Verdict::Close("request streams cancelled too fast")
        }
    }

    /// A request hit the head or body deadline.
    pub fn request_stalled(&mut self, limits: &Limits) -> Verdict {
        self.stalled += 1;
        if limits.stalled_requests_per_connection > 0 && self.stalled >= limits.stalled_requests_per_connection {
            Verdict::Close("too many stalled requests")
        } else {
            Verdict::Allow
        }
    }

    /// A request body began (or resumed) being read at `now`: make sure a check
    /// is due by its deadline.
    pub fn watch_body(&mut self, limits: &Limits, now: Instant) {
        if limits.request_body_timeout_ms == 0 {
            return;
        }
        let at = now + Duration::from_millis(u64::from(limits.request_body_timeout_ms));
        self.body_check_at = Some(self.body_check_at.map_or(at, |t| t.min(at)));
    }

    /// The earliest moment this guard needs `now` again.
    pub fn next_deadline(&self) -> Option<Instant> {
        let head = self.head_deadlines.front().map(|&(at, _)| at);
        [head, self.body_check_at, self.quiet_until].into_iter().flatten().min()
    }
}

impl Default for ConnectionGuard {
    fn default() -> ConnectionGuard {
        ConnectionGuard::new()
    }
}

/// Connections open on a server context, in total and per client address.
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    total: u32,
    by_address: HashMap<IpAddr, u32>,
}

impl ConnectionCounts {
    /// Counts a new connection from `ip`, or refuses it (false) past a limit.
    pub fn admit(&mut self, limits: &Limits, ip: IpAddr) -> bool {
        let from_ip = self.by_address.get(&ip).copied().unwrap_or(0);
        if (limits.max_connections > 0 && self.total >= limits.max_connections)
            || (limits.connections_per_address > 0 && from_ip >= limits.connections_per_address)
        {
            return false;
        }
        self.total += 1;
        *self.by_address.entry(ip).or_insert(0) += 1;
        true
    }

    /// A connection admitted from `ip` has ended.
    pub fn release(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new();
        for _ in 0..20 {
            assert!(b.take(10, t0));
        }
        assert!(!b.take(10, t0), "burst of 2x rate spent");
        assert!(!b.take(10, t0 + Duration::from_millis(50)), "half a token refilled");
        assert!(b.take(10, t0 + Duration::from_millis(160)), "one token back after 100 ms");
        assert!(b.take(0, t0), "rate 0 is no limit");
    }

    #[test]
    fn guard_closes_after_stalls_and_floods() {
        let limits = Limits { stalled_requests_per_connection: 2, stream_resets_per_second: 1, ..Limits::default() };
        let now = Instant::now();
        let mut g = ConnectionGuard::new();
        assert_eq!(g.request_stalled(&limits), Verdict::Allow);
        assert!(matches!(g.request_stalled(&limits), Verdict::Close(_)));
        assert_eq!(g.stream_cancelled(&limits, now), Verdict::Allow);
        assert_eq!(g.stream_cancelled(&limits, now), Verdict::Allow);
        assert!(matches!(g.stream_cancelled(&limits, now), Verdict::Close(_)));
        let open_limited = Limits { stream_opens_per_second: 1, ..Limits::default() };
        assert_eq!(g.stream_opened(&open_limited, 0, now), Verdict::Allow);
        assert_eq!(g.stream_opened(&open_limited, 4, now), Verdict::Allow);
        assert!(matches!(g.stream_opened(&open_limited, 8, now), Verdict::Close(_)));
    }

    #[test]
    fn heads_that_arrive_leave_the_queue() {
        let now = Instant::now();
        let limits = Limits::default();
        let mut g = ConnectionGuard::new();
        for id in (0..4000).step_by(4) {
            assert_eq!(g.stream_opened(&limits, id, now), Verdict::Allow);
            g.head_arrived(id);
        }
        assert!(g.head_deadlines.is_empty(), "a steady load of whole heads queues nothing");
        g.stream_opened(&limits, 0, now);
        g.stream_opened(&limits, 4, now);
        g.stream_opened(&limits, 8, now);
        g.head_arrived(0);
        g.head_arrived(4);
        assert_eq!(g.head_deadlines.iter().map(|&(_, id)| id).collect::<Vec<_>>(), [8]);
    }

    #[test]
    fn head_deadlines_stay_in_order_when_the_timeout_changes() {
        let now = Instant::now();
        let mut g = ConnectionGuard::new();
        let long = Limits { request_head_timeout_ms: 10_000, ..Limits::default() };
        let short = Limits { request_head_timeout_ms: 300, ..Limits::default() };
        assert_eq!(g.stream_opened(&long, 0, now), Verdict::Allow);
        assert_eq!(g.stream_opened(&short, 4, now), Verdict::Allow);
        // The later stream's shorter deadline comes first: the next deadline is its.
        assert_eq!(g.head_deadlines.front(), Some(&(now + Duration::from_millis(300), 4)));
        assert_eq!(g.next_deadline(), Some(now + Duration::from_millis(300)));
    }

    #[test]
    fn guard_deadlines() {
        let limits = Limits::default();
        let now = Instant::now();
        let mut g = ConnectionGuard::new();
        assert_eq!(g.next_deadline(), None);
        g.request_closed(Duration::from_secs(30), now);
        assert_eq!(g.next_deadline(), Some(now + Duration::from_secs(30)), "quiet from the start");
        assert!(!g.quiet_too_long(now));
        g.stream_opened(&limits, 0, now);
        assert_eq!(g.next_deadline(), Some(now + Duration::from_secs(10)), "a request open: not quiet");
        g.watch_body(&limits, now);
        g.watch_body(&limits, now + Duration::from_secs(1));
        assert_eq!(g.body_check_at, Some(now + Duration::from_secs(30)));
        g.body_check_at = None;
        g.head_deadlines.clear();
        g.request_closed(Duration::from_secs(30), now);
        assert!(g.quiet_too_long(now + Duration::from_secs(30)));
        assert_eq!(g.next_deadline(), None, "reported once");
        let off = Limits { request_head_timeout_ms: 0, request_body_timeout_ms: 0, ..limits };
        let mut g = ConnectionGuard::new();
        g.stream_opened(&off, 0, now);
        g.watch_body(&off, now);
        assert_eq!(g.next_deadline(), None);
    }

    #[test]
    fn counts_per_address_and_total() {
        let limits = Limits { connections_per_address: 2, max_connections: 3, ..Limits::default() };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut c = ConnectionCounts::default();
        assert!(c.admit(&limits, a));
        assert!(c.admit(&limits, a));
        assert!(!c.admit(&limits, a), "per address");
        assert!(c.admit(&limits, b));
        assert!(!c.admit(&limits, b), "total");
        c.release(a);
        assert!(c.admit(&limits, b));
        c.release(a);
        c.release(b);
        c.release(b);
        assert!(c.by_address.is_empty());
    }
}
