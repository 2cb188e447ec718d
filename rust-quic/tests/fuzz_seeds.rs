//! Writes the datagrams of a real exchange (handshake, a request, its answer)
//! as seeds for the `server_datagrams` fuzz target, when FUZZ_SEED_DIR is set:
//! `FUZZ_SEED_DIR=rust-quic/fuzz/corpus/server_datagrams cargo test -p rust-quic --test fuzz_seeds`.
//! Without it the test only checks that the exchange produces client datagrams.

mod common;

use common::*;

#[test]
fn client_datagrams_of_a_real_exchange() {
    unsafe {
        let p = pair();
        let sent: std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>> = Default::default();
        let log = sent.clone();
        let server: std::net::SocketAddr = "127.0.0.1:4433".parse().unwrap();
        p.net.borrow_mut().filter = Some(Box::new(move |d| {
            if d.to == server {
                log.borrow_mut().push(d.data.clone());
            }
            true
        }));
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::new("POST", "/echo", b"seed".to_vec())], 5);
        assert_eq!(r[0].body, b"seed");
        let datagrams = sent.borrow().clone();
        assert!(datagrams.len() >= 3);
        if let Some(dir) = std::env::var_os("FUZZ_SEED_DIR") {
            // The target's input form: each datagram as a 2-byte length and its bytes.
            let framed = |ds: &[Vec<u8>]| {
                let mut out = Vec::new();
                for d in ds {
                    out.extend_from_slice(&(d.len() as u16).to_be_bytes());
                    out.extend_from_slice(d);
                }
                out
            };
            let dir = std::path::Path::new(&dir);
            std::fs::write(dir.join("first-initial"), framed(&datagrams[..1])).unwrap();
            std::fs::write(dir.join("exchange"), framed(&datagrams)).unwrap();
        }
        p.free();
    }
}
