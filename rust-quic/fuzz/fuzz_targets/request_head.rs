//! A header block as a peer sends it: QPACK decoding (static table only), then
//! the request, response and trailer rules. None may panic; our decoder must
//! agree with quiche's on every block that needs no dynamic table; an accepted
//! request must have the pseudo-headers the rules promise.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quiche::h3::NameValue;
use rust_quic::http3;

fuzz_target!(|data: &[u8]| {
    let mut fields = http3::Fields::default();
    let ours = http3::decode_header_block(data, 64 * 1024, &mut fields);
    // quiche ignores a non-zero Required Insert Count; we refuse it (RFC 9204 4.5.1.1).
    if data.first() == Some(&0) {
        let reference = quiche::h3::qpack::Decoder::new().decode(data, 64 * 1024);
        match (&ours, &reference) {
            (Ok(()), Ok(theirs)) => {
                assert_eq!(fields.len(), theirs.len());
                for (a, b) in fields.iter().zip(theirs) {
                    assert_eq!((a.name, a.value), (b.name(), b.value()));
                }
            }
            (Err(http3::DecodeError::TooLarge), Err(quiche::h3::qpack::Error::HeaderListTooLarge)) => {}
            (Err(http3::DecodeError::Malformed), Err(quiche::h3::qpack::Error::HeaderListTooLarge)) => {
                // quiche calls an invalid Huffman string too large, whatever the limit.
                let unlimited = quiche::h3::qpack::Decoder::new().decode(data, u64::MAX);
                assert_eq!(unlimited.err(), Some(quiche::h3::qpack::Error::HeaderListTooLarge));
            }
            (Err(http3::DecodeError::Malformed), Err(_)) => {}
            _ => panic!("decoders disagree: ours {ours:?}, quiche {:?}", reference.map(|v| v.len())),
        }
    }
    if ours.is_err() {
        return;
    }
    if let Ok(head) = http3::validate_request(fields.iter(), true) {
        let has = |n: &[u8]| fields.get(n).is_some();
        assert!(has(b":method"));
        assert!(head.is_connect || (has(b":path") && has(b":scheme")));
    }
    let _ = http3::validate_request(fields.iter(), false);
    let _ = http3::validate_response(fields.iter());
    let _ = http3::validate_trailers(fields.iter());
});
