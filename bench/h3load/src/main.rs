//! h3load: an HTTP/3 load generator on quiche.
//!
//! Each thread drives its own connections over non-blocking UDP sockets and
//! keeps M requests in flight on each; a shared counter hands out the request
//! budget. Reports requests/s, latency percentiles, bytes and MiB/s.
//!
//!   h3load URL [-c CONNS] [-m STREAMS] [-n REQUESTS | -d SECONDS] [-t THREADS]
//!              [--insecure] [--method GET|POST] [--body-size BYTES]
//!              [--new-connection-per-request] [--hold SECONDS] [--json]
//!
//! `--hold S`: every connection makes one request, then all stay open (idle,
//! answering timers) for S seconds; "holding N" goes to stderr when they all are.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quiche::h3::NameValue;

#[derive(Clone)]
struct Options {
    url_host: String,
    authority: String,
    path: String,
    addr: SocketAddr,
    connections: usize,
    streams: usize,
    requests: Option<u64>,
    duration: Option<Duration>,
    threads: usize,
    insecure: bool,
    method: String,
    body_size: usize,
    new_connection_per_request: bool,
    hold: Option<Duration>,
    json: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: h3load URL [-c CONNS] [-m STREAMS] [-n REQUESTS | -d SECONDS] [-t THREADS] [--insecure]\n              [--method GET|POST] [--body-size BYTES] [--new-connection-per-request] [--hold SECONDS] [--json]"
    );
    std::process::exit(2);
}

fn parse() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut url = None;
    let (mut c, mut m, mut n, mut d, mut t) = (1usize, 1usize, None, None, 1usize);
    let (mut insecure, mut method, mut body, mut per_req, mut json) = (false, "GET".to_string(), 0usize, false, false);
    let mut hold = None;
    let mut i = 0;
    let num = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| usage())
    };
    while i < args.len() {
        match args[i].as_str() {
            "-c" => c = num(&mut i).parse().unwrap_or_else(|_| usage()),
            "-m" => m = num(&mut i).parse().unwrap_or_else(|_| usage()),
            "-n" => n = Some(num(&mut i).parse().unwrap_or_else(|_| usage())),
            "-d" => d = Some(Duration::from_secs_f64(num(&mut i).parse().unwrap_or_else(|_| usage()))),
            "-t" => t = num(&mut i).parse().unwrap_or_else(|_| usage()),
            "--insecure" | "-k" => insecure = true,
            "--method" => method = num(&mut i),
            "--body-size" => body = num(&mut i).parse().unwrap_or_else(|_| usage()),
            "--new-connection-per-request" => per_req = true,
            "--hold" => hold = Some(Duration::from_secs_f64(num(&mut i).parse().unwrap_or_else(|_| usage()))),
            "--json" => json = true,
            s if s.starts_with("https://") && url.is_none() => url = Some(s.to_string()),
            _ => usage(),
        }
        i += 1;
    }
    let url = url.unwrap_or_else(|| usage());
    let rest = &url["https://".len()..];
    let (authority, path) = match rest.find('/') {
        Some(p) => (&rest[..p], &rest[p..]),
        None => (rest, "/"),
    };
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h).trim_matches(['[', ']']);
    let with_port = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:443")
    };
    let addr = with_port.to_socket_addrs().ok().and_then(|mut a| a.next()).unwrap_or_else(|| usage());
    if n.is_none() && d.is_none() {
        n = Some(1000);
    }
    Options {
        url_host: host.to_string(),
        authority: authority.to_string(),
        path: path.to_string(),
        addr,
        connections: c.max(1),
        streams: m.max(1),
        requests: n,
        duration: d,
        threads: t.max(1),
        insecure,
        method,
        body_size: body,
        new_connection_per_request: per_req,
        hold,
        json,
    }
}

