//! The native driver: the core on the usockets-compatible C loop. UDP sockets
//! are the loop's (recvmmsg/GRO in, GSO/sendmmsg out); one fallthrough timer per
//! loop wakes it for the soonest QUIC deadline; `us_quic_loop_process` runs in
//! the loop's post step. Everything happens on the loop's thread.

use std::ffi::{c_char, c_int, c_void, CString};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Instant;

use usockets_sys as us;

use crate::context::Context;
use crate::driver::{BatchesSent, Driver, SendOutcome, SocketHandle, SocketOwner};
use crate::edge;
use crate::listen_socket::ListenSocket;
use crate::outbox::Batch;

const _: () = assert!(crate::driver::LISTEN_REUSE_PORT == us::LIBUS_LISTEN_REUSE_PORT as i32);

pub struct UsocketsDriver {
    pub loop_: *mut us::us_loop_t,
    /// Scratch for `send_batches`, kept so a send allocates nothing.
    batch_scratch: Vec<us::us_udp_batch>,
    address_scratch: Vec<libc::sockaddr_storage>,
}

impl UsocketsDriver {
    /// A driver for `loop_`; registers the loop's QUIC hook on first use.
    ///
    /// # Safety
    /// `loop_` is a live usockets loop.
    pub unsafe fn new(loop_: *mut us::us_loop_t) -> UsocketsDriver {
        UsocketsDriver { loop_, batch_scratch: Vec::new(), address_scratch: Vec::new() }
    }
}

/// # Safety
/// `p` points to a readable `sockaddr_storage`.
pub(crate) unsafe fn sockaddr_to_std(p: *const libc::sockaddr_storage) -> Option<SocketAddr> {
    match c_int::from((*p).ss_family) {
        libc::AF_INET => {
            let a = &*(p as *const libc::sockaddr_in);
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            let a = &*(p as *const libc::sockaddr_in6);
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
        }
        _ => None,
    }
}

pub(crate) fn std_to_sockaddr(a: &SocketAddr) -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
        }
    }
    ss
}

impl Driver for UsocketsDriver {
    fn bind(
        &mut self,
        owner: SocketOwner,
        host: Option<&str>,
        port: u16,
        flags: i32,
        connect_to: Option<SocketAddr>,
    ) -> Result<(SocketHandle, SocketAddr), i32> {
        let host_c = match host.map(CString::new) {
            Some(Ok(c)) => Some(c),
            Some(Err(_)) => return Err(libc::EINVAL),
            None => None,
        };
        let mut err: c_int = 0;
        // SAFETY: the loop outlives its contexts; `owner` outlives the socket
        // (it is freed only after the socket is closed).
        unsafe {
            let s = us::us_create_udp_socket(
                self.loop_,
                Some(on_data),
                Some(on_drain),
                None,
                host_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                port,
                flags,
                &mut err,
                owner.cast(),
            );
            if s.is_null() {
                return Err(if err == 0 { libc::EINVAL } else { err });
            }
            if let Some(peer) = connect_to {
                let ss = std_to_sockaddr(&peer);
                let e = us::us_udp_socket_connect(s, (&ss as *const libc::sockaddr_storage).cast());
                if e != 0 {
                    us::us_udp_socket_close(s);
                    return Err(e);
                }
                us::us_udp_socket_on_error(s, Some(on_error));
            }
            let mut ss: libc::sockaddr_storage = std::mem::zeroed();
            us::us_udp_socket_bound_addr(s, (&mut ss as *mut libc::sockaddr_storage).cast());
            let local = sockaddr_to_std(&ss).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            Ok((s.cast(), local))
        }
    }

    fn send(&mut self, socket: SocketHandle, to: SocketAddr, data: &[u8], segment_size: usize) -> SendOutcome {
        let ss = std_to_sockaddr(&to);
        let mut sent: usize = 0;
        // SAFETY: `socket` came from bind and is not closed yet.
        let r = unsafe {
            us::us_udp_socket_send_segments(
                socket.cast(),
                data.as_ptr().cast::<c_char>(),
                data.len(),
                segment_size.max(1),
                (&ss as *const libc::sockaddr_storage).cast(),
                &mut sent,
            )
        };
        match r {
            1 => SendOutcome::Sent,
            0 => SendOutcome::Blocked { sent },
            _ => SendOutcome::Failed,
        }
    }

