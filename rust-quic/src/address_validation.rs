//! Address validation with Retry (RFC 9000 8.1.2): before a server spends a
//! handshake (and up to three times the bytes it received, 8.1) on a new
//! client, the client proves it receives packets at its address by echoing a
//! token the server sealed for that address.
//!
//! A token is sealed with AES-256-GCM under the context's 32-byte key (random
//! per context, or set so that processes share it), bound to the client's
//! address as associated data, and says when it expires, the connection ID the
//! client first chose (the original destination ID, which the handshake must
//! confirm) and the ID the Retry gave it. Nothing is remembered per client.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use boring::symm::{decrypt_aead, encrypt_aead, Cipher};

/// How long a Retry token is good for: one round trip is all it needs.
pub const RETRY_TOKEN_LIFETIME: Duration = Duration::from_secs(10);

const NONCE: usize = 12;
const TAG: usize = 16;
/// Sealed: expiry (8), two connection IDs with their lengths.
const MAX_PLAIN: usize = 8 + 2 * (1 + 20);

/// When the server asks new clients for a Retry round trip.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RetryPolicy {
    /// Never (clients still get the 3x amplification limit until validated).
    Never,
    /// Every new connection.
    Always,
    /// While new connections arrive faster than `Limits::handshakes_per_second`
    /// (with a burst of as many again): a flood of spoofed Initials costs a
    /// Retry packet each, not a handshake.
    AboveRate,
}

/// What an Initial's token says.
#[derive(Debug, PartialEq, Eq)]
pub enum Token {
    /// No token.
    Absent,
    /// A token this server sealed for this address, in time: the original and the
    /// Retry's connection IDs.
    Valid { original_dcid: Vec<u8>, retry_scid: Vec<u8> },
    /// Forged, for another address, from another key, or expired.
    Invalid,
}

fn address_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut out = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A Retry token for a client at `peer` whose first Initial named `original_dcid`,
/// told to use `retry_scid` from now on.
pub fn seal(key: &[u8; 32], peer: SocketAddr, original_dcid: &[u8], retry_scid: &[u8], now: SystemTime) -> Vec<u8> {
    let mut plain = Vec::with_capacity(MAX_PLAIN);
    plain.extend_from_slice(&(unix_secs(now) + RETRY_TOKEN_LIFETIME.as_secs()).to_be_bytes());
    for id in [original_dcid, retry_scid] {
        plain.push(id.len() as u8);
        plain.extend_from_slice(id);
    }
    let mut nonce = [0u8; NONCE];
    boring::rand::rand_bytes(&mut nonce).expect("BoringSSL's RNG does not fail");
    let mut tag = [0u8; TAG];
    let sealed = encrypt_aead(Cipher::aes_256_gcm(), key, Some(&nonce), &address_bytes(peer), &plain, &mut tag)
        .expect("AES-256-GCM with a 32-byte key and a 12-byte nonce");
    [&nonce[..], &sealed, &tag].concat()
}

/// Reads an Initial's token from `peer`.
pub fn open(key: &[u8; 32], peer: SocketAddr, token: &[u8], now: SystemTime) -> Token {
    if token.is_empty() {
        return Token::Absent;
    }
    if token.len() < NONCE + TAG + 8 + 2 || token.len() > NONCE + TAG + MAX_PLAIN {
        return Token::Invalid;
    }
    let (nonce, rest) = token.split_at(NONCE);
    let (sealed, tag) = rest.split_at(rest.len() - TAG);
    let Ok(plain) = decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), &address_bytes(peer), sealed, tag) else {
        return Token::Invalid;
    };
    let expiry = u64::from_be_bytes(plain[..8].try_into().expect("8 bytes"));
    if unix_secs(now) > expiry {
        return Token::Invalid;
    }
    let mut ids = plain[8..].iter().as_slice();
    let mut next_id = || -> Option<Vec<u8>> {
        let (&len, rest) = ids.split_first()?;
        let id = rest.get(..len as usize)?.to_vec();
        ids = &rest[len as usize..];
        Some(id)
    };
    match (next_id(), next_id()) {
        (Some(original_dcid), Some(retry_scid)) => Token::Valid { original_dcid, retry_scid },
        _ => Token::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_for_its_address_key_and_lifetime() {
        let key = [7u8; 32];
        let now = SystemTime::now();
        let peer: SocketAddr = "192.0.2.1:4433".parse().unwrap();
        let token = seal(&key, peer, b"original", b"retry-id", now);
        let valid = Token::Valid { original_dcid: b"original".to_vec(), retry_scid: b"retry-id".to_vec() };
        assert_eq!(open(&key, peer, &token, now), valid);
        assert_eq!(open(&key, "192.0.2.1:4434".parse().unwrap(), &token, now), Token::Invalid, "another port");
        assert_eq!(open(&key, "192.0.2.2:4433".parse().unwrap(), &token, now), Token::Invalid, "another address");
        assert_eq!(open(&[8u8; 32], peer, &token, now), Token::Invalid, "another key");
        assert_eq!(open(&key, peer, &token, now + Duration::from_secs(11)), Token::Invalid, "expired");
        let mut forged = token.clone();
        forged[NONCE + 2] ^= 1;
        assert_eq!(open(&key, peer, &forged, now), Token::Invalid);
        assert_eq!(open(&key, peer, b"", now), Token::Absent);
        assert_eq!(open(&key, peer, &[0u8; 5], now), Token::Invalid);
    }
}
