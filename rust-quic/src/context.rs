//! `us_quic_socket_context_t`: one per server or client. It owns the quiche
//! configuration and TLS (with SNI), the callbacks, the ext memory, its listen
//! sockets and connections, and its driver. There is no global state: any number
//! of contexts live side by side on one loop.
//!
//! The context holds state; it runs nothing. What happens to it is reported
//! as events on `events` (events.rs), and the edge (edge/) runs the entry
//! points, calls the application back and frees what closed.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::c_void;
use std::time::{Duration, Instant};

use crate::driver::Driver;
use crate::events::{Callbacks, EventQueue};
use crate::ext::Ext;
use crate::handles::{ConnectionHandle, ListenSocketHandle, StreamHandle};
use crate::http3;
use crate::keylog::KeyLog;
use crate::limits::{ConnectionCounts, Limits};
use crate::outbox::Outbox;
use crate::tls::{self, SharedSni, TlsOptions};

/// The RTT assumed before the first sample, as Chromium's QUIC and lsquic assume it. RFC 9002's
/// 333 ms makes the first probe timeout about a second, so a handshake flight lost on a lossy path
/// stalls a second; at 100 ms it is about a third of that. A slower path pays a spurious probe at
/// most, inside the amplification limit.
const INITIAL_RTT: Duration = Duration::from_millis(100);

/// The UDP payload used on loopback, whose MTU (64 KiB) is known without probing: quiche caps a
/// packet at 16,383 bytes (a two-byte length). Measured on a 32 MB download: 1.7-2.2x the MiB/s at
/// about half the server CPU per byte against 1,452-byte packets.
const LOOPBACK_MAX_UDP_PAYLOAD: usize = 16_383;

/// Sets how `config` sizes packets for a connection to `peer` (quiche reads both settings when
/// the connection is created). Loopback: 16,383-byte packets, no probing (measured: a probe costs
/// ~70 µs of server CPU per handshake on loopback, and there is nothing to discover). Any other
/// peer: packets start at 1,200 bytes and grow as probes are acknowledged (RFC 8899 DPLPMTUD) up
/// to the configured size (1,452 by default: Ethernet's 1,500 less IPv6 and UDP headers), so a
/// path that carries less (a tunnel, PPPoE) is found rather than black-holed.
pub(crate) fn aim_at(config: &mut quiche::Config, settings: &Settings, peer: std::net::SocketAddr) {
    let loopback = peer.ip().is_loopback() || is_mapped_loopback(peer.ip());
    config.discover_pmtu(!loopback);
    config.set_max_send_udp_payload_size(if loopback {
        LOOPBACK_MAX_UDP_PAYLOAD.max(settings.max_send_udp_payload)
    } else {
        settings.max_send_udp_payload
    });
}

fn is_mapped_loopback(ip: std::net::IpAddr) -> bool {
    matches!(ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Server,
    Client,
}

/// What the streams carry: HTTP/3 messages, or raw bytes (Bun.quic).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Protocol {
    Http3,
    Raw,
}

/// The congestion controller of new connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CongestionControl {
    Reno,
    Cubic,
    /// BBRv2 (quiche's gcongestion port of Chromium's): keeps its rate through
    /// random loss and reordering, where loss-based controllers halve theirs.
    Bbr2,
}

impl CongestionControl {
    pub fn from_name(name: &str) -> Option<CongestionControl> {
        match name {
            "reno" => Some(CongestionControl::Reno),
            "cubic" => Some(CongestionControl::Cubic),
            "bbr2" | "bbr" => Some(CongestionControl::Bbr2),
            _ => None,
        }
    }

    fn algorithm(self) -> quiche::CongestionControlAlgorithm {
        match self {
            CongestionControl::Reno => quiche::CongestionControlAlgorithm::Reno,
            CongestionControl::Cubic => quiche::CongestionControlAlgorithm::CUBIC,
            CongestionControl::Bbr2 => quiche::CongestionControlAlgorithm::Bbr2Gcongestion,
        }
    }
}