    fn send_batches(&mut self, socket: SocketHandle, bytes: &[u8], batches: &[Batch]) -> BatchesSent {
        self.address_scratch.clear();
        self.address_scratch.extend(batches.iter().map(|b| std_to_sockaddr(&b.to)));
        self.batch_scratch.clear();
        self.batch_scratch.extend(batches.iter().zip(&self.address_scratch).map(|(b, to)| us::us_udp_batch {
            data: bytes[b.start..b.start + b.len].as_ptr().cast::<c_char>(),
            len: b.len,
            segment_size: b.segment.max(1),
            to: (to as *const libc::sockaddr_storage).cast(),
        }));
        let mut next_sent: usize = 0;
        // SAFETY: `socket` came from bind and is not closed yet; every batch
        // points into `bytes` and at an address in `address_scratch`, both
        // alive for the call.
        let done = unsafe {
            us::us_udp_socket_send_batches(
                socket.cast(),
                self.batch_scratch.as_ptr(),
                self.batch_scratch.len() as c_int,
                &mut next_sent,
            )
        };
        BatchesSent { done: usize::try_from(done).unwrap_or(0).min(batches.len()), next_sent }
    }

    fn close(&mut self, socket: SocketHandle) {
        // SAFETY: closed once (the listen socket tracks it).
        unsafe { us::us_udp_socket_close(socket.cast()) }
    }

    fn steer_by_server_id(&mut self, socket: SocketHandle, offset: u32) -> Result<(), i32> {
        const LD_BYTE: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
        let op = |code: u32, jt: u8, k: u32| libc::sock_filter { code: code as u16, jt, jf: 0, k };
        // Classic BPF over the UDP payload; the kernel hashes for an index past the group's end.
        let program = [
            libc::sock_filter { code: LD_BYTE, jt: 0, jf: 0, k: 0 }, // the first byte
            op(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 2, 0x80), // long header: to the hash
            libc::sock_filter { code: LD_BYTE, jt: 0, jf: 0, k: offset }, // the server ID's first byte
            op(libc::BPF_RET | libc::BPF_A, 0, 0),
            op(libc::BPF_RET | libc::BPF_K, 0, u32::MAX),
        ];
        let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
        // SAFETY: a live socket's fd; the program outlives the call (the kernel copies it).
        let r = unsafe {
            libc::setsockopt(
                us::us_udp_socket_fd(socket.cast()),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_REUSEPORT_CBPF,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL))
        }
    }

    fn loop_ptr(&self) -> *mut c_void {
        self.loop_.cast()
    }
}

/// # Safety
/// usockets calls it with `s`, a live UDP socket whose user data is a live
/// listen socket, and `buf` holding `count` received datagrams.
unsafe extern "C" fn on_data(s: *mut us::us_udp_socket_t, buf: *mut us::us_udp_packet_buffer_t, count: c_int) {
    let ls = us::us_udp_socket_user(s) as *mut ListenSocket;
    let ctx = (*ls).ctx;
    edge::enter(ctx);
    for i in 0..count {
        let ptr = us::us_udp_packet_buffer_payload(buf, i);
        let len = us::us_udp_packet_buffer_payload_length(buf, i);
        let from = sockaddr_to_std(us::us_udp_packet_buffer_peer(buf, i) as *const libc::sockaddr_storage);
        let to = sockaddr_to_std(us::us_udp_packet_buffer_local(buf, i) as *const libc::sockaddr_storage);
        if let (Some(from), Some(to)) = (from, to) {
            let data = std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len as usize);
            edge::recv_datagram(ls, data, from, to);
        }
    }
    edge::run_dirty(ctx);
    edge::leave(ctx);
    edge::sweep_if_idle(ctx);
}

