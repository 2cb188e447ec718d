//! SETTINGS (RFC 9114 7.2.4): what we announce, and the peer's, parsed with the
//! RFC's rules (no duplicates, no HTTP/2 identifiers).

use super::codes::*;
use super::wire::{get_varint, put_varint};

/// What our SETTINGS frame announces beyond the basics.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalSettings {
    pub max_field_section_size: u64,
    pub h3_datagram: bool,
    /// WebTransport sessions we accept per connection (0: no WebTransport).
    /// Implies extended CONNECT (RFC 9220) and HTTP datagrams.
    pub webtransport_sessions: u64,
}

/// Our SETTINGS frame payload.
pub fn settings_payload(local: &LocalSettings) -> Vec<u8> {
    let mut pairs = vec![
        (SETTINGS_MAX_FIELD_SECTION_SIZE, local.max_field_section_size),
        (SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0),
        (SETTINGS_QPACK_BLOCKED_STREAMS, 0),
    ];
    let wt = local.webtransport_sessions;
    if wt > 0 {
        pairs.extend([
            (SETTINGS_ENABLE_CONNECT_PROTOCOL, 1),
            (SETTINGS_ENABLE_WEBTRANSPORT, 1),
            (SETTINGS_WT_MAX_SESSIONS, wt),
            (SETTINGS_WT_INITIAL_MAX_DATA, 1 << 40),
            (SETTINGS_WT_INITIAL_MAX_STREAMS_UNI, 1 << 20),
            (SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI, 1 << 20),
        ]);
    }
    if local.h3_datagram || wt > 0 {
        pairs.push((SETTINGS_H3_DATAGRAM, 1));
    }
    let mut p = Vec::with_capacity(64);
    for (id, value) in pairs {
        put_varint(&mut p, id);
        put_varint(&mut p, value);
    }
    p
}

#[derive(Default, Debug, Clone)]
pub struct PeerSettings {
    pub max_field_section_size: Option<u64>,
    pub extended_connect: bool,
    pub h3_datagram: bool,
    /// Every (id, value) the peer sent, for us_quic_socket_peer_setting.
    pub all: Vec<(u64, u64)>,
}

impl PeerSettings {
    /// The peer speaks WebTransport (draft-02's flag or a later draft's session limit).
    pub fn webtransport(&self) -> bool {
        self.all
            .iter()
            .any(|&(id, v)| (id == SETTINGS_ENABLE_WEBTRANSPORT && v == 1) || (id == SETTINGS_WT_MAX_SESSIONS && v > 0))
    }
}

/// Parses a SETTINGS payload. HTTP/2 setting ids and duplicates are errors (RFC 9114 7.2.4).
pub fn parse_settings(mut p: &[u8]) -> Result<PeerSettings, u64> {
    let mut s = PeerSettings::default();
    while !p.is_empty() {
        let (id, n) = get_varint(p).ok_or(H3_FRAME_ERROR)?;
        p = &p[n..];
        let (value, n) = get_varint(p).ok_or(H3_FRAME_ERROR)?;
        p = &p[n..];
        if s.all.iter().any(|&(seen, _)| seen == id) || matches!(id, 0x0 | 0x2 | 0x3 | 0x4 | 0x5) {
            return Err(H3_SETTINGS_ERROR);
        }
        if s.all.len() >= 64 {
            return Err(H3_EXCESSIVE_LOAD);
        }
        s.all.push((id, value));
        match id {
            SETTINGS_MAX_FIELD_SECTION_SIZE => s.max_field_section_size = Some(value),
            SETTINGS_ENABLE_CONNECT_PROTOCOL => {
                if value > 1 {
                    return Err(H3_SETTINGS_ERROR);
                }
                s.extended_connect = value == 1;
            }
            SETTINGS_H3_DATAGRAM => {
                if value > 1 {
                    return Err(H3_SETTINGS_ERROR);
                }
                s.h3_datagram = value == 1;
            }
            _ => {}
        }
    }
    Ok(s)
}