fn config(o: &Options) -> quiche::Config {
    let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).expect("config");
    c.set_application_protos(quiche::h3::APPLICATION_PROTOCOL).unwrap();
    c.verify_peer(!o.insecure);
    c.set_max_idle_timeout(30_000);
    c.set_max_recv_udp_payload_size(65527);
    c.set_max_send_udp_payload_size(1452);
    c.set_initial_max_data(64 << 20);
    c.set_initial_max_stream_data_bidi_local(16 << 20);
    c.set_initial_max_stream_data_bidi_remote(16 << 20);
    c.set_initial_max_stream_data_uni(1 << 20);
    c.set_initial_max_streams_bidi(1000);
    c.set_initial_max_streams_uni(100);
    c.set_max_connection_window(128 << 20);
    c.set_max_stream_window(64 << 20);
    c
}

struct InFlight {
    started: Instant,
    body_left: usize,
}

struct Conn {
    sock: UdpSocket,
    local: SocketAddr,
    q: quiche::Connection,
    h3: Option<quiche::h3::Connection>,
    inflight: HashMap<u64, InFlight>,
    issued: u64,
    dead: bool,
}

#[derive(Default)]
struct Totals {
    requests: u64,
    errors: u64,
    bytes_received: u64,
    bytes_sent: u64,
    connections: u64,
}

struct Shared {
    budget: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn claim(&self, limit: Option<u64>) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        match limit {
            Some(l) => self.budget.fetch_add(1, Ordering::Relaxed) < l,
            None => true,
        }
    }
}

fn connect(o: &Options, cfg: &mut quiche::Config) -> std::io::Result<Conn> {
    let bind: SocketAddr = if o.addr.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let sock = UdpSocket::bind(bind)?;
    // Bulk downloads arrive in GSO bursts: the default 208 KiB receive buffer
    // overflows on loopback and the losses, not the server, set the pace.
    let size: libc::c_int = 8 << 20;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a valid socket and an int option.
        unsafe {
            libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, opt, (&size as *const libc::c_int).cast(), 4);
        }
    }
    sock.connect(o.addr)?;
    sock.set_nonblocking(true)?;
    let local = sock.local_addr()?;
    let mut scid = [0u8; 16];
    for b in scid.iter_mut() {
        *b = rand_byte();
    }
    let sni = o.url_host.parse::<std::net::IpAddr>().is_err().then_some(o.url_host.as_str());
    let q = quiche::connect(sni, &quiche::ConnectionId::from_ref(&scid), local, o.addr, cfg)
        .map_err(std::io::Error::other)?;
    Ok(Conn { sock, local, q, h3: None, inflight: HashMap::new(), issued: 0, dead: false })
}

fn rand_byte() -> u8 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() as u8
}

fn flush(c: &mut Conn, out: &mut [u8], totals: &mut Totals) {
    while let Ok((n, _)) = c.q.send(out) {
        if c.sock.send(&out[..n]).is_err() {
            break;
        }
        totals.bytes_sent += n as u64;
    }
}

fn issue(c: &mut Conn, o: &Options, shared: &Shared, body: &[u8], totals: &mut Totals) {
    let Some(h3) = c.h3.as_mut() else { return };
    let limit = if o.new_connection_per_request || o.hold.is_some() { 1 } else { u64::MAX };
    while c.inflight.len() < o.streams && c.issued < limit && shared.claim(o.requests) {
        let len = body.len().to_string();
        let mut hdrs = vec![
            quiche::h3::Header::new(b":method", o.method.as_bytes()),
            quiche::h3::Header::new(b":scheme", b"https"),
            quiche::h3::Header::new(b":authority", o.authority.as_bytes()),
            quiche::h3::Header::new(b":path", o.path.as_bytes()),
            quiche::h3::Header::new(b"user-agent", b"h3load"),
        ];
        if !body.is_empty() {
            hdrs.push(quiche::h3::Header::new(b"content-length", len.as_bytes()));
        }
        match h3.send_request(&mut c.q, &hdrs, body.is_empty()) {
            Ok(id) => {
                c.issued += 1;
                let mut left = body.len();
                if left > 0 {
                    if let Ok(n) = h3.send_body(&mut c.q, id, body, true) {
                        left -= n;
                    }
                }
                c.inflight.insert(id, InFlight { started: Instant::now(), body_left: left });
            }
            Err(_) => {
                // Stream limit or blocked: give the budget back and retry later.
                if o.requests.is_some() {
                    shared.budget.fetch_sub(1, Ordering::Relaxed);
                }
                break;
            }
        }
    }
    // Continue uploads that flow control cut short.
    let pending: Vec<u64> = c.inflight.iter().filter(|(_, f)| f.body_left > 0).map(|(id, _)| *id).collect();
    for id in pending {
        let f = c.inflight.get_mut(&id).unwrap();
        let off = body.len() - f.body_left;
        if let Ok(n) = h3.send_body(&mut c.q, id, &body[off..], true) {
            f.body_left -= n;
        }
    }
    let _ = totals;
}