/// What a server lets run in 0-RTT (TLS early data), and whether clients send it.
/// Early data can be replayed by anyone who captured it (RFC 8446 8), so what it
/// may carry is the application protocol's choice (RFC 8470 for HTTP).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EarlyData {
    /// No 0-RTT: tickets allow none, clients send none.
    Off,
    /// HTTP/3: requests with safe methods (GET, HEAD, OPTIONS) run at once,
    /// marked `early-data: 1`; any other request waits for the handshake, so
    /// a replay (which never completes one) never reaches the application.
    /// Raw QUIC has no methods: there it means Off.
    SafeMethods,
    /// Everything runs at once (HTTP/3 requests marked `early-data: 1`; the
    /// application answers 425 Too Early to what it will not take).
    All,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub idle_timeout_ms: u64,
    pub max_header_size: u64,
    pub conn_ext_size: usize,
    /// Stream ext size for locally opened streams (clients); servers take it per listen socket.
    pub stream_ext_size: usize,
    pub max_send_udp_payload: usize,
    pub alpn: Vec<Vec<u8>>,
    pub protocol: Protocol,
    pub datagrams: bool,
    /// WebTransport sessions accepted per connection; 0 disables WebTransport
    /// (and extended CONNECT).
    pub webtransport_sessions: u64,
    pub max_streams_bidi: u64,
    pub max_streams_uni: u64,
    pub initial_max_data: u64,
    pub initial_max_stream_data: u64,
    /// Servers: deadlines, rates and counts that bound one client's cost.
    pub limits: Limits,
    pub congestion_control: CongestionControl,
    /// Where the TLS secrets of this context's connections are logged (NSS key
    /// log format); by default `$SSLKEYLOGFILE` when the context is made.
    pub keylog_path: Option<std::path::PathBuf>,
    /// Where each connection's qlog goes (qlog.rs); by default `$QLOGDIR` when the context is made.
    pub qlog_dir: Option<std::path::PathBuf>,
    /// Servers: the key stateless reset tokens are derived from (RFC 9000 10.3.2);
    /// random per context when None. Processes, or a restarted server, that share
    /// it can reset each other's connections.
    pub reset_key: Option<[u8; 32]>,
    pub early_data: EarlyData,
    /// Servers: when new clients must first answer a Retry.
    pub retry: crate::address_validation::RetryPolicy,
    /// Servers: how the connection IDs it issues are made (random, or QUIC-LB's encoding).
    pub cids: crate::cid::CidScheme,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            idle_timeout_ms: 30_000,
            limits: Limits::default(),
            // Measured (QUIC.md, "Congestion control"): BBRv2 moves a 1 MB download
            // through 10% loss each way about 10x faster than CUBIC, and a 5 MB one
            // through reordering 2.4x faster, at the same clean-path throughput.
            congestion_control: CongestionControl::Bbr2,
            max_header_size: 64 * 1024,
            conn_ext_size: 64,
            stream_ext_size: 0,
            max_send_udp_payload: 1452,
            alpn: vec![b"h3".to_vec()],
            protocol: Protocol::Http3,
            datagrams: false,
            webtransport_sessions: 0,
            max_streams_bidi: 256,
            max_streams_uni: 16,
            initial_max_data: 16 * 1024 * 1024,
            initial_max_stream_data: 2 * 1024 * 1024,
            keylog_path: crate::keylog::path_from_env(),
            qlog_dir: crate::qlog::dir_from_env(),
            reset_key: None,
            early_data: EarlyData::SafeMethods,
            retry: crate::address_validation::RetryPolicy::AboveRate,
            cids: crate::cid::CidScheme::Random,
        }
    }
}

