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
