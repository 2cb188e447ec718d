// The rust-quic cdylib through bun:ffi. Loading is lazy: nothing happens until
// HTTP/3 is first used, so the preload never slows down or blocks startup.
import { dlopen, FFIType, JSCallback, type Pointer } from "bun:ffi";
import { existsSync } from "node:fs";
import { join } from "node:path";

const { ptr, i32, u32, void: none, u64 } = FFIType;

export const symbols = {
  us_quic_embed_create: { returns: ptr },
  us_quic_embed_loop: { args: [ptr], returns: ptr },
  us_quic_embed_set_wake_port: { args: [ptr, u32], returns: i32 },
  us_quic_embed_lock: { args: [ptr], returns: none },
  us_quic_embed_run: { args: [ptr], returns: i32 },
  us_quic_embed_release: { args: [ptr], returns: none },
  us_quic_embed_free: { args: [ptr], returns: none },
  us_quic_embed_server_context: { args: [ptr, ptr, u32, ptr, u32, ptr, u32, u32, ptr, u32], returns: ptr },
  us_quic_embed_add_server_name: { args: [ptr, ptr, ptr, u32, ptr, u32, ptr, u32, ptr, u32], returns: i32 },
  us_quic_embed_read_headers: { args: [ptr, ptr, u32], returns: u32 },
  us_quic_embed_send_headers: { args: [ptr, ptr, u32, i32], returns: i32 },
  us_quic_embed_remote_address: { args: [ptr, ptr, u32, ptr], returns: i32 },
  us_quic_embed_add_static_route: { args: [ptr, ptr, u32, ptr, u32, ptr, u32], returns: i32 },
  us_quic_embed_clear_static_routes: { args: [ptr], returns: none },
  us_quic_embed_respond: { args: [ptr, ptr, u32, ptr, u32], returns: i32 },
  us_quic_loop_process: { args: [ptr], returns: none },
  us_quic_socket_context_listen: { args: [ptr, ptr, i32, i32, u32], returns: ptr },
  us_quic_listen_socket_port: { args: [ptr], returns: i32 },
  us_quic_listen_socket_close: { args: [ptr], returns: none },
  us_quic_listen_socket_local_address: { args: [ptr, ptr, i32], returns: i32 },
  us_quic_socket_context_shutdown: { args: [ptr], returns: none },
  us_quic_socket_context_free: { args: [ptr], returns: none },
  us_quic_socket_context_stats: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_get_limits: { args: [ptr, ptr], returns: i32 },
  us_quic_socket_context_set_limits: { args: [ptr, ptr], returns: i32 },
  us_quic_socket_context_set_early_data: { args: [ptr, i32], returns: i32 },
  us_quic_socket_context_set_ticket_keys: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_socket_context_set_retry: { args: [ptr, i32], returns: i32 },
  us_quic_socket_context_set_quic_lb: { args: [ptr, u32, ptr, u32], returns: i32 },
  us_quic_socket_context_add_session: { args: [ptr, ptr, i32, i32, ptr, u32], returns: i32 },
  us_quic_socket_session: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_socket_context_set_max_header_size: { args: [ptr, u32], returns: none },
  us_quic_socket_context_on_stream_open: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_on_stream_headers: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_on_stream_data: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_on_stream_writable: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_on_stream_close: { args: [ptr, ptr], returns: none },
  us_quic_stream_headers_kind: { args: [ptr], returns: i32 },
  us_quic_stream_write: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_stream_want_read: { args: [ptr, i32], returns: none },
  us_quic_stream_shutdown: { args: [ptr], returns: none },
  us_quic_stream_shutdown_read: { args: [ptr], returns: none },
  us_quic_stream_reset_with_code: { args: [ptr, u64], returns: none },
  us_quic_stream_error_code: { args: [ptr], returns: FFIType.i64 },
  us_quic_stream_send_informational: { args: [ptr, ptr], returns: i32 },
  us_create_quic_client_context: { args: [ptr, u32, u32, u32], returns: ptr },
  us_quic_socket_context_set_ca: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_socket_context_set_client_verification: { args: [ptr, ptr, u32, i32, i32], returns: i32 },
  us_quic_socket_context_set_client_certificate: { args: [ptr, ptr, u32, ptr, u32, ptr, u32], returns: i32 },
  us_quic_socket_context_connect: { args: [ptr, ptr, i32, ptr, i32, ptr, ptr, ptr], returns: i32 },
  us_quic_pending_connect_set_address: { args: [ptr, ptr], returns: i32 },
  us_quic_pending_connect_resolved: { args: [ptr], returns: ptr },
  us_quic_pending_connect_cancel: { args: [ptr], returns: none },
  us_quic_socket_context_on_hsk_done: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_on_goaway: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_on_close: { args: [ptr, ptr], returns: none },
  us_quic_socket_make_stream: { args: [ptr], returns: none },
  us_quic_socket_streams_avail: { args: [ptr], returns: u32 },
  us_quic_socket_close: { args: [ptr], returns: none },
  us_quic_socket_errno: { args: [ptr], returns: i32 },
  us_quic_stream_socket: { args: [ptr], returns: ptr },
  us_quic_stream_id: { args: [ptr], returns: FFIType.u64_fast },
  us_quic_stream_stop_sending: { args: [ptr, u64], returns: none },
  us_quic_socket_context_on_open: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_on_datagram: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_set_raw_alpn: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_socket_context_set_datagrams: { args: [ptr, i32], returns: i32 },
  us_quic_socket_context_set_max_streams: { args: [ptr, u32, u32], returns: i32 },
  us_quic_socket_context_set_idle_timeout: { args: [ptr, u32], returns: i32 },
  us_quic_socket_make_uni_stream: { args: [ptr], returns: none },
  us_quic_socket_send_datagram: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_socket_datagram_max_size: { args: [ptr], returns: i32 },
  us_quic_socket_close_with_error: { args: [ptr, u64, ptr, u32], returns: none },
  us_quic_socket_info: { args: [ptr, ptr], returns: i32 },
  us_quic_socket_alpn: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_socket_server_name: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_socket_remote_address: { args: [ptr, ptr, ptr, ptr, ptr], returns: none },
  us_quic_socket_context_set_webtransport: { args: [ptr, u32], returns: i32 },
  us_quic_socket_context_on_settings: { args: [ptr, ptr], returns: none },
  us_quic_socket_context_on_stream_datagram: { args: [ptr, ptr], returns: none },
  us_quic_socket_peer_setting: { args: [ptr, u64, ptr], returns: i32 },
  us_quic_socket_peer_certificate: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_socket_make_webtransport_stream: { args: [ptr, u64, i32], returns: none },
  us_quic_stream_webtransport_session: { args: [ptr], returns: FFIType.i64_fast },
  us_quic_stream_send_datagram: { args: [ptr, ptr, u32], returns: i32 },
  us_quic_stream_datagram_max_size: { args: [ptr], returns: i32 },
  us_quic_client_thread_create: { args: [u32], returns: ptr },
  us_quic_client_thread_add_config: { args: [ptr, ptr, u32, ptr, u32, ptr, u32, ptr, u32], returns: i32 },
  us_quic_client_thread_connect: { args: [ptr, i32, u32, ptr, i32, ptr, i32], returns: i32 },
  us_quic_client_thread_request: { args: [ptr, u32, u32, ptr, u32, i32], returns: i32 },
  us_quic_client_thread_write: { args: [ptr, u32, ptr, u32], returns: i32 },
  us_quic_client_thread_shutdown: { args: [ptr, u32], returns: none },
  us_quic_client_thread_reset: { args: [ptr, u32, u64], returns: none },
  us_quic_client_thread_want_read: { args: [ptr, u32, i32], returns: none },
  us_quic_client_thread_close: { args: [ptr, u32], returns: none },
  us_quic_client_thread_flush: { args: [ptr], returns: none },
  us_quic_client_thread_poll: { args: [ptr, ptr], returns: ptr },
  us_quic_client_thread_free: { args: [ptr], returns: none },
} as const;

