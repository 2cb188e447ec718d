//! RFC 9114 / RFC 9204 rules a peer can break on purpose: raw bytes written on
//! the client's own QUIC streams (bypassing the engine's HTTP/3 layer) must make
//! the server close the connection with the code the RFC names, or refuse the
//! one stream.

mod common;

use common::*;
use rust_quic::http3;

/// The client's own unidirectional streams (RFC 9000 2.1: client uni = 2 mod 4).
const CLIENT_CONTROL: u64 = 2;
const CLIENT_QPACK_ENCODER: u64 = 6;

#[test]
fn reserved_http2_frames_on_the_control_stream_are_frame_unexpected() {
    for ty in [0x02u8, 0x06, 0x08, 0x09] {
        unsafe {
            let (p, pc) = established();
            inject(&p, pc, CLIENT_CONTROL, &[ty, 0x00]);
            assert_eq!(close_code(&p), Some(http3::H3_FRAME_UNEXPECTED), "frame type {ty:#x}");
            p.free();
        }
    }
}

#[test]
fn reserved_http2_frames_on_a_request_stream_are_frame_unexpected() {
    for ty in [0x02u8, 0x06, 0x08, 0x09] {
        unsafe {
            let (p, pc) = established();
            inject(&p, pc, NEXT_REQUEST, &[ty, 0x00]);
            assert_eq!(close_code(&p), Some(http3::H3_FRAME_UNEXPECTED), "frame type {ty:#x}");
            p.free();
        }
    }
}

#[test]
fn cancel_push_for_a_push_never_promised_is_an_id_error() {
    unsafe {
        let (p, pc) = established();
        inject(&p, pc, CLIENT_CONTROL, &[0x03, 0x01, 0x00]);
        assert_eq!(close_code(&p), Some(http3::H3_ID_ERROR));
        p.free();
    }
}

#[test]
fn a_client_goaway_whose_id_grows_is_an_id_error() {
    unsafe {
        let (p, pc) = established();
        // GOAWAY(4) is fine, and so is repeating it; GOAWAY(8) after it is not.
        inject(&p, pc, CLIENT_CONTROL, &[0x07, 0x01, 0x04]);
        inject(&p, pc, CLIENT_CONTROL, &[0x07, 0x01, 0x04]);
        assert!(world(|w| w.close_codes.is_empty()), "a GOAWAY that does not grow is allowed");
        inject(&p, pc, CLIENT_CONTROL, &[0x07, 0x01, 0x08]);
        assert_eq!(close_code(&p), Some(http3::H3_ID_ERROR));
        p.free();
    }
}

#[test]
fn a_qpack_table_capacity_above_the_advertised_maximum_is_an_encoder_stream_error() {
    unsafe {
        let (p, pc) = established();
        // Set Dynamic Table Capacity 0 is the one instruction allowed with a 0 maximum.
        inject(&p, pc, CLIENT_QPACK_ENCODER, &[0x20]);
        assert!(world(|w| w.close_codes.is_empty()));
        // Set Dynamic Table Capacity 4096 (5-bit prefix integer: 31 + 4065).
        inject(&p, pc, CLIENT_QPACK_ENCODER, &[0x3f, 0xe1, 0x1f]);
        assert_eq!(close_code(&p), Some(http3::QPACK_ENCODER_STREAM_ERROR));
        p.free();
    }
}

#[test]
fn an_insertion_into_a_zero_capacity_table_is_an_encoder_stream_error() {
    unsafe {
        let (p, pc) = established();
        // Insert With Literal Name "a" = "b".
        inject(&p, pc, CLIENT_QPACK_ENCODER, &[0x41, b'a', 0x01, b'b']);
        assert_eq!(close_code(&p), Some(http3::QPACK_ENCODER_STREAM_ERROR));
        p.free();
    }
}

#[test]
fn a_headers_frame_declaring_more_than_the_limit_is_refused_at_once() {
    unsafe {
        let (p, pc) = established();
        let errors_before = server_stats(&p).stream_errors;
        // HEADERS declaring 1,000,000 bytes, of which only a few follow.
        // (On stream 8: the client's engine keeps 4 for its next request.)
        inject(&p, pc, NEXT_REQUEST + 4, &[0x01, 0x80, 0x0f, 0x42, 0x40, 0x00, 0x00, 0xd1]);
        assert_eq!(server_stats(&p).stream_errors, errors_before + 1, "refused (431) without waiting for the frame");
        // Only that stream: the connection serves the next request.
        assert!(world(|w| w.close_codes.is_empty()));
        let r = p.fetch_all(pc, vec![Request::get("/size/5")], 5);
        assert_eq!(r[0].status(), 200);
        p.free();
    }
}

#[test]
fn a_second_settings_frame_is_frame_unexpected() {
    unsafe {
        let (p, pc) = established();
        inject(&p, pc, CLIENT_CONTROL, &[0x04, 0x00]);
        assert_eq!(close_code(&p), Some(http3::H3_FRAME_UNEXPECTED));
        p.free();
    }
}

#[test]
fn closing_a_critical_stream_is_closed_critical_stream() {
    for id in [CLIENT_CONTROL, CLIENT_QPACK_ENCODER, CLIENT_QPACK_ENCODER + 4] {
        unsafe {
            let (p, pc) = established();
            (*pc).core.conn.stream_send(id, &[], true).expect("FIN");
            rust_quic::peer_context::mark_dirty(pc);
            assert_eq!(close_code(&p), Some(http3::H3_CLOSED_CRITICAL_STREAM), "stream {id}");
            p.free();
        }
    }
}
