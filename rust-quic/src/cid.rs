//! Connection IDs: the ones this engine issues, and the key the listen socket
//! routes datagrams by.

/// Length of the connection IDs this engine issues.
pub const CID_LEN: usize = 16;

/// A fresh random connection ID of `CID_LEN` bytes.
pub(crate) fn random_cid() -> [u8; CID_LEN] {
    let mut cid = [0u8; CID_LEN];
    boring::rand::rand_bytes(&mut cid).expect("BoringSSL RNG");
    cid
}

/// How a server makes the connection IDs it issues (its first, a Retry's,
/// NEW_CONNECTION_ID's). All are `CID_LEN` bytes, so routing a short header
/// needs no length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CidScheme {
    /// Random bytes: nothing outside this process can route by them.
    #[default]
    Random,
    /// QUIC-LB's plaintext algorithm (draft-ietf-quic-load-balancers 5.2), so a
    /// load balancer that routes by connection ID keeps each connection on this server.
    QuicLb(QuicLb),
}

/// A QUIC-LB plaintext configuration: the first octet carries the config
/// rotation codepoint (top 3 bits) and the ID's length minus one (the length
/// self-description, low 5 bits); the server ID follows, then a random nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuicLb {
    config_id: u8,
    server_id: Vec<u8>,
}

/// The shortest nonce the draft allows: fewer would repeat IDs within a server.
pub const QUIC_LB_MIN_NONCE: usize = 4;
/// Where a short-header packet's QUIC-LB server ID starts: after the first
/// byte and the connection ID's first octet. In a reuse-port group the server
/// ID's first byte is the index of its process's socket (edge::listen).
pub const QUIC_LB_SERVER_ID_OFFSET: u32 = 2;
/// Config rotation codepoints 0 to 6; 7 (0b111) marks an ID no load balancer may route.
pub const QUIC_LB_MAX_CONFIG_ID: u8 = 6;

impl QuicLb {
    /// A server ID of 1 to `CID_LEN - 1 - QUIC_LB_MIN_NONCE` bytes under config `config_id` (0-6).
    pub fn new(config_id: u8, server_id: &[u8]) -> Result<QuicLb, String> {
        if config_id > QUIC_LB_MAX_CONFIG_ID {
            return Err(format!("the config rotation codepoint is 0 to {QUIC_LB_MAX_CONFIG_ID} (7 means unroutable)"));
        }
        let most = CID_LEN - 1 - QUIC_LB_MIN_NONCE;
        if server_id.is_empty() || server_id.len() > most {
            return Err(format!("a server ID is 1 to {most} bytes (the rest of a {CID_LEN}-byte ID is the nonce)"));
        }
        Ok(QuicLb { config_id, server_id: server_id.to_vec() })
    }

    /// The server ID and config of one of this configuration's IDs; None for an
    /// ID of another configuration or length (what a load balancer reads).
    pub fn decode<'a>(&self, cid: &'a [u8]) -> Option<&'a [u8]> {
        let first = *cid.first()?;
        let routable = first >> 5 == self.config_id && usize::from(first & 0x1f) + 1 == cid.len();
        routable.then(|| cid.get(1..1 + self.server_id.len())).flatten()
    }
}

impl CidScheme {
    /// A new connection ID under this scheme.
    pub(crate) fn issue(&self) -> [u8; CID_LEN] {
        let mut cid = random_cid();
        if let CidScheme::QuicLb(lb) = self {
            cid[0] = (lb.config_id << 5) | (CID_LEN as u8 - 1);
            cid[1..1 + lb.server_id.len()].copy_from_slice(&lb.server_id);
        }
        cid
    }
}

/// The stateless reset token of one of our connection IDs (RFC 9000 10.3.2): a
/// keyed hash of it, so a restarted server, or another process, holding the same
/// key can reset a connection it has no state for, and no one without the key can
/// forge a reset.
pub(crate) fn reset_token(key: &[u8; 32], cid: &[u8]) -> [u8; 16] {
    let mac = boring::hash::hmac_sha256(key, cid).expect("BoringSSL HMAC");
    let mut token = [0u8; 16];
    token.copy_from_slice(&mac[..16]);
    token
}

/// A random key for reset tokens (a context's own, unless one is given).
pub(crate) fn random_reset_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    boring::rand::rand_bytes(&mut key).expect("BoringSSL RNG");
    key
}

/// A connection ID as a map key: fixed size and `Copy`, so routing a datagram
/// allocates nothing. Holds any ID a peer may choose (up to 20 bytes, RFC 9000 17.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CidKey {
    len: u8,
    bytes: [u8; quiche::MAX_CONN_ID_LEN],
}

