//! Deterministic plumbing for tests: a lossless in-memory UDP network that
//! implements the driver seam, and self-signed certificates. Two contexts on one
//! `Network` talk to each other without sockets or a loop, as in quinn's tests.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use boring::asn1::Asn1Time;
use boring::bn::{BigNum, MsbOption};
use boring::ec::{EcGroup, EcKey};
use boring::hash::MessageDigest;
use boring::nid::Nid;
use boring::pkey::PKey;
use boring::x509::extension::SubjectAlternativeName;
use boring::x509::{X509Builder, X509NameBuilder};

use crate::context::Context;
use crate::driver::{Driver, SendOutcome, SocketHandle, SocketOwner};
use crate::edge;
use crate::listen_socket::ListenSocket;

/// A self-signed P-256 certificate for `names` (DNS names or IP literals): (cert PEM, key PEM).
pub fn self_signed(names: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    let key = PKey::from_ec_key(EcKey::generate(&group).expect("keygen")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, names.first().copied().unwrap_or("localhost")).expect("cn");
    let name = name.build();
    let mut b = X509Builder::new().expect("builder");
    b.set_version(2).expect("version");
    let mut serial = BigNum::new().expect("bn");
    serial.rand(64, MsbOption::MAYBE_ZERO, false).expect("rand");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial")).expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time")).expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(365).expect("time")).expect("na");
    let mut san = SubjectAlternativeName::new();
    for n in names {
        if n.parse::<IpAddr>().is_ok() {
            san.ip(n);
        } else {
            san.dns(n);
        }
    }
    let ext = san.build(&b.x509v3_context(None, None)).expect("san");
    b.append_extension(ext).expect("append");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    let cert = b.build();
    (cert.to_pem().expect("pem"), key.private_key_to_pem_pkcs8().expect("key pem"))
}

pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

#[derive(Default)]
pub struct Network {
    pub queue: VecDeque<Datagram>,
    sockets: HashMap<SocketAddr, *mut ListenSocket>,
    handles: Vec<SocketAddr>,
    /// Connected sockets get ICMP port unreachable, like the kernel's.
    connected: Vec<SocketAddr>,
    /// A NAT: datagrams to the key are delivered to the value (see `rebind`).
    pub aliases: HashMap<SocketAddr, SocketAddr>,
    next_port: u16,
    /// Datagrams sent in total, and how many the filter dropped.
    pub sent: u64,
    pub dropped: u64,
    /// Return false to drop a datagram (loss, corruption tests may also mutate it).
    #[allow(clippy::type_complexity)]
    pub filter: Option<Box<dyn FnMut(&mut Datagram) -> bool>>,
}

pub type SharedNetwork = Rc<RefCell<Network>>;

pub fn network() -> SharedNetwork {
    Rc::new(RefCell::new(Network { next_port: 40000, ..Default::default() }))
}

pub struct MemoryDriver {
    net: SharedNetwork,
    ip: IpAddr,
}

impl MemoryDriver {
    pub fn new(net: &SharedNetwork, ip: &str) -> Box<MemoryDriver> {
        Box::new(MemoryDriver { net: net.clone(), ip: ip.parse().expect("ip") })
    }
}

impl Driver for MemoryDriver {
    fn bind(
        &mut self,
        owner: SocketOwner,
        _host: Option<&str>,
        port: u16,
        _flags: i32,
        connect_to: Option<SocketAddr>,
    ) -> Result<(SocketHandle, SocketAddr), i32> {
        let mut net = self.net.borrow_mut();
        let port = if port == 0 {
            net.next_port += 1;
            net.next_port
        } else {
            port
        };
        let addr = SocketAddr::new(self.ip, port);
        if net.sockets.contains_key(&addr) {
            return Err(libc::EADDRINUSE);
        }
        net.sockets.insert(addr, owner.cast::<ListenSocket>());
        net.handles.push(addr);
        if connect_to.is_some() {
            net.connected.push(addr);
        }
        Ok((net.handles.len() as *mut c_void, addr))
    }

    fn send(&mut self, socket: SocketHandle, to: SocketAddr, data: &[u8], segment_size: usize) -> SendOutcome {
        let mut net = self.net.borrow_mut();
        let from = net.handles[socket as usize - 1];
        for chunk in data.chunks(segment_size.max(1)) {
            net.sent += 1;
            let mut d = Datagram { from, to, data: chunk.to_vec() };
            let keep = match net.filter.as_mut() {
                Some(f) => f(&mut d),
                None => true,
            };
            if keep {
                net.queue.push_back(d);
            } else {
                net.dropped += 1;
            }
        }
        SendOutcome::Sent
    }

    fn close(&mut self, socket: SocketHandle) {
        let mut net = self.net.borrow_mut();
        let addr = net.handles[socket as usize - 1];
        net.sockets.remove(&addr);
    }
}

/// Delivers every queued datagram (and what the answers queue) until the
/// network is quiet or `limit` datagrams went through. Returns how many.
///
/// # Safety
/// Every socket bound on `net` belongs to a live context.
pub unsafe fn pump(net: &SharedNetwork, limit: usize) -> usize {
    let mut n = 0;
    while n < limit {
        let next = net.borrow_mut().queue.pop_front();
        let Some(mut d) = next else { break };
        n += 1;
        if let Some(real) = net.borrow().aliases.get(&d.to).copied() {
            d.to = real;
        }
        let (target, sender, connected) = {
            let n = net.borrow();
            (n.sockets.get(&d.to).copied(), n.sockets.get(&d.from).copied(), n.connected.contains(&d.from))
        };
        match (target, sender) {
            (Some(ls), _) => {
                let ctx = (*ls).ctx;
                edge::recv_datagram(ls, &mut d.data, d.from, d.to);
                edge::after_io(ctx);
            }
            (None, Some(from_ls)) if connected => edge::socket_error(from_ls, libc::ECONNREFUSED),
            _ => {}
        }
    }
    n
}

/// Runs the contexts until `done()` or `timeout`: delivers datagrams, fires
/// timers (sleeping until the next one when the network is quiet).
///
/// # Safety
/// `ctxs` is a live context.
pub unsafe fn run_until(
    net: &SharedNetwork,
    ctxs: &[*mut Context],
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        pump(net, 100_000);
        for &c in ctxs {
            edge::process(c, Instant::now());
        }
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if net.borrow().queue.is_empty() {
            let next = ctxs.iter().filter_map(|&c| crate::edge::next_timeout(c)).min();
            let wait = next.map_or(Duration::from_millis(1), |t| t.saturating_duration_since(Instant::now()));
            std::thread::sleep(
                wait.min(Duration::from_millis(20)).min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }
}