#[derive(Default, Clone, Copy, Debug)]
#[repr(C)]
pub struct Stats {
    pub connections_accepted: u64,
    pub connections_active: u64,
    pub requests: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub packets_dropped: u64,
    pub stream_errors: u64,
    /// Requests answered 408: head or body past its deadline.
    pub requests_timed_out: u64,
    /// Requests answered 431: head over the size or field-count limit.
    pub headers_too_large: u64,
    /// Initial datagrams refused at the connection limits (an attempt may send several).
    pub connections_refused: u64,
    /// Connections closed for load: stalled requests, open or reset floods,
    /// streams past MAX_STREAMS (quiche's STREAM_LIMIT_ERROR).
    pub connections_closed_for_load: u64,
    /// Connections closed for having no request open for the idle timeout.
    pub connections_closed_idle: u64,
    /// Handshakes that resumed a session (a ticket), server or client.
    pub connections_resumed: u64,
    /// Servers: connections whose 0-RTT was accepted; clients: whose 0-RTT the server took.
    pub early_data_accepted: u64,
    /// Servers: requests that reached the application in 0-RTT (marked `early-data: 1`).
    pub requests_in_early_data: u64,
    /// Servers: requests that arrived in 0-RTT and waited for the handshake (not safe to replay).
    pub requests_held_for_handshake: u64,
    /// Servers: Retry packets sent.
    pub retries_sent: u64,
    /// Servers: Initials whose token did not open.
    pub invalid_tokens: u64,
}

pub struct Context {
    pub role: Role,
    pub settings: Settings,
    pub callbacks: Callbacks,
    pub ext: Ext,
    pub driver: Box<dyn Driver>,
    pub(crate) server_config: Option<quiche::Config>,
    pub(crate) server_identity: Option<TlsOptions>,
    client_configs: HashMap<bool, quiche::Config>,
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// Client contexts: the certificate shown to servers that request one.
    pub(crate) client_identity: Option<tls::Identity>,
    /// See `Settings::reset_key`; drawn at creation when not given.
    pub(crate) reset_key: [u8; 32],
    /// Servers: what Retry tokens are sealed with (see address_validation.rs).
    pub(crate) token_key: [u8; 32],
    /// Servers: new connections admitted without a Retry, against `Limits::handshakes_per_second`.
    pub(crate) handshakes: crate::limits::TokenBucket,
    /// Servers: what seals and opens session tickets (every TLS context built shares it).
    pub(crate) ticket_keys: std::sync::Arc<tls::TicketKeys>,
    /// Clients: the latest session ticket of each server, offered once by the next
    /// connection to it (see `SessionCache`).
    pub(crate) sessions: SessionCache,
    /// Stateless resets sent (they answer packets anyone can forge: bounded).
    pub(crate) resets: crate::limits::TokenBucket,
    pub sni: SharedSni,
    /// Open when `settings.keylog_path` is set: every connection's secrets go there.
    pub(crate) keylog: Option<KeyLog>,
    pub listen_sockets: Vec<ListenSocketHandle>,
    pub connections: Vec<ConnectionHandle>,
    /// Connections with work since they were last serviced (`peer_context::mark_dirty`).
    pub(crate) dirty: Vec<ConnectionHandle>,
    /// Every connection's next deadline (see `Timers`).
    pub(crate) timers: Timers,
    /// The dirty list of the pass being run (kept, emptied, for the next pass).
    pub(crate) servicing: Vec<ConnectionHandle>,
    /// What the application has yet to hear of, in order (drained by the edge).
    pub(crate) events: EventQueue,
    /// Events an embedder's engine thread took off `events` for the host's
    /// thread, which alone calls the application (edge/dispatch.rs). Objects they
    /// name stay allocated until both queues are empty.
    pub(crate) held: EventQueue,
    /// The edge is draining `events` (callbacks run; a nested frame leaves them to it).
    pub(crate) dispatching: bool,
    /// On an embedder's engine thread: request heads are read to be answered by
    /// the engine (static routes), and kept for the host's thread otherwise.
    pub(crate) reading_heads_for_host: bool,
    /// Connections finalized since the edge last unwound a frame: their socket
    /// still routes to them until the edge detaches them (`listen_socket::detach`).
    pub(crate) finished: Vec<ConnectionHandle>,
    /// Closed objects waiting to be freed by the edge's sweep.
    pub(crate) sweep: Parked,
    pub(crate) depth: u32,
    pub shutting_down: bool,
    pub free_requested: bool,
    pub stats: Stats,
    /// Servers: connections admitted and not yet ended, for the limits.
    pub(crate) connection_counts: ConnectionCounts,
    /// Spare read buffers (see `take_read_buffer`).
    read_buffers: Vec<Vec<u8>>,
    /// Where a connection's flush writes its packets for the edge to send.
    pub(crate) outbox: Outbox,
    /// The socket whose packets wait in `outbox` (the edge sends them once per pass).
    pub(crate) outbox_socket: Option<ListenSocketHandle>,
    /// Something was written or closed since the last flush.
    pub(crate) flush_pending: bool,
    /// Inside an embedder's iteration (Bun): a connection whose request heads were
    /// just handed to the application waits in `deferred` for the embedder's flush
    /// right after the iteration, so its ACKs leave in the same packets as the
    /// answers (async handlers answer in the microtasks that follow).
    pub(crate) defer_answers: bool,
    pub(crate) deferred: Vec<ConnectionHandle>,
    /// An embedder's answers to request heads (embed/static_route.rs is one).
    pub request_head_hook: Option<Box<dyn RequestHeadHook>>,
    /// Where header blocks are decoded (a valid one's buffers go to its stream).
    pub(crate) decoded_fields: http3::Fields,
    /// Header buffers of freed streams, for the next streams' blocks: a
    /// request costs no allocation for its header fields.
    pub(crate) spare_fields: Vec<http3::Fields>,
}

