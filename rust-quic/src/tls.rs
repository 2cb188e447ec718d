//! TLS for QUIC: server identities with SNI, client verification, ALPN-ready
//! BoringSSL context builders handed to quiche.
//!
//! SNI switches the certificate on the handshake's own SSL object instead of
//! swapping its SSL_CTX: quiche installs its QUIC method and ALPN callback on
//! the one context it was given, and a swapped context would not have them.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use boring::ex_data::Index;
use boring::pkey::{PKey, Private};
use boring::ssl::{NameType, SslContext, SslContextBuilder, SslMethod, SslVerifyMode, SslVersion};
use boring::x509::X509;

/// PEM material as it arrives through the C ABI (files already read).
#[derive(Default, Clone)]
pub struct TlsOptions {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub passphrase: Option<Vec<u8>>,
    /// Servers: the CAs a client certificate must chain to (with `request_cert`).
    pub ca_pem: Option<Vec<u8>>,
    pub client_verification: ClientVerification,
}

/// Whether a server asks for client certificates, and what it does with them
/// (Node's and Bun's `requestCert` / `rejectUnauthorized`).
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientVerification {
    /// No CertificateRequest (the default).
    #[default]
    None,
    /// Ask for a certificate but accept any, or none.
    Request,
    /// Ask for one and refuse the handshake unless it chains to the CAs
    /// (`ca_pem`, or the system roots without it).
    Require,
}

impl ClientVerification {
    pub fn from_flags(request_cert: bool, reject_unauthorized: bool) -> ClientVerification {
        match (request_cert, reject_unauthorized) {
            (false, _) => ClientVerification::None,
            (true, false) => ClientVerification::Request,
            (true, true) => ClientVerification::Require,
        }
    }
}

fn add_cas(b: &mut SslContextBuilder, pem: &[u8]) -> Result<(), String> {
    let certs = X509::stack_from_pem(pem).map_err(|e| format!("invalid CA PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in ca".into());
    }
    for cert in certs {
        b.cert_store_mut().add_cert(cert).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A certificate chain and its private key.
pub struct Identity {
    chain: Vec<X509>,
    key: PKey<Private>,
}

impl Identity {
    pub fn from_options(o: &TlsOptions) -> Result<Identity, String> {
        let chain = X509::stack_from_pem(&o.cert_pem).map_err(|e| format!("invalid certificate PEM: {e}"))?;
        if chain.is_empty() {
            return Err("no certificate in cert".into());
        }
        let key = match &o.passphrase {
            Some(p) => PKey::private_key_from_pem_passphrase(&o.key_pem, p),
            None => PKey::private_key_from_pem(&o.key_pem),
        }
        .map_err(|e| format!("invalid private key (or wrong passphrase): {e}"))?;
        let leaf_key = chain[0].public_key().map_err(|e| e.to_string())?;
        if !leaf_key.public_eq(&key) {
            return Err("the private key does not match the certificate".into());
        }
        Ok(Identity { chain, key })
    }
}

/// Extra identities by server name: exact names and `*.suffix` wildcards.
#[derive(Default)]
pub struct SniTable {
    exact: HashMap<String, Arc<Identity>>,
    wildcard: HashMap<String, Arc<Identity>>,
}

impl SniTable {
    pub fn insert(&mut self, hostname: &str, id: Identity) {
        let host = hostname.to_ascii_lowercase();
        match host.strip_prefix("*.") {
            Some(suffix) => self.wildcard.insert(suffix.to_string(), Arc::new(id)),
            None => self.exact.insert(host, Arc::new(id)),
        };
    }

    pub fn lookup(&self, name: &str) -> Option<Arc<Identity>> {
        let name = name.to_ascii_lowercase();
        if let Some(id) = self.exact.get(&name) {
            return Some(id.clone());
        }
        // A wildcard covers exactly one label.
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).cloned()
    }
}

pub type SharedSni = Arc<RwLock<SniTable>>;

/// A server builder for `default` (and the SNI table), verifying client
/// certificates as `options` says.
pub fn server_builder(default: &Identity, sni: SharedSni, options: &TlsOptions) -> Result<SslContextBuilder, String> {
    let mut b = SslContextBuilder::new(SslMethod::tls()).map_err(|e| e.to_string())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_3)).map_err(|e| e.to_string())?;
    match options.client_verification {
        ClientVerification::None => {}
        ClientVerification::Request => b.set_verify_callback(SslVerifyMode::PEER, |_, _| true),
        ClientVerification::Require => {
            match &options.ca_pem {
                Some(pem) => add_cas(&mut b, pem)?,
                None => b.set_default_verify_paths().map_err(|e| e.to_string())?,
            }
            b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
    }
    b.set_certificate(&default.chain[0]).map_err(|e| e.to_string())?;
    for extra in &default.chain[1..] {
        b.add_extra_chain_cert(extra.clone()).map_err(|e| e.to_string())?;
    }
    b.set_private_key(&default.key).map_err(|e| e.to_string())?;
    b.check_private_key().map_err(|e| e.to_string())?;
    b.set_servername_callback(move |ssl, _alert| {
        let Some(name) = ssl.servername(NameType::HOST_NAME).map(str::to_owned) else {
            return Ok(());
        };
        let found = sni.read().ok().and_then(|t| t.lookup(&name));
        if let Some(id) = found {
            // A failure here keeps the default certificate; the client decides.
            let _ = ssl.set_certificate(&id.chain[0]);
            for extra in &id.chain[1..] {
                let _ = ssl.add_chain_cert(extra);
            }
            let _ = ssl.set_private_key(&id.key);
        }
        Ok(())
    });
    Ok(b)
}