fn events(c: &mut Conn, hist: &mut Histogram<u64>, totals: &mut Totals, buf: &mut [u8]) {
    let Some(h3) = c.h3.as_mut() else { return };
    loop {
        match h3.poll(&mut c.q) {
            Ok((id, quiche::h3::Event::Headers { list, .. })) => {
                let ok = list
                    .iter()
                    .any(|h| h.name() == b":status" && h.value().first().is_some_and(|d| *d == b'2' || *d == b'3'));
                if !ok {
                    totals.errors += 1;
                    c.inflight.remove(&id);
                }
            }
            Ok((id, quiche::h3::Event::Data)) => {
                while let Ok(n) = h3.recv_body(&mut c.q, id, buf) {
                    totals.bytes_received += n as u64;
                }
            }
            Ok((id, quiche::h3::Event::Finished)) => {
                if let Some(f) = c.inflight.remove(&id) {
                    let _ = hist.record(f.started.elapsed().as_micros().max(1) as u64);
                    totals.requests += 1;
                }
            }
            Ok((id, quiche::h3::Event::Reset(_))) => {
                if c.inflight.remove(&id).is_some() {
                    totals.errors += 1;
                }
            }
            Ok(_) => {}
            Err(quiche::h3::Error::Done) => break,
            Err(_) => {
                c.dead = true;
                break;
            }
        }
    }
}

