//! Outbound connections: `us_quic_socket_context_connect` and pending connects
//! (host names resolved by the caller). Each connection binds its own UDP socket,
//! so one unreachable or misbehaving server cannot disturb the others.

use std::ffi::{c_void, CString};
use std::net::{IpAddr, SocketAddr};

use crate::cid;
use crate::context::Context;
use crate::events::Event;
use crate::listen_socket::{self, ListenSocket};
use crate::peer_context::{self, PeerContext};

pub struct PendingConnect {
    pub ctx: *mut Context,
    pub host: CString,
    pub port: u16,
    pub sni: Option<String>,
    pub verify: bool,
    pub user: *mut c_void,
    pub address: Option<IpAddr>,
}

pub enum Connect {
    Now(*mut PeerContext),
    Pending(Box<PendingConnect>),
}

/// Where a connect goes: an address now (and the name its certificate must
/// carry), or a host name the caller resolves first.
pub enum Target {
    Address(SocketAddr, String),
    Resolve(Box<PendingConnect>),
}

pub fn target(
    ctx: *mut Context,
    host: &str,
    port: u16,
    sni: Option<&str>,
    verify: bool,
    user: *mut c_void,
) -> Result<Target, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        let name = sni.unwrap_or(host).to_string();
        return Ok(Target::Address(SocketAddr::new(ip, port), name));
    }
    Ok(Target::Resolve(Box::new(PendingConnect {
        ctx,
        host: CString::new(host).map_err(|_| "host contains NUL")?,
        port,
        sni: sni.map(str::to_string),
        verify,
        user,
        address: None,
    })))
}

/// The address of a pending connect whose address was set, and the name to verify.
pub fn resolved_target(pc: &PendingConnect) -> Result<(SocketAddr, String), String> {
    let ip = pc.address.ok_or("no address was resolved")?;
    let host = pc.host.to_str().map_err(|_| "host is not UTF-8")?;
    Ok((SocketAddr::new(ip, pc.port), pc.sni.as_deref().unwrap_or(host).to_string()))
}

/// Starts a client connection to `peer` on `ls`, a socket bound for it alone
/// (it closes with the connection, or now if the connection cannot start).
///
/// # Safety
/// `ctx` is a live context; `ls` is a live listen socket.
pub unsafe fn start(
    ctx: *mut Context,
    ls: *mut ListenSocket,
    peer: SocketAddr,
    server_name: &str,
    verify: bool,
    user: *mut c_void,
) -> Result<*mut PeerContext, String> {
    let name_is_ip = server_name.parse::<IpAddr>().is_ok();
    // SNI never carries an IP literal (RFC 6066).
    let sni = (!name_is_ip).then_some(server_name);
    let cid = cid::random_cid();
    let local = (*ls).local;
    let conn = {
        let config = match (*ctx).client_config(verify, peer) {
            Ok(c) => c,
            Err(e) => {
                listen_socket::close(ls);
                return Err(e);
            }
        };
        match quiche::connect(sni, &quiche::ConnectionId::from_ref(&cid), local, peer, config) {
            Ok(mut c) => {
                (*ctx).attach_diagnostics(&mut c);
                c
            }
            Err(e) => {
                listen_socket::close(ls);
                return Err(format!("connect: {e}"));
            }
        }
    };
    let mut conn = conn;
    // A ticket from an earlier connection to this server resumes its session
    // (and sends 0-RTT when the ticket allows it and the context offers it).
    // One quiche cannot read starts a full handshake instead.
    let server = (server_name.to_string(), peer.port(), verify);
    let resuming = (*ctx).sessions.take(&server).is_some_and(|ticket| conn.set_session(&ticket).is_ok());
    let pc = listen_socket::adopt(ls, conn, peer, local);
    (*pc).resuming = resuming && (*ctx).accepts_early_data();
    (*pc).ticket_server = Some(server);
    (*ls).client_conn = Some(pc);
    (*ls).closing = true; // the socket goes with its connection
    if verify && name_is_ip {
        (*pc).verify_ip = server_name.parse().ok();
    }
    if !user.is_null() && (*ctx).settings.conn_ext_size >= std::mem::size_of::<*mut c_void>() {
        // The caller's pointer is the first word of the connection's ext.
        (*pc).ext.ptr().cast::<*mut c_void>().write(user);
    }
    (*pc).open_fired = true;
    (*ctx).events.push(Event::ConnectionOpened(PeerContext::handle(pc)));
    peer_context::mark_dirty(pc);
    Ok(pc)
}
