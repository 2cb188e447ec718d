//! The header-block codec both ways: fields made from the input (split at 0x00
//! into name, value, name, ...) are encoded as a HEADERS frame by the engine's
//! encoder, read back by the frame reader and decoded; what comes back must be
//! the fields that went in, byte for byte.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rust_quic::http3::{self, FieldRef, FrameEvent, FrameReader};

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let fields: Vec<FieldRef<'_>> = parts.chunks_exact(2).map(|p| FieldRef { name: p[0], value: p[1] }).collect();
    let mut frame = Vec::new();
    if http3::encode_headers_frame(&fields, &mut frame).is_err() {
        return;
    }
    let mut reader = FrameReader::default();
    let mut input = frame.as_slice();
    let mut block = Vec::new();
    let mut ended = false;
    while let Some(ev) = reader.next(&mut input) {
        match ev {
            FrameEvent::Start { ty, .. } => assert_eq!(ty, http3::FRAME_HEADERS),
            FrameEvent::Chunk { data, .. } => block.extend_from_slice(data),
            FrameEvent::End { .. } => ended = true,
        }
    }
    assert!(ended && input.is_empty(), "one whole HEADERS frame");
    let mut decoded = http3::Fields::default();
    if http3::decode_header_block(&block, u64::MAX, &mut decoded).is_err() {
        panic!("the decoder refused what the encoder wrote");
    }
    assert_eq!(decoded.len(), fields.len());
    for (d, f) in decoded.iter().zip(&fields) {
        assert_eq!((d.name, d.value), (f.name.to_ascii_lowercase().as_slice(), f.value));
    }
});
