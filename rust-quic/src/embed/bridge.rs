//! Running the engine inside another event loop (Bun's), through `bun:ffi`.
//!
//! The engine's loop is one epoll fd (sockets and timerfds). Once the host names
//! its wake-up port (`us_quic_embed_set_wake_port`: a loopback UDP socket the
//! host's loop polls; in Bun it can be unref()ed, where a pipe read cannot), an
//! **engine thread** runs that loop: it waits for the fd, and runs each
//! iteration (packets, crypto, timers, loss recovery, and the requests the
//! engine answers alone: static routes) holding the **baton**. It never calls
//! the application: events that would reach a callback are held
//! (edge/dispatch.rs), and when some are, it sends the host a one-byte datagram.
//! The host then takes the baton (`us_quic_embed_lock`), delivers what was held
//! on its own thread (`us_quic_embed_run`: every callback runs there), and gives
//! the baton back with its answers flushed (`us_quic_embed_release`). The host
//! holds the baton for every call it makes into the engine, so every engine
//! object is touched by one thread at a time.
//!
//! Before the port is named the host runs iterations itself (what arrives
//! waits in the sockets' buffers).

use std::ffi::{c_int, c_uint};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use usockets_sys as us;

use crate::{edge, usockets_driver};

pub struct Embed {
    loop_: *mut us::us_loop_t,
    baton: Arc<Baton>,
    stop_write: c_int,
    /// The engine thread's end of the stop pipe, until the thread takes it.
    stop_read: c_int,
    thread: Option<JoinHandle<()>>,
}

/// Who may touch the loop's objects: nobody (free), the host or the engine thread.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holder {
    Free,
    Host,
    Engine,
}

struct BatonState {
    holder: Holder,
    /// The host waits for the baton: the engine thread lets it go first.
    host_waiting: bool,
    /// The engine thread waits for it (a give-back wakes a waiter only: no
    /// futex call per iteration when nobody waits).
    engine_waiting: bool,
    /// The host was woken for held events and has not run since.
    notified: bool,
    stopping: bool,
}

struct Baton {
    state: Mutex<BatonState>,
    turn: Condvar,
}

impl Baton {
    fn new() -> Baton {
        Baton {
            state: Mutex::new(BatonState {
                holder: Holder::Free,
                host_waiting: false,
                engine_waiting: false,
                notified: false,
                stopping: false,
            }),
            turn: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, BatonState> {
        // A panic cannot cross the C ABI (it aborts), so a poisoned lock guards nothing half-done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, state: MutexGuard<'a, BatonState>) -> MutexGuard<'a, BatonState> {
        self.turn.wait(state).unwrap_or_else(|e| e.into_inner())
    }

    fn take_for_host(&self) {
        let mut state = self.state();
        if state.holder == Holder::Host {
            return;
        }
        state.host_waiting = true;
        while state.holder != Holder::Free {
            state = self.wait(state);
        }
        state.host_waiting = false;
        state.holder = Holder::Host;
    }

    /// False when the loop is being freed: the thread ends.
    fn take_for_engine(&self) -> bool {
        let mut state = self.state();
        while !state.stopping && (state.holder != Holder::Free || state.host_waiting) {
            state.engine_waiting = true;
            state = self.wait(state);
        }
        state.engine_waiting = false;
        if state.stopping {
            return false;
        }
        state.holder = Holder::Engine;
        true
    }

    fn give_back(&self) {
        let mut state = self.state();
        state.holder = Holder::Free;
        let waited = state.host_waiting || state.engine_waiting;
        drop(state);
        if waited {
            self.turn.notify_all();
        }
    }

    /// The engine thread, holding the baton: whether to wake the host now.
    fn notify_once(&self) -> bool {
        !std::mem::replace(&mut self.state().notified, true)
    }

    fn host_runs(&self) {
        self.state().notified = false;
    }

    fn stop(&self) {
        let mut state = self.state();
        state.stopping = true;
        if state.holder == Holder::Host {
            state.holder = Holder::Free; // the caller lets go for good
        }
        drop(state);
        self.turn.notify_all();
    }
}

pub(crate) fn pipe_pair() -> Option<(c_int, c_int)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: fds has room for two descriptors.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    (r == 0).then_some((fds[0], fds[1]))
}

fn wait_readable(fds: &[c_int]) -> Option<usize> {
    let mut polls: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    loop {
        // SAFETY: polls is a valid array of pollfd.
        let r = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, -1) };
        if r > 0 {
            return polls.iter().position(|p| p.revents != 0);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// The loop, handed to its engine thread.
struct LoopPtr(*mut us::us_loop_t);
// SAFETY: the loop is touched only by the holder of its baton.
unsafe impl Send for LoopPtr {}

/// The engine thread: loop fd readable -> one iteration with the baton -> the
/// host woken if the iteration held events for it.
fn run_engine(loop_: LoopPtr, wake: c_int, stop_read: c_int, baton: Arc<Baton>) {
    edge::set_engine_thread(true);
    let loop_ = loop_.0;
    // SAFETY: the loop outlives this thread (us_quic_embed_free joins it first).
    let loop_fd = unsafe { us::us_loop_fd(loop_) };
    while let Some(1) = wait_readable(&[stop_read, loop_fd]) {
        if !baton.take_for_engine() {
            break;
        }
        // SAFETY: the baton makes this thread the loop's only user until give_back.
        unsafe {
            // Connections with heads held for the host send their ACKs with its answers.
            usockets_driver::set_defer_answers(loop_, true);
            us::us_loop_run_once(loop_, 0);
            usockets_driver::set_defer_answers(loop_, false);
            if usockets_driver::holds_for_host(loop_) && baton.notify_once() {
                // A datagram the host's full buffer drops is no loss: it has one to read.
                libc::send(wake, b"!".as_ptr().cast(), 1, 0);
            }
        }
        baton.give_back();
    }
    // SAFETY: these fds belong to this thread from here on.
    unsafe {
        libc::close(wake);
        libc::close(stop_read);
    }
}

/// A loop for embedding; its engine thread starts with `us_quic_embed_set_wake_port`.
/// NULL if the loop or the pipe could not be made.
#[no_mangle]
pub extern "C" fn us_quic_embed_create() -> *mut Embed {
    // SAFETY: a new loop, freed here on failure and by us_quic_embed_free otherwise.
    let loop_ = unsafe { us::us_create_loop(std::ptr::null_mut(), None, None, None, 0) };
    if loop_.is_null() {
        return std::ptr::null_mut();
    }
    let Some((stop_read, stop_write)) = pipe_pair() else {
        unsafe { us::us_loop_free(loop_) };
        return std::ptr::null_mut();
    };
    let baton = Arc::new(Baton::new());
    Box::into_raw(Box::new(Embed { loop_, baton, stop_write, stop_read, thread: None }))
}

/// Starts the engine thread, waking the host with a datagram to 127.0.0.1:`port`.
/// 0, or -1 (NULL, port 0, started already, no socket or thread). The caller
/// may hold the baton: the thread waits for it.
///
/// # Safety
/// `e` is NULL or an embed from `us_quic_embed_create` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_set_wake_port(e: *mut Embed, port: c_uint) -> c_int {
    let Some(e) = e.as_mut() else { return -1 };
    let Ok(port @ 1..) = u16::try_from(port) else { return -1 };
    if e.thread.is_some() {
        return -1;
    }
    let Some(wake) = wake_socket(port) else { return -1 };
    let (loop_, stop_read, baton) = (LoopPtr(e.loop_), e.stop_read, e.baton.clone());
    match std::thread::Builder::new()
        .name("quic-engine".into())
        .spawn(move || run_engine(loop_, wake, stop_read, baton))
    {
        Ok(t) => {
            e.thread = Some(t);
            0
        }
        Err(_) => {
            libc::close(wake);
            -1
        }
    }
}

/// A UDP socket connected to the host's wake-up port on loopback.
pub(crate) fn wake_socket(port: u16) -> Option<c_int> {
    // SAFETY: a new socket, closed on failure; the address is a local sockaddr_in.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let mut to: libc::sockaddr_in = std::mem::zeroed();
        to.sin_family = libc::AF_INET as libc::sa_family_t;
        to.sin_port = port.to_be();
        to.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len) != 0 {
            libc::close(fd);
            return None;
        }
        Some(fd)
    }
}