/// A whole response the engine sends by itself: the application never hears of
/// the request.
pub struct EngineAnswer<'a> {
    /// The response in HTTP/3 framing: a HEADERS frame, then any DATA frames.
    pub frames: &'a [u8],
    /// Where the HEADERS frame ends: a HEAD request is sent only that much.
    pub head_len: usize,
}

/// An embedder's policy, asked at every valid request head before the
/// application hears of the request: the one seam through which Bun-specific
/// answers (static routes) enter the core.
pub trait RequestHeadHook: Any {
    fn answer(&mut self, fields: &http3::Fields) -> Option<EngineAnswer<'_>>;
}

/// Objects closed while an engine frame may still hold them (possibly from
/// inside one of their own callbacks): the edge frees them only when no frame
/// is on the stack and every event naming them was delivered.
#[derive(Default)]
pub struct Parked {
    pub streams: Vec<StreamHandle>,
    pub connections: Vec<ConnectionHandle>,
    pub listen_sockets: Vec<ListenSocketHandle>,
}

/// The connections' deadlines, earliest first: the loop waits for the top
/// instead of asking every connection each iteration. An entry is live while
/// its connection's `timer_at` equals it; a connection whose deadline moved
/// pushes a new entry and leaves the old one to be skipped (`edge::timers`).
#[derive(Default)]
pub struct Timers {
    pub(crate) heap: BinaryHeap<Reverse<TimerEntry>>,
    /// Connections whose deadline may have changed since it was last computed.
    pub(crate) stale: Vec<ConnectionHandle>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerEntry {
    pub at: Instant,
    pub conn: ConnectionHandle,
}

pub const SEND_BATCH_BYTES: usize = 64 * 1024;
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

impl Context {
    fn new(role: Role, settings: Settings, ext_size: usize, driver: Box<dyn Driver>) -> Context {
        // A key log that cannot be opened is said once and not kept (the
        // connections work as without one).
        let keylog = settings.keylog_path.as_deref().and_then(|path| match KeyLog::open(path) {
            Ok(log) => Some(log),
            Err(e) => {
                eprintln!("rust-quic: cannot open the key log {}: {e}", path.display());
                None
            }
        });
        Context {
            keylog,
            reset_key: settings.reset_key.unwrap_or_else(crate::cid::random_reset_key),
            resets: crate::limits::TokenBucket::new(),
            ticket_keys: std::sync::Arc::new(tls::TicketKeys::drawn()),
            token_key: crate::cid::random_reset_key(),
            handshakes: crate::limits::TokenBucket::new(),
            sessions: SessionCache::default(),
            role,
            settings,
            callbacks: Callbacks::default(),
            ext: Ext::new(ext_size),
            driver,
            server_config: None,
            server_identity: None,
            client_configs: HashMap::new(),
            ca_pem: None,
            client_identity: None,
            sni: SharedSni::default(),
            listen_sockets: Vec::new(),
            connections: Vec::new(),
            dirty: Vec::new(),
            timers: Timers::default(),
            servicing: Vec::new(),
            finished: Vec::new(),
            events: EventQueue::default(),
            held: EventQueue::default(),
            dispatching: false,
            reading_heads_for_host: false,
            read_buffers: Vec::new(),
            sweep: Parked::default(),
            depth: 0,
            shutting_down: false,
            free_requested: false,
            stats: Stats::default(),
            connection_counts: ConnectionCounts::default(),
            outbox: Outbox::new(SEND_BATCH_BYTES),
            outbox_socket: None,
            flush_pending: false,
            request_head_hook: None,
            decoded_fields: http3::Fields::default(),
            spare_fields: Vec::new(),
            defer_answers: false,
            deferred: Vec::new(),
        }
    }