/// # Safety
/// usockets calls it with `s`, a live UDP socket whose user data is a live
/// listen socket.
unsafe extern "C" fn on_error(s: *mut us::us_udp_socket_t, err: c_int) {
    let ls = us::us_udp_socket_user(s) as *mut ListenSocket;
    edge::socket_error(ls, err);
}

/// # Safety
/// usockets calls it with `s`, a live UDP socket whose user data is a live
/// listen socket.
unsafe extern "C" fn on_drain(s: *mut us::us_udp_socket_t) {
    let ls = us::us_udp_socket_user(s) as *mut ListenSocket;
    edge::socket_writable(ls);
}

/// The QUIC state of one loop (upstream keeps `quic_head` in the loop).
struct LoopQuic {
    contexts: Vec<*mut Context>,
    timer: *mut us::us_timer_t,
    /// When the timer is set to fire, if it is. It is re-armed only for an
    /// earlier deadline: one that moved later (as a connection's timers do with
    /// every packet under load) leaves it, at the cost of one early wake-up,
    /// instead of a `timerfd_settime` per loop iteration.
    armed: Option<Instant>,
    processing: bool,
}

/// # Safety
/// `loop_` is a live usockets loop.
unsafe fn loop_quic(loop_: *mut us::us_loop_t) -> *mut LoopQuic {
    us::us_internal_loop_quic(loop_) as *mut LoopQuic
}

/// # Safety
/// `_t` is NULL or writable.
unsafe extern "C" fn wake_only(_t: *mut us::us_timer_t) {}

/// # Safety
/// `loop_` is NULL or a live usockets loop.
unsafe extern "C" fn loop_post(loop_: *mut us::us_loop_t) {
    process_loop(loop_);
}

/// # Safety
/// `loop_` is a live usockets loop; `ctx` is a live context.
pub unsafe fn register(loop_: *mut us::us_loop_t, ctx: *mut Context) {
    let mut lq = loop_quic(loop_);
    if lq.is_null() {
        lq = Box::into_raw(Box::new(LoopQuic {
            contexts: Vec::new(),
            timer: us::us_create_timer(loop_, 1, 0),
            armed: None,
            processing: false,
        }));
        us::us_internal_loop_set_quic(loop_, lq.cast(), Some(loop_post));
    }
    (*lq).contexts.push(ctx);
}

/// Frees `ctx` now if nothing of it or of its loop is running, else at the end
/// of the loop iteration.
///
/// # Safety
/// `ctx` is a live context whose free was requested (`edge::request_free`);
/// the caller uses it no more: it may be dangling when this returns.
pub unsafe fn free_or_defer(ctx: *mut Context) {
    let loop_ = (*ctx).loop_ptr() as *mut us::us_loop_t;
    let lq = loop_quic(loop_);
    let busy = (*ctx).depth > 0 || us::us_internal_loop_dispatching(loop_) != 0 || (!lq.is_null() && (*lq).processing);
    if busy {
        return;
    }
    if !lq.is_null() {
        (*lq).contexts.retain(|&c| c != ctx);
    }
    edge::destroy(ctx);
    release_if_empty(loop_);
}

/// # Safety
/// `loop_` is a live usockets loop; its rust-quic state is freed when no
/// context is left on it, so no pointer to that state may be held across this.
unsafe fn release_if_empty(loop_: *mut us::us_loop_t) {
    let lq = loop_quic(loop_);
    if !lq.is_null() && (*lq).contexts.is_empty() && !(*lq).processing {
        us::us_timer_close((*lq).timer);
        us::us_internal_loop_set_quic(loop_, std::ptr::null_mut(), None);
        drop(Box::from_raw(lq));
    }
}

/// See `Context::defer_answers`: on for the duration of an embedder's iteration.
///
/// # Safety
/// `loop_` is a live usockets loop.
pub unsafe fn set_defer_answers(loop_: *mut us::us_loop_t, defer: bool) {
    let lq = loop_quic(loop_);
    if lq.is_null() {
        return;
    }
    for &ctx in (*lq).contexts.iter() {
        (*ctx).set_defer_answers(defer);
    }
}

