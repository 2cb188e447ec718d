//! Running the engine inside another event loop (Bun's), through `bun:ffi`.
//!
//! The engine's loop is one epoll fd (sockets and timerfds). A helper thread
//! does nothing but wait for that fd to become readable and then send a one-byte
//! datagram to the host's wake-up port (a loopback UDP socket the host's loop
//! polls: in Bun it can be unref()ed, where a pipe read cannot, and a second
//! pipe reader beside another one stalled); it then waits for the host's
//! acknowledgement before polling again, so it never spins on a level-triggered
//! fd. When the datagram arrives, the host calls `us_quic_embed_run` on its own
//! thread, which runs one non-blocking iteration of the loop: every callback,
//! every protocol step happens on the host's thread. The thread touches no
//! engine state and calls nothing but poll/read/send on its own fds. It starts
//! when the host names its port (`us_quic_embed_set_wake_port`); until then the
//! host runs iterations itself (what arrives waits in the sockets' buffers).

use std::ffi::{c_int, c_uint};
use std::thread::JoinHandle;

use usockets_sys as us;

use crate::usockets_driver;

pub struct Embed {
    loop_: *mut us::us_loop_t,
    ack_write: c_int,
    /// The watcher's end of the acknowledgement pipe, until the watcher takes it.
    ack_read: c_int,
    stop_write: c_int,
    stop_read: c_int,
    thread: Option<JoinHandle<()>>,
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

fn drain(fd: c_int) {
    let mut buf = [0u8; 64];
    // SAFETY: reading into a local buffer from our own non-blocking fd.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// The helper thread: loop fd readable -> one datagram to the host -> wait for ack.
fn watch(loop_fd: c_int, wake: c_int, ack_read: c_int, stop_read: c_int) {
    while let Some(1) = wait_readable(&[stop_read, loop_fd]) {
        // SAFETY: one byte from a static buffer on our own socket. A datagram the
        // host's full buffer drops is no loss: the host has one to read, runs, and acks.
        unsafe { libc::send(wake, b"!".as_ptr().cast(), 1, 0) };
        match wait_readable(&[stop_read, ack_read]) {
            Some(1) => drain(ack_read),
            _ => break,
        }
    }
    // SAFETY: these fds belong to this thread from here on.
    unsafe {
        libc::close(wake);
        libc::close(ack_read);
        libc::close(stop_read);
    }
}

/// A loop for embedding; its watcher starts with `us_quic_embed_set_wake_port`.
/// NULL if the loop or the pipes could not be made.
#[no_mangle]
pub extern "C" fn us_quic_embed_create() -> *mut Embed {
    // SAFETY: a new loop, freed here on every failure path and by
    // us_quic_embed_free otherwise.
    let loop_ = unsafe { us::us_create_loop(std::ptr::null_mut(), None, None, None, 0) };
    if loop_.is_null() {
        return std::ptr::null_mut();
    }
    let (Some((ack_read, ack_write)), Some((stop_read, stop_write))) = (pipe_pair(), pipe_pair()) else {
        unsafe { us::us_loop_free(loop_) };
        return std::ptr::null_mut();
    };
    Box::into_raw(Box::new(Embed { loop_, ack_write, ack_read, stop_write, stop_read, thread: None }))
}

/// Starts the watcher, waking the host with a datagram to 127.0.0.1:`port`.
/// 0, or -1 (NULL, port 0, started already, no socket or thread).
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
    let (loop_fd, ack_read, stop_read) = (us::us_loop_fd(e.loop_), e.ack_read, e.stop_read);
    match std::thread::Builder::new()
        .name("quic-loop-watch".into())
        .spawn(move || watch(loop_fd, wake, ack_read, stop_read))
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

/// One non-blocking iteration on the caller's thread, then re-arm the watcher.
/// Returns how many handles keep the loop alive. Connections whose requests
/// reached the callbacks in this iteration send nothing yet: the embedder calls
/// `us_quic_loop_process` once its handlers have answered (the runtime queues it
/// right after this returns), so ACKs and answers share packets.
///
/// # Safety
/// `e` is NULL or an embed from `us_quic_embed_create` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_run(e: *mut Embed) -> c_int {
    let Some(e) = e.as_ref() else { return -1 };
    // Connections with new requests send at the embedder's flush after this
    // returns (see Context::defer_answers), together with the answers.
    usockets_driver::set_defer_answers(e.loop_, true);
    us::us_loop_run_once(e.loop_, 0);
    usockets_driver::set_defer_answers(e.loop_, false);
    libc::write(e.ack_write, b"!".as_ptr().cast(), 1);
    us::us_loop_alive_count(e.loop_)
}

/// Stops the watcher and frees the loop. Every context on it must be freed first.
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
    libc::write(e.stop_write, b"!".as_ptr().cast(), 1);
    match e.thread.take() {
        // The watcher closed its own ends.
        Some(t) => {
            let _ = t.join();
        }
        None => {
            libc::close(e.ack_read);
            libc::close(e.stop_read);
        }
    }
    libc::close(e.ack_write);
    libc::close(e.stop_write);
    // Run once more so closed handles are released, then free.
    us::us_loop_run_once(e.loop_, 0);
    us::us_loop_free(e.loop_);
}