/// A client builder. With `verify`, chains are checked against the system roots
/// plus `ca_pem`; quiche checks the host name (set1_host) for DNS names.
/// `identity` is the certificate presented when a server asks for one.
pub fn client_builder(
    verify: bool,
    ca_pem: Option<&[u8]>,
    identity: Option<&Identity>,
) -> Result<SslContextBuilder, String> {
    let mut b = SslContextBuilder::new(SslMethod::tls()).map_err(|e| e.to_string())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_3)).map_err(|e| e.to_string())?;
    if verify {
        b.set_default_verify_paths().map_err(|e| e.to_string())?;
        if let Some(pem) = ca_pem {
            add_cas(&mut b, pem)?;
        }
    }
    if let Some(id) = identity {
        b.set_certificate(&id.chain[0]).map_err(|e| e.to_string())?;
        for extra in &id.chain[1..] {
            b.add_extra_chain_cert(extra.clone()).map_err(|e| e.to_string())?;
        }
        b.set_private_key(&id.key).map_err(|e| e.to_string())?;
    }
    Ok(b)
}

/// Bytes of one session-ticket key as Node's `ticketKeys` and OpenSSL lay it out:
/// a 16-byte name (which key sealed a ticket), a 16-byte HMAC-SHA256 key and a
/// 16-byte AES-128-CBC key.
pub const TICKET_KEY_BYTES: usize = 48;

/// How long a key drawn by the engine seals new tickets before the next one
/// takes over; it still opens tickets for as long again (BoringSSL's own keys
/// rotate on the same schedule), so a resumption ticket lives at most two periods.
const TICKET_KEY_PERIOD: Duration = Duration::from_secs(12 * 3600);

#[derive(Clone, Copy)]
struct TicketKey {
    name: [u8; 16],
    hmac: [u8; 16],
    aes: [u8; 16],
}

struct KeyRing {
    /// The first seals, every one opens.
    keys: Vec<TicketKey>,
    /// Keys drawn by the engine (none given): when the first was drawn.
    drawn_at: Option<Instant>,
}

/// A server's session-ticket keys (RFC 8446 4.6.1 tickets, RFC 5077 format).
/// Shared by every TLS context the server builds, so a rotation applies to
/// new handshakes at once; processes given the same keys resume each other's
/// sessions (and accept their 0-RTT).
pub struct TicketKeys(RwLock<KeyRing>);

