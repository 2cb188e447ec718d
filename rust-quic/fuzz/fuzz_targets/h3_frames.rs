//! The HTTP/3 frame reader, fed arbitrary bytes in arbitrary splits (the first
//! byte picks the split size), and the SETTINGS and GOAWAY payload parsers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rust_quic::http3::{self, FrameEvent, FrameReader};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let split = usize::from(split % 17) + 1;
    let mut reader = FrameReader::default();
    let mut payload = Vec::new();
    let mut declared = 0u64;
    for chunk in rest.chunks(split) {
        let mut input = chunk;
        while let Some(ev) = reader.next(&mut input) {
            match ev {
                FrameEvent::Start { len, .. } => {
                    declared = len;
                    payload.clear();
                }
                FrameEvent::Chunk { data, .. } => {
                    payload.extend_from_slice(data);
                    assert!(payload.len() as u64 <= declared, "more payload than the frame declared");
                }
                FrameEvent::End { ty } => {
                    assert_eq!(payload.len() as u64, declared, "a frame ended short");
                    if ty == http3::FRAME_SETTINGS {
                        let _ = http3::parse_settings(&payload);
                    }
                    let _ = http3::get_varint(&payload);
                }
            }
        }
    }
});