/** Where the engine is: $BUN_RUST_QUIC_LIB, else the repository's release build. */
export function libraryPath(): string {
  const fromEnv = process.env.BUN_RUST_QUIC_LIB;
  if (fromEnv) return fromEnv;
  const root = join(import.meta.dir, "..", "..", "..", "..");
  for (const profile of ["release", "debug"]) {
    const candidate = join(root, "target", profile, "librust_quic.so");
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    "rust-quic library not found: build it with `cargo build --release -p rust-quic` or set BUN_RUST_QUIC_LIB",
  );
}

type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let loaded: Lib | undefined;

let takeBaton: (() => void) | null = null;

/**
 * The library, for calls into the embedded loop's objects: the engine thread
 * runs that loop, so this first takes its baton for the rest of this turn
 * (loop.ts). Call it at each use: a library kept across an await is not guarded.
 */
export function quic(): Lib {
  takeBaton?.();
  return library();
}

/** The library without the baton: the loop's own lifecycle and fetch's client thread (its own lock). */
export function library(): Lib {
  loaded ??= dlopen(libraryPath(), symbols).symbols;
  return loaded;
}

/** loop.ts installs how quic() takes the engine's baton. */
export function guardEngineCalls(take: () => void) {
  takeBaton = take;
}

/** A pointer returned by the engine (bun:ffi returns pointers as numbers), or null. */
export function handle(p: unknown): Pointer | null {
  return (p as Pointer) || null;
}

/** A C callback on the JS thread (never threadsafe: the engine calls it from Bun's thread). */
export function callback(fn: (...args: any[]) => void, args: FFIType[]): JSCallback {
  // An exception must not unwind into the engine's iteration (it would surface
  // at us_quic_embed_run and stop the pump): report it like any uncaught error.
  const guarded = (...a: any[]) => {
    try {
      fn(...a);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  };
  return new JSCallback(guarded, { args, returns: FFIType.void });
}

/** `on(setter, fn, args)`: registers a JS callback on `ctx`, kept alive in `store`. */
export function callbackInstaller(ctx: Pointer, store: JSCallback[]) {
  return (setter: (c: Pointer | null, cb: Pointer | null) => unknown, fn: (...a: any[]) => void, args: FFIType[]) => {
    const cb = callback(fn, args);
    store.push(cb);
    setter(ctx, cb.ptr);
  };
}

export { FFIType };
