// Writing a chunk to an engine stream under QUIC flow control, shared by the
// server (Bun.serve h3) and the client (fetch over HTTP/3).
import type { Pointer } from "bun:ffi";
import { scheduleFlush } from "./loop";
import { quic } from "./binding";

/** What a stream's JS state exposes: closed, and where to park a writer. */
export interface WritableState {
  closed: boolean;
  writable?: () => void;
}

/** Writes all of `chunk`, waiting for on_stream_writable; false if the stream went away. */
export async function writeAll(s: Pointer, st: WritableState, chunk: Uint8Array): Promise<boolean> {
  const lib = quic();
  let off = 0;
  while (off < chunk.byteLength) {
    if (st.closed) return false;
    const n = lib.us_quic_stream_write(s, chunk.subarray(off), chunk.byteLength - off);
    if (n < 0) return false;
    off += n;
    if (off < chunk.byteLength) {
      scheduleFlush();
      await new Promise<void>(resolve => (st.writable = resolve));
    }
  }
  scheduleFlush();
  return !st.closed;
}
