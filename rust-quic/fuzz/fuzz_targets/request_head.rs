//! A header block as a peer sends it: QPACK decoding (static table only), then
//! the request, response and trailer rules. None may panic; an accepted request
//! must have the pseudo-headers the rules promise.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quiche::h3::NameValue;
use rust_quic::http3;

fuzz_target!(|data: &[u8]| {
    let Ok(fields) = http3::decode_header_block(data, 64 * 1024) else { return };
    if let Ok(head) = http3::validate_request(&fields, true) {
        let has = |n: &[u8]| fields.iter().any(|f| f.name() == n);
        assert!(has(b":method"));
        assert!(head.is_connect || (has(b":path") && has(b":scheme")));
    }
    let _ = http3::validate_request(&fields, false);
    let _ = http3::validate_response(&fields);
    let _ = http3::validate_trailers(&fields);
});
