//! Compiles the loop's C files and generates bindings for libusockets.h.
use std::{env, path::PathBuf};

fn main() {
    let src = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../src");
    let files = ["loop.c", "timer.c", "udp.c"];
    let mut build = cc::Build::new();
    build.include(&src).flag_if_supported("-std=gnu11").warnings(true).extra_warnings(true);
    println!("cargo:rerun-if-env-changed=USOCKETS_ASAN");
    if env::var("USOCKETS_ASAN").is_ok() {
        build.flag("-fsanitize=address").flag("-fno-omit-frame-pointer");
    }
    for f in files {
        build.file(src.join(f));
        println!("cargo:rerun-if-changed={}", src.join(f).display());
    }
    for h in ["libusockets.h", "internal.h"] {
        println!("cargo:rerun-if-changed={}", src.join(h).display());
    }
    build.compile("usockets");

    let bindings = bindgen::Builder::default()
        .header(src.join("libusockets.h").to_str().unwrap())
        .allowlist_function("us_.*")
        .allowlist_type("us_.*")
        .allowlist_var("LIBUS_.*")
        .opaque_type("us_loop_t")
        .opaque_type("us_timer_t")
        .opaque_type("us_udp_socket_t")
        .opaque_type("us_udp_packet_buffer_t")
        .derive_default(true)
        .layout_tests(false)
        .generate()
        .expect("bindgen over libusockets.h");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings");
    println!("cargo:include={}", src.display());
}