impl TicketKeys {
    /// A random key, replaced every `TICKET_KEY_PERIOD` (the previous one still opens).
    pub fn drawn() -> TicketKeys {
        TicketKeys(RwLock::new(KeyRing { keys: vec![random_ticket_key()], drawn_at: Some(Instant::now()) }))
    }

    /// Keys given by the application: `bytes` is one or more 48-byte keys; the
    /// first seals new tickets, the others only open tickets they sealed. The
    /// engine rotates nothing from then on (the application does, by calling
    /// this again with the new key first).
    pub fn set(&self, bytes: &[u8]) -> Result<(), String> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(TICKET_KEY_BYTES) {
            return Err(format!("ticket keys must be a multiple of {TICKET_KEY_BYTES} bytes"));
        }
        let keys = bytes
            .chunks_exact(TICKET_KEY_BYTES)
            .map(|k| TicketKey {
                name: k[..16].try_into().expect("16 bytes"),
                hmac: k[16..32].try_into().expect("16 bytes"),
                aes: k[32..].try_into().expect("16 bytes"),
            })
            .collect();
        let mut ring = self.0.write().map_err(|_| "ticket keys poisoned".to_string())?;
        *ring = KeyRing { keys, drawn_at: None };
        Ok(())
    }

    /// The key that seals a ticket now (rotating drawn keys when due).
    fn sealing(&self, now: Instant) -> Option<TicketKey> {
        {
            let ring = self.0.read().ok()?;
            if ring.drawn_at.is_none_or(|at| now.duration_since(at) < TICKET_KEY_PERIOD) {
                return ring.keys.first().copied();
            }
        }
        let mut ring = self.0.write().ok()?;
        if ring.drawn_at.is_some_and(|at| now.duration_since(at) >= TICKET_KEY_PERIOD) {
            ring.keys.insert(0, random_ticket_key());
            ring.keys.truncate(2);
            ring.drawn_at = Some(now);
        }
        ring.keys.first().copied()
    }

    /// The key named `name`, and whether it is the sealing one.
    fn opening(&self, name: &[u8]) -> Option<(TicketKey, bool)> {
        let ring = self.0.read().ok()?;
        let at = ring.keys.iter().position(|k| k.name[..] == *name)?;
        Some((ring.keys[at], at == 0))
    }
}

fn random_ticket_key() -> TicketKey {
    let mut bytes = [0u8; TICKET_KEY_BYTES];
    boring::rand::rand_bytes(&mut bytes).expect("BoringSSL's RNG does not fail");
    TicketKey {
        name: bytes[..16].try_into().expect("16 bytes"),
        hmac: bytes[16..32].try_into().expect("16 bytes"),
        aes: bytes[32..].try_into().expect("16 bytes"),
    }
}

/// Where a server's TLS context keeps its `TicketKeys` for the callback.
fn ticket_keys_index() -> Index<SslContext, Arc<TicketKeys>> {
    static INDEX: OnceLock<Index<SslContext, Arc<TicketKeys>>> = OnceLock::new();
    *INDEX.get_or_init(|| SslContext::new_ex_index().expect("an ex_data index"))
}

