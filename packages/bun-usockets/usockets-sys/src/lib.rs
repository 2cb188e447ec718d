//! Raw bindings to the usockets-compatible loop in `packages/bun-usockets/src`
//! (epoll loop, timerfd timers, batched UDP with GSO/GRO).
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