fn worker(o: Options, conns: usize, shared: Arc<Shared>) -> (Histogram<u64>, Totals) {
    let mut cfg = config(&o);
    let h3cfg = quiche::h3::Config::new().expect("h3 config");
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut totals = Totals::default();
    let body = vec![b'x'; o.body_size];
    let mut out = vec![0u8; 1500];
    let mut inbuf = vec![0u8; 65536];
    let mut bodybuf = vec![0u8; 256 * 1024];
    let mut pool: Vec<Conn> = Vec::new();
    let mut done = false;
    let mut holding_since: Option<Instant> = None;
    while !done {
        // Keep the pool full (new connections replace finished ones).
        while pool.len() < conns
            && !shared.stop.load(Ordering::Relaxed)
            && (o.requests.is_none() || shared.budget.load(Ordering::Relaxed) < o.requests.unwrap())
        {
            match connect(&o, &mut cfg) {
                Ok(c) => {
                    totals.connections += 1;
                    pool.push(c);
                }
                Err(_) => {
                    totals.errors += 1;
                    break;
                }
            }
        }
        for c in pool.iter_mut() {
            if c.h3.is_none() && c.q.is_established() {
                c.h3 = quiche::h3::Connection::with_transport(&mut c.q, &h3cfg).ok();
            }
            issue(c, &o, &shared, &body, &mut totals);
            flush(c, &mut out, &mut totals);
        }
        // Wait for any socket or the soonest timer.
        let timeout = pool.iter().filter_map(|c| c.q.timeout()).min().unwrap_or(Duration::from_millis(50));
        let mut fds: Vec<libc::pollfd> =
            pool.iter().map(|c| libc::pollfd { fd: c.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
        // SAFETY: fds is a valid array of pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout.as_millis().min(50) as i32) };
        for (c, p) in pool.iter_mut().zip(fds.iter()) {
            if p.revents != 0 {
                // (Received payload bytes are counted at the HTTP layer.)
                while let Ok(n) = c.sock.recv(&mut inbuf) {
                    let _ = c.q.recv(&mut inbuf[..n], quiche::RecvInfo { from: o.addr, to: c.local });
                }
            }
            if c.q.timeout() == Some(Duration::ZERO) {
                c.q.on_timeout();
            }
            c.q.on_timeout_if_due();
            events(c, &mut hist, &mut totals, &mut bodybuf);
            if o.new_connection_per_request && c.issued >= 1 && c.inflight.is_empty() && !c.q.is_closed() {
                let _ = c.q.close(true, 0x100, b"");
            }
            flush(c, &mut out, &mut totals);
        }
        for c in pool.iter() {
            if c.q.is_closed() && !c.inflight.is_empty() {
                totals.errors += c.inflight.len() as u64;
            }
        }
        pool.retain(|c| !c.q.is_closed() && !c.dead);
        let budget_spent = o.requests.is_some_and(|l| shared.budget.load(Ordering::Relaxed) >= l);
        done = (shared.stop.load(Ordering::Relaxed) || budget_spent) && pool.iter().all(|c| c.inflight.is_empty());
        if let (true, Some(hold)) = (done, o.hold) {
            // Idle connections: keep them (and their timers) alive for the hold time.
            let since = *holding_since.get_or_insert_with(|| {
                eprintln!("holding {}", pool.len());
                Instant::now()
            });
            done = since.elapsed() >= hold;
        }
        if done {
            for c in pool.iter_mut() {
                let _ = c.q.close(true, 0x100, b"");
                flush(c, &mut out, &mut totals);
            }
        }
    }
    (hist, totals)
}

trait TimeoutIfDue {
    fn on_timeout_if_due(&mut self);
}

impl TimeoutIfDue for quiche::Connection {
    fn on_timeout_if_due(&mut self) {
        if self.timeout_instant().is_some_and(|t| t <= Instant::now()) {
            self.on_timeout();
        }
    }
}

fn main() {
    let o = parse();
    let shared = Arc::new(Shared { budget: AtomicU64::new(0), stop: AtomicBool::new(false) });
    let start = Instant::now();
    let per_thread = o.connections.div_ceil(o.threads);
    let handles: Vec<_> = (0..o.threads)
        .map(|i| {
            let o = o.clone();
            let shared = shared.clone();
            let conns = per_thread.min(o.connections.saturating_sub(i * per_thread)).max(1);
            std::thread::spawn(move || worker(o, conns, shared))
        })
        .collect();
    if let Some(d) = o.duration {
        std::thread::sleep(d);
        shared.stop.store(true, Ordering::Relaxed);
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut t = Totals::default();
    for h in handles {
        let (hh, tt) = h.join().expect("worker");
        hist.add(&hh).unwrap();
        t.requests += tt.requests;
        t.errors += tt.errors;
        t.bytes_received += tt.bytes_received;
        t.bytes_sent += tt.bytes_sent;
        t.connections += tt.connections;
    }
    let secs = start.elapsed().as_secs_f64();
    let rps = t.requests as f64 / secs;
    let mib_s = t.bytes_received as f64 / secs / (1024.0 * 1024.0);
    let up_mib_s = t.bytes_sent as f64 / secs / (1024.0 * 1024.0);
    let (p50, p90, p99) = (hist.value_at_quantile(0.5), hist.value_at_quantile(0.9), hist.value_at_quantile(0.99));
    if o.json {
        println!(
            "{{\"requests\":{},\"errors\":{},\"connections\":{},\"seconds\":{:.3},\"rps\":{:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"bytes_received\":{},\"bytes_sent\":{},\"mib_per_s\":{:.2},\"upload_mib_per_s\":{:.2}}}",
            t.requests, t.errors, t.connections, secs, rps, p50, p90, p99, t.bytes_received, t.bytes_sent, mib_s, up_mib_s
        );
    } else {
        println!("requests {} ({} errors) over {} connections in {:.2}s", t.requests, t.errors, t.connections, secs);
        println!("{rps:.0} req/s, latency p50 {p50} us, p90 {p90} us, p99 {p99} us");
        println!(
            "received {:.1} MiB ({mib_s:.1} MiB/s), sent {:.1} MiB ({up_mib_s:.1} MiB/s)",
            t.bytes_received as f64 / 1048576.0,
            t.bytes_sent as f64 / 1048576.0
        );
    }
    if t.requests == 0 {
        std::process::exit(1);
    }
}