    /// A server context presenting `identity` (and SNI identities added later).
    pub fn new_server(
        identity: &TlsOptions,
        settings: Settings,
        ext_size: usize,
        driver: Box<dyn Driver>,
    ) -> Result<Box<Context>, String> {
        let mut ctx = Box::new(Context::new(Role::Server, settings, ext_size, driver));
        ctx.rebuild_server_config(identity.clone())?;
        Ok(ctx)
    }

    /// The server's quiche configuration (and TLS context) for `identity`, with
    /// the current settings: what changes the TLS context itself rebuilds it.
    fn rebuild_server_config(&mut self, identity: TlsOptions) -> Result<(), String> {
        let id = tls::Identity::from_options(&identity)?;
        let mut builder = tls::server_builder(&id, self.sni.clone(), &identity)?;
        tls::install_tickets(&mut builder, self.ticket_keys.clone(), self.accepts_early_data());
        let mut config = quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, builder)
            .map_err(|e| format!("quiche config: {e}"))?;
        self.apply_transport_settings(&mut config)?;
        self.server_config = Some(config);
        self.server_identity = Some(identity);
        Ok(())
    }

    /// 0-RTT is offered (clients) or accepted (servers): see `EarlyData`.
    pub(crate) fn accepts_early_data(&self) -> bool {
        match self.settings.early_data {
            EarlyData::Off => false,
            EarlyData::SafeMethods => self.settings.protocol == Protocol::Http3,
            EarlyData::All => true,
        }
    }

    /// What 0-RTT may carry on new connections (see `EarlyData`).
    pub fn set_early_data(&mut self, mode: EarlyData) -> Result<(), String> {
        self.settings.early_data = mode;
        self.client_configs.clear();
        match self.server_identity.clone() {
            Some(identity) => self.rebuild_server_config(identity),
            None => Ok(()),
        }
    }

    /// Servers: the session-ticket keys, 48 bytes each, the first sealing (see
    /// `tls::TicketKeys::set`); applies to the next handshake.
    pub fn set_ticket_keys(&mut self, keys: &[u8]) -> Result<(), String> {
        if self.role != Role::Server {
            return Err("ticket keys are a server's".into());
        }
        self.ticket_keys.set(keys)
    }

    pub fn new_client(settings: Settings, ext_size: usize, driver: Box<dyn Driver>) -> Box<Context> {
        Box::new(Context::new(Role::Client, settings, ext_size, driver))
    }