/// The host's turn on an embedded loop whose engine thread ran it: every
/// context delivers what that thread held for the application.
///
/// # Safety
/// `loop_` is a live usockets loop; its engine thread is not running it.
pub unsafe fn deliver_held(loop_: *mut us::us_loop_t) {
    let lq = loop_quic(loop_);
    if lq.is_null() {
        return;
    }
    // By index: a callback may register a new context (appended), or free one
    // (removed, which may skip the next: the pass repeats, bounded).
    for _ in 0..4 {
        let mut i = 0;
        while i < (*lq).contexts.len() {
            edge::deliver_held((&(*lq).contexts)[i]);
            i += 1;
        }
        if !holds_for_host(loop_) {
            break;
        }
    }
}

/// Whether a context on the loop holds events for the host (see `deliver_held`).
///
/// # Safety
/// `loop_` is a live usockets loop.
pub unsafe fn holds_for_host(loop_: *mut us::us_loop_t) -> bool {
    let lq = loop_quic(loop_);
    !lq.is_null() && (*lq).contexts.iter().any(|&ctx| !(*ctx).held.is_empty())
}

/// `us_quic_loop_process`: every context on the loop, then the timer.
///
/// # Safety
/// `loop_` is a live usockets loop.
pub unsafe fn process_loop(loop_: *mut us::us_loop_t) {
    let lq = loop_quic(loop_);
    if lq.is_null() || (*lq).processing {
        return;
    }
    (*lq).processing = true;
    let now = Instant::now();
    // By index: a callback may register a new context (appended); none is
    // removed while `processing` is set.
    let mut i = 0;
    while i < (*lq).contexts.len() {
        let ctx = (&(*lq).contexts)[i];
        // A context inside one of its own callbacks is processed when it returns
        // (an embedder may call this from JS at any time).
        if !(*ctx).free_requested && !(*ctx).in_callback() {
            edge::process(ctx, now);
        }
        i += 1;
    }
    let freed: Vec<*mut Context> =
        (*lq).contexts.iter().copied().filter(|&c| (*c).free_requested && (*c).depth == 0).collect();
    for ctx in freed {
        (*lq).contexts.retain(|&c| c != ctx);
        edge::destroy(ctx);
    }
    (*lq).processing = false;
    arm_timer(lq, now);
    release_if_empty(loop_);
}

/// # Safety
/// `loop_` is a live usockets loop.
pub unsafe fn flush_loop(loop_: *mut us::us_loop_t) {
    let lq = loop_quic(loop_);
    if lq.is_null() {
        return;
    }
    let mut i = 0;
    while i < (*lq).contexts.len() {
        let ctx = (&(*lq).contexts)[i];
        if !(*ctx).in_callback() {
            edge::flush_if_pending(ctx);
        }
        i += 1;
    }
    // What was sent set loss-detection timers the loop must wake for.
    arm_timer(lq, Instant::now());
}

/// Arms the loop's timer for the earliest deadline of its contexts, if that is
/// earlier than what it is armed for (see `LoopQuic::armed`).
///
/// # Safety
/// `lq` is a live loop's QUIC state.
unsafe fn arm_timer(lq: *mut LoopQuic, now: Instant) {
    let next = (*lq).contexts.iter().filter_map(|&c| crate::edge::next_timeout(c)).min();
    // A one-shot timer whose time came has fired (`process_loop` runs after
    // it, every iteration): it is disarmed, whatever `armed` says.
    if (*lq).armed.is_some_and(|t| t <= now) {
        (*lq).armed = None;
    }
    if let Some(at) = next.filter(|&at| (*lq).armed.is_none_or(|armed| at < armed)) {
        // Rounded up, so it never fires before the deadline.
        let us_left = at.saturating_duration_since(Instant::now()).as_nanos().div_ceil(1000) as i64;
        us::us_timer_set_us((*lq).timer, Some(wake_only), us_left.max(1));
        (*lq).armed = Some(at);
    }
}