/// # Safety
/// `e` is NULL or an embed from `us_quic_embed_create` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_loop(e: *mut Embed) -> *mut us::us_loop_t {
    e.as_ref().map_or(std::ptr::null_mut(), |e| e.loop_)
}

/// The host takes the baton (waiting for the engine thread's iteration to
/// end); every other call into the loop's objects needs it. Kept until
/// `us_quic_embed_release`; taking it again meanwhile is a no-op.
///
/// # Safety
/// `e` is NULL or an embed from `us_quic_embed_create` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_lock(e: *mut Embed) {
    if let Some(e) = e.as_ref() {
        e.baton.take_for_host();
    }
}

/// The host's turn, holding the baton: the callbacks of what the engine
/// thread held for it (before that thread runs: one non-blocking iteration on
/// the caller's thread). Returns how many handles keep the loop alive.
/// Connections whose requests reached the callbacks send nothing yet: the
/// host's `us_quic_embed_release`, once its handlers have answered (the runtime
/// queues it after their microtasks), sends ACKs and answers in the same packets.
///
/// # Safety
/// `e` is NULL or an embed from `us_quic_embed_create` not yet freed; the
/// caller holds its baton.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_run(e: *mut Embed) -> c_int {
    let Some(e) = e.as_ref() else { return -1 };
    // See Context::defer_answers.
    usockets_driver::set_defer_answers(e.loop_, true);
    if e.thread.is_some() {
        e.baton.host_runs();
        usockets_driver::deliver_held(e.loop_);
    } else {
        us::us_loop_run_once(e.loop_, 0);
    }
    usockets_driver::set_defer_answers(e.loop_, false);
    us::us_loop_alive_count(e.loop_)
}

/// Sends what the host wrote (`us_quic_loop_process`) and gives the baton back
/// to the engine thread.
///
/// # Safety
/// `e` is NULL or an embed from `us_quic_embed_create` not yet freed; the
/// caller holds its baton, and no callback of the loop is running.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_release(e: *mut Embed) {
    if let Some(e) = e.as_ref() {
        usockets_driver::process_loop(e.loop_);
        e.baton.give_back();
    }
}

/// Stops the engine thread and frees the loop. Every context on it must be
/// freed first. The caller may hold the baton (it is let go).
///
/// # Safety
/// `e` is NULL or an embed from `us_quic_embed_create` not yet freed; it is
/// dangling when this returns.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_free(e: *mut Embed) {
    if e.is_null() {
        return;
    }
    let mut e = Box::from_raw(e);
    e.baton.stop();
    libc::write(e.stop_write, b"!".as_ptr().cast(), 1);
    match e.thread.take() {
        // The thread closed its own ends.
        Some(t) => {
            let _ = t.join();
        }
        None => {
            libc::close(e.stop_read);
        }
    }
    libc::close(e.stop_write);
    // Run once more so closed handles are released, then free.
    us::us_loop_run_once(e.loop_, 0);
    us::us_loop_free(e.loop_);
}