    pub fn add_server_name(&mut self, hostname: &str, identity: &TlsOptions) -> Result<(), String> {
        let id = tls::Identity::from_options(identity)?;
        self.sni.write().map_err(|_| "SNI table poisoned".to_string())?.insert(hostname, id);
        Ok(())
    }

    /// The key of this server's stateless reset tokens (see `Settings::reset_key`),
    /// for connections accepted and connection IDs issued from now on.
    pub fn set_reset_key(&mut self, key: [u8; 32]) -> Result<(), String> {
        if self.role != Role::Server {
            return Err("a reset key is a server's".into());
        }
        self.settings.reset_key = Some(key);
        self.reset_key = key;
        Ok(())
    }

    /// Clients: a ticket (from `quiche::Connection::session`, maybe of another
    /// process) for the next connection to `server_name` and `port` that verifies as `verify`.
    pub fn add_session(&mut self, server_name: &str, port: u16, verify: bool, ticket: &[u8]) -> Result<(), String> {
        if self.role != Role::Client || ticket.is_empty() {
            return Err("a session ticket is a client's, and not empty".into());
        }
        self.sessions.store((server_name.to_string(), port, verify), ticket);
        Ok(())
    }

    /// Servers: when new clients must answer a Retry first.
    pub fn set_retry(&mut self, policy: crate::address_validation::RetryPolicy) -> Result<(), String> {
        if self.role != Role::Server {
            return Err("Retry is a server's".into());
        }
        self.settings.retry = policy;
        Ok(())
    }

    /// Servers: how the connection IDs it issues from now on are made (see `cid::CidScheme`).
    pub fn set_cid_scheme(&mut self, scheme: crate::cid::CidScheme) -> Result<(), String> {
        if self.role != Role::Server {
            return Err("connection IDs for a load balancer are a server's".into());
        }
        self.settings.cids = scheme;
        Ok(())
    }

    /// Servers: the key Retry tokens are sealed with (shared by processes behind one address).
    pub fn set_token_key(&mut self, key: [u8; 32]) -> Result<(), String> {
        if self.role != Role::Server {
            return Err("a token key is a server's".into());
        }
        self.token_key = key;
        Ok(())
    }