impl CidKey {
    /// None for an ID longer than QUIC allows (quiche's header parser refuses those).
    pub(crate) fn new(cid: &[u8]) -> Option<CidKey> {
        let mut bytes = [0u8; quiche::MAX_CONN_ID_LEN];
        bytes.get_mut(..cid.len())?.copy_from_slice(cid);
        Some(CidKey { len: cid.len() as u8, bytes })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The destination connection ID of a datagram's first packet, read without
/// parsing (or allocating) the rest of the header: a long header names its
/// length (RFC 9000 17.2), a short one carries one of ours (`CID_LEN` bytes).
pub(crate) fn destination_cid(datagram: &[u8]) -> Option<&[u8]> {
    let first = *datagram.first()?;
    if first & 0x80 != 0 {
        let len = usize::from(*datagram.get(5)?);
        datagram.get(6..6 + len)
    } else {
        datagram.get(1..1 + CID_LEN)
    }
}

/// What every QUIC version's long header has (RFC 8999 5.1): the version and
/// both connection IDs, each up to 255 bytes in versions other than 1. None
/// for a short header or a truncated one.
pub(crate) fn long_header_invariants(datagram: &[u8]) -> Option<(u32, &[u8], &[u8])> {
    if datagram.first()? & 0x80 == 0 {
        return None;
    }
    let version = u32::from_be_bytes(datagram.get(1..5)?.try_into().ok()?);
    let dcid_len = usize::from(*datagram.get(5)?);
    let dcid = datagram.get(6..6 + dcid_len)?;
    let scid_len = usize::from(*datagram.get(6 + dcid_len)?);
    let scid = datagram.get(7 + dcid_len..7 + dcid_len + scid_len)?;
    Some((version, dcid, scid))
}

impl std::fmt::Debug for CidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_bytes().iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_lb_ids_carry_the_config_length_and_server_id_with_a_random_nonce() {
        let lb = QuicLb::new(2, &[0xab, 0xcd]).unwrap();
        let scheme = CidScheme::QuicLb(lb.clone());
        let (a, b) = (scheme.issue(), scheme.issue());
        // 0b010 (config 2) then 15 (16 bytes, minus one); the server ID; 13 bytes of nonce.
        assert_eq!(a[0], 0b010_01111);
        assert_eq!(&a[1..3], &[0xab, 0xcd]);
        assert_ne!(a[3..], b[3..], "the nonce is random");
        assert_eq!(lb.decode(&a), Some(&[0xab, 0xcd][..]));
        // Another config, another length, or a random ID is not this server's.
        assert_eq!(QuicLb::new(3, &[0xab, 0xcd]).unwrap().decode(&a), None);
        assert_eq!(lb.decode(&a[..8]), None);
        let mut other = a;
        other[0] = 0b111_01111;
        assert_eq!(lb.decode(&other), None);
    }

    #[test]
    fn quic_lb_configurations_outside_the_draft_are_refused() {
        assert!(QuicLb::new(7, &[1]).is_err(), "codepoint 7 is unroutable");
        assert!(QuicLb::new(0, &[]).is_err());
        assert!(QuicLb::new(0, &[1; 11]).is_ok());
        assert!(QuicLb::new(0, &[1; 12]).is_err(), "leaves a nonce under 4 bytes");
    }

    #[test]
    fn long_header_invariants_read_any_version_and_long_ids() {
        let mut d = vec![0x80, 0x1a, 0x2a, 0x3a, 0x4a, 30];
        d.extend([7u8; 30]);
        d.push(0);
        assert_eq!(long_header_invariants(&d), Some((0x1a2a_3a4a, &[7u8; 30][..], &[][..])));
        assert_eq!(long_header_invariants(&d[..20]), None, "truncated inside the DCID");
        assert_eq!(long_header_invariants(&[0x40, 0, 0, 0, 1, 0, 0]), None, "short header");
    }

    #[test]
    fn keys_compare_by_their_bytes_and_length() {
        let a = CidKey::new(&[1, 2, 3]).unwrap();
        assert_eq!(a, CidKey::new(&[1, 2, 3]).unwrap());
        // A shorter ID is a different key even when the padding would match.
        assert_ne!(a, CidKey::new(&[1, 2, 3, 0]).unwrap());
        assert_eq!(a.as_bytes(), &[1, 2, 3]);
        assert_eq!(CidKey::new(&[]).unwrap().as_bytes(), &[] as &[u8]);
        assert!(CidKey::new(&[0; 20]).is_some());
        assert!(CidKey::new(&[0; 21]).is_none());
        assert_eq!(format!("{a:?}"), "010203");
    }

    #[test]
    fn the_destination_id_is_read_from_either_header_form() {
        let ours = [7u8; CID_LEN];
        let mut short = vec![0x40];
        short.extend_from_slice(&ours);
        short.extend_from_slice(b"payload");
        assert_eq!(destination_cid(&short), Some(&ours[..]));
        assert_eq!(destination_cid(&short[..CID_LEN]), None);
        // Long header: first byte, version, DCID length and DCID, SCID length and SCID.
        let long = [0xc0, 0, 0, 0, 1, 3, 9, 8, 7, 2, 1, 1];
        assert_eq!(destination_cid(&long), Some(&[9u8, 8, 7][..]));
        assert_eq!(destination_cid(&long[..7]), None);
        assert_eq!(destination_cid(&[]), None);
    }
}
