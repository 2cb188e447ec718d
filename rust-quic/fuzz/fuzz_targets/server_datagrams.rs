//! The datagram receive path: a server context on the in-memory network fed
//! arbitrary datagrams, then run. The input is a sequence of datagrams, each a
//! 2-byte big-endian length and its bytes (the seeds, from
//! rust-quic/tests/fuzz_seeds.rs, are real exchanges in that form). Nothing may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rust_quic::context::{Context, Settings};
use rust_quic::edge;
use rust_quic::testing::{self, Datagram, MemoryDriver};
use rust_quic::tls::TlsOptions;
use std::sync::OnceLock;
use std::time::Duration;

static IDENTITY: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    unsafe {
        let net = testing::network();
        let (cert, key) = IDENTITY.get_or_init(|| testing::self_signed(&["localhost"])).clone();
        let tls = TlsOptions { cert_pem: cert, key_pem: key, ..Default::default() };
        let server = Box::into_raw(
            Context::new_server(&tls, Settings::default(), 0, MemoryDriver::new(&net, "127.0.0.1")).unwrap(),
        );
        rust_quic::edge::listen(server, None, 4433, 0, 0, None).unwrap();
        let to = "127.0.0.1:4433".parse().unwrap();
        let from = "127.0.0.9:5555".parse().unwrap();
        let mut rest = data;
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            net.borrow_mut().queue.push_back(Datagram { from, to, data: rest[2..2 + len].to_vec() });
            rest = &rest[2 + len..];
        }
        testing::run_until(&net, &[server], Duration::from_millis(1), || net.borrow().queue.is_empty());
        edge::request_free(server);
        edge::destroy(server);
    }
});
