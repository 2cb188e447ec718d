//! HTTP/3 (RFC 9114) framing and message rules on top of quiche's transport.
//!
//! The engine does its own HTTP/3 layer instead of `quiche::h3` so that a bad
//! message stays a *stream* error (quiche::h3 closes the whole connection for an
//! oversized header block or a frame it dislikes), so that body bytes go from the
//! stream buffer to the callback without another copy, and so that extension
//! streams (WebTransport) can be routed by the engine. QPACK uses quiche's
//! static-table encoder and decoder; we advertise a zero-capacity dynamic table,
//! so no QPACK state is shared between streams.
//!
//! The tree: `codes` (registry numbers), `wire` (varints, the frame reader),
//! `settings`, `qpack` (header blocks), `message` (request/response/trailer
//! rules). Everything is re-exported here, so callers name `http3::X`.

mod codes;
mod message;
mod qpack;
mod settings;
mod wire;

pub use codes::*;
pub use message::*;
pub use qpack::*;
pub use settings::*;
pub use wire::*;

#[cfg(test)]
mod tests {
    use super::*;
    use quiche::h3::NameValue;

    fn f<'a>(n: &'a str, v: &'a str) -> FieldRef<'a> {
        FieldRef { name: n.as_bytes(), value: v.as_bytes() }
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for v in [0u64, 63, 64, 16383, 16384, 1_073_741_823, 1_073_741_824, (1 << 62) - 1] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            assert_eq!(get_varint(&out), Some((v, out.len())));
            let mut acc = VarintAccumulator::default();
            let mut got = None;
            for b in &out {
                let mut one: &[u8] = std::slice::from_ref(b);
                got = acc.feed(&mut one);
            }
            assert_eq!(got, Some(v));
        }
    }

    #[test]
    fn frame_reader_handles_every_split() {
        let mut wire = Vec::new();
        put_frame_header(&mut wire, FRAME_HEADERS, 3);
        wire.extend_from_slice(b"abc");
        put_frame_header(&mut wire, FRAME_DATA, 0);
        put_frame_header(&mut wire, 0x21, 2); // reserved type
        wire.extend_from_slice(b"zz");
        for split in 0..wire.len() {
            let mut r = FrameReader::default();
            let mut payload = Vec::new();
            let mut ends = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                let mut input = part;
                while let Some(ev) = r.next(&mut input) {
                    match ev {
                        FrameEvent::Chunk { data, .. } => payload.extend_from_slice(data),
                        FrameEvent::End { ty } => ends.push(ty),
                        FrameEvent::Start { .. } => {}
                    }
                }
            }
            assert_eq!(payload, b"abczz");
            assert_eq!(ends, vec![FRAME_HEADERS, FRAME_DATA, 0x21]);
            assert!(r.at_frame_boundary());
        }
    }

    #[test]
    fn request_validation_rejects_malformed_heads() {
        let good = [f(":method", "GET"), f(":scheme", "https"), f(":authority", "a"), f(":path", "/")];
        assert!(validate_request(&good, false).is_ok());
        let bad: Vec<Vec<FieldRef>> = vec![
            vec![f(":scheme", "https"), f(":path", "/")],
            vec![f(":method", "GET"), f(":method", "GET"), f(":scheme", "https"), f(":path", "/")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("x", "a\r\nb")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("x", "a\0b")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("Upper", "a")],
            vec![f(":method", "GET"), f("x", "1"), f(":scheme", "https"), f(":path", "/")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("connection", "close")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f(":bogus", "1")],
            vec![f(":method", "POST"), f(":scheme", "https"), f(":path", "/"), f("content-length", "1, 2")],
            vec![f(":method", "POST"), f(":scheme", "https"), f(":path", "/"), f("content-length", "-1")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("te", "gzip")],
            vec![f(":method", "CONNECT"), f(":scheme", "https"), f(":path", "/")],
        ];
        for (i, fields) in bad.iter().enumerate() {
            assert!(validate_request(fields, false).is_err(), "case {i} should be rejected");
        }
        let cl = [
            f(":method", "POST"),
            f(":scheme", "https"),
            f(":path", "/"),
            f("content-length", "5"),
            f("content-length", "5"),
        ];
        assert_eq!(validate_request(&cl, false).unwrap().content_length, Some(5));
    }

    #[test]
    fn response_validation() {
        assert_eq!(validate_response(&[f(":status", "204")]).unwrap().status, 204);
        assert!(validate_response(&[f(":status", "20")]).is_err());
        assert!(validate_response(&[f("a", "b")]).is_err());
        assert!(validate_response(&[f(":status", "200"), f(":path", "/")]).is_err());
        for field in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"] {
            assert!(validate_response(&[f(":status", "200"), f(field, "trailers")]).is_err(), "{field}");
        }
        assert!(validate_trailers(&[f(":status", "200")]).is_err());
        assert!(validate_trailers(&[f("x-checksum", "abc")]).is_ok());
    }

    #[test]
    fn settings_reject_duplicates_and_http2_ids() {
        let plain =
            parse_settings(&settings_payload(&LocalSettings { max_field_section_size: 100, ..Default::default() }));
        let plain = plain.unwrap();
        assert!(!plain.extended_connect && !plain.h3_datagram && !plain.webtransport());
        let local = LocalSettings { max_field_section_size: 65536, h3_datagram: false, webtransport_sessions: 4 };
        let s = parse_settings(&settings_payload(&local)).unwrap();
        assert_eq!(s.max_field_section_size, Some(65536));
        assert!(s.extended_connect && s.h3_datagram && s.webtransport());
        assert!(s.all.contains(&(SETTINGS_WT_MAX_SESSIONS, 4)));
        let mut dup = Vec::new();
        for _ in 0..2 {
            put_varint(&mut dup, SETTINGS_MAX_FIELD_SECTION_SIZE);
            put_varint(&mut dup, 1);
        }
        assert_eq!(parse_settings(&dup).unwrap_err(), H3_SETTINGS_ERROR);
        let mut h2 = Vec::new();
        put_varint(&mut h2, 0x2);
        put_varint(&mut h2, 0);
        assert_eq!(parse_settings(&h2).unwrap_err(), H3_SETTINGS_ERROR);
    }

    #[test]
    fn headers_round_trip_through_qpack() {
        let long = "v".repeat(5000);
        let fields = [f(":status", "200"), f("content-type", "text/plain"), f("x-long", &long)];
        let mut out = Vec::new();
        encode_headers_frame(&fields, &mut out).unwrap();
        let (ty, n) = get_varint(&out).unwrap();
        assert_eq!(ty, FRAME_HEADERS);
        let (len, m) = get_varint(&out[n..]).unwrap();
        let block = &out[n + m..];
        assert_eq!(block.len() as u64, len);
        let decoded = decode_header_block(block, 1 << 20).ok().unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[2].value().len(), 5000);
        assert!(matches!(decode_header_block(block, 100), Err(DecodeError::TooLarge)));
    }
}