    /// Raw QUIC (streams carry bytes, no HTTP/3) with these ALPN protocols.
    pub fn set_raw_protocol(&mut self, alpn: Vec<Vec<u8>>) -> Result<(), String> {
        if alpn.is_empty() || alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
            return Err("each ALPN protocol must be 1 to 255 bytes".into());
        }
        let early_data_before = self.accepts_early_data();
        self.settings.protocol = Protocol::Raw;
        self.settings.alpn = alpn;
        if early_data_before != self.accepts_early_data() {
            return self.set_early_data(self.settings.early_data);
        }
        self.reconfigure()
    }

    /// Idle timeout of new connections.
    pub fn set_idle_timeout(&mut self, ms: u64) -> Result<(), String> {
        self.settings.idle_timeout_ms = ms;
        self.reconfigure()
    }

    pub fn set_congestion_control(&mut self, cc: CongestionControl) -> Result<(), String> {
        self.settings.congestion_control = cc;
        self.reconfigure()
    }

    /// Enables QUIC DATAGRAM (RFC 9221) on new connections.
    pub fn set_datagrams(&mut self, enabled: bool) -> Result<(), String> {
        self.settings.datagrams = enabled;
        self.reconfigure()
    }

    /// WebTransport over HTTP/3 on new connections: extended CONNECT, HTTP
    /// datagrams (so QUIC DATAGRAM too) and room for the peer's extra streams.
    pub fn set_webtransport(&mut self, sessions: u64) -> Result<(), String> {
        if self.settings.protocol != Protocol::Http3 {
            return Err("WebTransport needs an HTTP/3 context".into());
        }
        self.settings.webtransport_sessions = sessions;
        if sessions > 0 {
            self.settings.datagrams = true;
            self.settings.max_streams_uni = self.settings.max_streams_uni.max(100);
        }
        self.reconfigure()
    }

    /// Embedders' iterations turn this on (see `defer_answers`); tests too.
    pub fn set_defer_answers(&mut self, on: bool) {
        self.defer_answers = on;
    }

    pub fn local_h3_settings(&self) -> http3::LocalSettings {
        http3::LocalSettings {
            max_field_section_size: self.settings.max_header_size,
            h3_datagram: self.settings.datagrams,
            webtransport_sessions: self.settings.webtransport_sessions,
        }
    }

    /// Stream limits granted to peers on new connections.
    pub fn set_max_streams(&mut self, bidi: u64, uni: u64) -> Result<(), String> {
        self.settings.max_streams_bidi = bidi;
        self.settings.max_streams_uni = uni;
        self.reconfigure()
    }

    /// Applies changed settings to the configurations used for new connections.
    fn reconfigure(&mut self) -> Result<(), String> {
        self.client_configs.clear();
        if let Some(mut config) = self.server_config.take() {
            let r = self.apply_transport_settings(&mut config);
            self.server_config = Some(config);
            r?;
        }
        Ok(())
    }

    /// Trusts `pem` in addition to the system roots for verified client connections.
    pub fn set_client_ca(&mut self, pem: Option<Vec<u8>>) {
        self.ca_pem = pem;
        self.client_configs.clear();
        self.sessions.clear(); // verified against other roots
    }

    /// Client contexts: the certificate presented to servers that ask for one (None: no certificate).
    pub fn set_client_identity(&mut self, identity: Option<&TlsOptions>) -> Result<(), String> {
        self.client_identity = identity.map(tls::Identity::from_options).transpose()?;
        self.client_configs.clear();
        self.sessions.clear(); // made with another client certificate
        Ok(())
    }

    /// Server contexts: whether client certificates are asked for and checked
    /// (against `ca_pem`, or the system roots). Applies to new connections.
    pub fn set_client_verification(
        &mut self,
        verification: tls::ClientVerification,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let mut identity = self.server_identity.clone().ok_or("not a server context")?;
        identity.client_verification = verification;
        identity.ca_pem = ca_pem;
        self.rebuild_server_config(identity)
    }

    fn apply_transport_settings(&self, c: &mut quiche::Config) -> Result<(), String> {
        let s = &self.settings;
        let alpn: Vec<&[u8]> = s.alpn.iter().map(Vec::as_slice).collect();
        c.set_application_protos(&alpn).map_err(|e| format!("alpn: {e}"))?;
        c.set_max_idle_timeout(s.idle_timeout_ms);
        c.set_max_recv_udp_payload_size(65527);
        c.set_max_send_udp_payload_size(s.max_send_udp_payload);
        c.set_initial_max_data(s.initial_max_data);
        c.set_initial_max_stream_data_bidi_local(s.initial_max_stream_data);
        c.set_initial_max_stream_data_bidi_remote(s.initial_max_stream_data);
        c.set_initial_max_stream_data_uni(s.initial_max_stream_data.min(1024 * 1024));
        c.set_initial_max_streams_bidi(s.max_streams_bidi);
        c.set_initial_max_streams_uni(s.max_streams_uni);
        c.set_max_connection_window(64 * 1024 * 1024);
        c.set_max_stream_window(32 * 1024 * 1024);
        c.set_active_connection_id_limit(4);
        c.enable_pacing(false);
        c.set_initial_rtt(INITIAL_RTT);
        c.set_cc_algorithm(s.congestion_control.algorithm());
        c.enable_dgram(s.datagrams, 1024, 1024);
        if self.keylog.is_some() {
            c.log_keys();
        }
        Ok(())
    }

    /// The client configuration for a connection to `peer`, built once per `verify`.
    pub(crate) fn client_config(
        &mut self,
        verify: bool,
        peer: std::net::SocketAddr,
    ) -> Result<&mut quiche::Config, String> {
        if !self.client_configs.contains_key(&verify) {
            let mut builder = tls::client_builder(verify, self.ca_pem.as_deref(), self.client_identity.as_ref())?;
            tls::set_early_data(&mut builder, self.accepts_early_data());
            let mut config = quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, builder)
                .map_err(|e| format!("quiche config: {e}"))?;
            self.apply_transport_settings(&mut config)?;
            config.verify_peer(verify);
            self.client_configs.insert(verify, config);
        }
        let config = self.client_configs.get_mut(&verify).expect("inserted above");
        aim_at(config, &self.settings, peer);
        Ok(config)
    }

    /// A new connection's diagnostics: its secrets to the key log, its events
    /// to a qlog, when this context keeps them.
    pub(crate) fn attach_diagnostics(&self, conn: &mut quiche::Connection) {
        if let Some(log) = &self.keylog {
            conn.set_keylog(log.writer());
        }
        if let Some(dir) = &self.settings.qlog_dir {
            crate::qlog::attach(conn, dir);
        }
    }

    /// Where new connections' qlogs go (None: none).
    pub fn set_qlog_dir(&mut self, dir: Option<std::path::PathBuf>) {
        self.settings.qlog_dir = dir;
    }

    /// True while an engine frame of this context (and so maybe a callback) runs.
    /// Events its engine thread held for the host's thread (edge::deliver_held).
    pub fn holds_for_host(&self) -> bool {
        !self.held.is_empty()
    }

    pub fn in_callback(&self) -> bool {
        self.depth > 0
    }

    /// A buffer for one `stream_recv` or `dgram_recv`: a stream holds it only
    /// while it has bytes read from QUIC and not yet delivered, then gives it back.
    pub(crate) fn take_read_buffer(&mut self) -> Vec<u8> {
        self.read_buffers.pop().unwrap_or_else(|| vec![0; READ_BUFFER_BYTES])
    }

    pub(crate) fn give_read_buffer(&mut self, buf: Vec<u8>) {
        if buf.len() == READ_BUFFER_BYTES && self.read_buffers.len() < 64 {
            self.read_buffers.push(buf);
        }
    }

    pub fn ext_ptr(&self) -> *mut c_void {
        self.ext.ptr()
    }

    pub fn loop_ptr(&self) -> *mut c_void {
        self.driver.loop_ptr()
    }
}