/// BoringSSL's ticket key callback: seal with the first key, open with any.
/// Returns 1 (done), 2 (opened with an older key: issue a fresh ticket), 0 (no
/// such key: a full handshake) or -1 (failure).
///
/// # Safety
/// Called by BoringSSL only: `ssl` is a live handshake of a context set up by
/// `install_tickets`; `key_name` and `iv` hold 16 bytes; the contexts are live.
unsafe extern "C" fn ticket_key_callback(
    ssl: *mut boring_sys::SSL,
    key_name: *mut u8,
    iv: *mut u8,
    cipher: *mut boring_sys::EVP_CIPHER_CTX,
    hmac: *mut boring_sys::HMAC_CTX,
    encrypt: std::ffi::c_int,
) -> std::ffi::c_int {
    let ctx = boring_sys::SSL_get_SSL_CTX(ssl);
    let keys = boring_sys::SSL_CTX_get_ex_data(ctx, ticket_keys_index().as_raw()).cast::<Arc<TicketKeys>>();
    let Some(keys) = keys.as_ref() else { return -1 };
    let (key, renew) = if encrypt == 1 {
        let Some(key) = keys.sealing(Instant::now()) else { return -1 };
        std::ptr::copy_nonoverlapping(key.name.as_ptr(), key_name, 16);
        if boring_sys::RAND_bytes(iv, 16) != 1 {
            return -1;
        }
        (key, false)
    } else {
        let Some((key, current)) = keys.opening(std::slice::from_raw_parts(key_name, 16)) else { return 0 };
        (key, !current)
    };
    let init = if encrypt == 1 { boring_sys::EVP_EncryptInit_ex } else { boring_sys::EVP_DecryptInit_ex };
    if init(cipher, boring_sys::EVP_aes_128_cbc(), std::ptr::null_mut(), key.aes.as_ptr(), iv) != 1 {
        return -1;
    }
    if boring_sys::HMAC_Init_ex(hmac, key.hmac.as_ptr().cast(), 16, boring_sys::EVP_sha256(), std::ptr::null_mut()) != 1
    {
        return -1;
    }
    if renew {
        2
    } else {
        1
    }
}

/// Seals and opens this server context's session tickets with `keys`, and
/// accepts 0-RTT on resumed sessions when `early_data` (quiche ties early data
/// to its transport parameters; the HTTP/3 policy on what may run in it is the
/// engine's).
pub fn install_tickets(b: &mut SslContextBuilder, keys: Arc<TicketKeys>, early_data: bool) {
    b.replace_ex_data(ticket_keys_index(), keys);
    // SAFETY: the builder's SSL_CTX is live; the callback reads the keys just installed.
    unsafe {
        boring_sys::SSL_CTX_set_tlsext_ticket_key_cb(b.as_ptr(), Some(ticket_key_callback));
    }
    set_early_data(b, early_data);
}

/// Whether handshakes of this context send (clients) or accept (servers) 0-RTT.
pub fn set_early_data(b: &mut SslContextBuilder, enabled: bool) {
    // SAFETY: the builder's SSL_CTX is live.
    unsafe { boring_sys::SSL_CTX_set_early_data_enabled(b.as_ptr(), std::ffi::c_int::from(enabled)) };
}

/// For IP-literal targets quiche's host check does not apply (it matches DNS
/// names only), so the engine checks the leaf's IP SANs itself.
pub fn leaf_matches_ip(der: &[u8], ip: std::net::IpAddr) -> bool {
    let Ok(cert) = X509::from_der(der) else { return false };
    let Some(sans) = cert.subject_alt_names() else { return false };
    let want: Vec<u8> = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    sans.iter().any(|n| n.ipaddress() == Some(&want[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        let mut t = SniTable::default();
        let (cert, key) = crate::testing::self_signed(&["a.test"]);
        let opts = TlsOptions { cert_pem: cert, key_pem: key, ..Default::default() };
        t.insert("*.example.com", Identity::from_options(&opts).unwrap());
        t.insert("exact.test", Identity::from_options(&opts).unwrap());
        assert!(t.lookup("www.example.com").is_some());
        assert!(t.lookup("WWW.Example.COM").is_some());
        assert!(t.lookup("a.b.example.com").is_none());
        assert!(t.lookup("example.com").is_none());
        assert!(t.lookup("exact.test").is_some());
    }

    #[test]
    fn mismatched_key_is_refused() {
        let (cert, _) = crate::testing::self_signed(&["a.test"]);
        let (_, other_key) = crate::testing::self_signed(&["b.test"]);
        let opts = TlsOptions { cert_pem: cert, key_pem: other_key, ..Default::default() };
        let err = Identity::from_options(&opts).err().expect("must be refused");
        assert!(err.contains("does not match"), "{err}");
    }
}
