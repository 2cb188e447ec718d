// Writing a chunk to a stream under QUIC flow control, shared by the server
// (Bun.serve h3), WebTransport and the client (fetch over HTTP/3).
import type { Pointer } from "bun:ffi";
import { scheduleFlush } from "./loop";
import { quic } from "./binding";

/** What a stream's JS state exposes: closed, and where to park a writer. */
export interface WritableState {
  closed: boolean;
  writable?: () => void;
}

/**
 * Writes all of `chunk` through `write` (bytes accepted, -1 when the stream
 * went away), waiting for the stream's writable event when it takes less;
 * false if the stream went away.
 */
export async function writeAllWith(st: WritableState, chunk: Uint8Array, write: (bytes: Uint8Array) => number): Promise<boolean> {
  let off = 0;
  while (off < chunk.byteLength) {
    if (st.closed) return false;
    const n = write(off === 0 ? chunk : chunk.subarray(off));
    if (n < 0) return false;
    off += n;
    if (off < chunk.byteLength) await new Promise<void>(resolve => (st.writable = resolve));
  }
  return !st.closed;
}

/** writeAllWith for an engine stream of this thread's loop. */
export function writeAll(s: Pointer, st: WritableState, chunk: Uint8Array): Promise<boolean> {
  return writeAllWith(st, chunk, bytes => {
    // quic() each time: a write after an await takes the engine's baton again.
    const n = quic().us_quic_stream_write(s, bytes, bytes.byteLength);
    scheduleFlush();
    return n;
  });
}