/// A session's server (name, port) and whether its chain was verified: a session
/// made without verification never resumes a connection that verifies (a
/// resumed handshake checks no certificate).
pub(crate) type SessionKey = (String, u16, bool);

/// Clients: session tickets by server (name and port), each offered once: a
/// ticket used twice links the two connections for an observer (RFC 8446 C.4),
/// and the resumed connection brings a fresh one. Bounded; the oldest entry
/// goes first.
#[derive(Default)]
pub(crate) struct SessionCache {
    tickets: HashMap<SessionKey, Vec<u8>>,
    order: std::collections::VecDeque<SessionKey>,
}

/// Servers a client context remembers tickets for.
const SESSION_CACHE_ENTRIES: usize = 256;

impl SessionCache {
    pub(crate) fn take(&mut self, server: &SessionKey) -> Option<Vec<u8>> {
        let ticket = self.tickets.remove(server)?;
        self.order.retain(|k| k != server);
        Some(ticket)
    }

    pub(crate) fn clear(&mut self) {
        self.tickets.clear();
        self.order.clear();
    }

    pub(crate) fn store(&mut self, server: SessionKey, ticket: &[u8]) {
        if let Some(old) = self.tickets.get_mut(&server) {
            old.clear();
            old.extend_from_slice(ticket);
            return;
        }
        if self.tickets.len() >= SESSION_CACHE_ENTRIES {
            if let Some(oldest) = self.order.pop_front() {
                self.tickets.remove(&oldest);
            }
        }
        self.order.push_back(server.clone());
        self.tickets.insert(server, ticket.to_vec());
    }
}
