//! TLS for QUIC: server identities with SNI, client verification, ALPN-ready
//! BoringSSL context builders handed to quiche.
//!
//! SNI switches the certificate on the handshake's own SSL object instead of
//! swapping its SSL_CTX: quiche installs its QUIC method and ALPN callback on
//! the one context it was given, and a swapped context would not have them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use boring::pkey::{PKey, Private};
use boring::ssl::{NameType, SslContextBuilder, SslMethod, SslVerifyMode, SslVersion};
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
