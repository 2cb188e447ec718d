// What the HTTP/3 server (Bun.serve h3) and client (fetch) share about engine
// streams: an incoming body as a ReadableStream with flow control, and waking a
// parked writer.
import type { Pointer } from "bun:ffi";
import { toArrayBuffer } from "bun:ffi";
import { scheduleFlush } from "./loop";
import { quic } from "./binding";

/** The JS side of a stream that receives a body. */
export interface IncomingState {
  body?: ReadableStreamDefaultController<Uint8Array>;
  paused: boolean;
  closed: boolean;
  writable?: () => void;
}

/**
 * The stream's incoming body. A full queue pauses reading in the engine (QUIC
 * flow control then holds the peer); a pull resumes it. `cancel` runs when the
 * reader gives up (stop reading, or reset).
 */
export function incomingBody(s: Pointer, st: IncomingState, cancel: () => void): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      start: c => void (st.body = c),
      pull: () => {
        if (st.paused && !st.closed) {
          st.paused = false;
          quic().us_quic_stream_want_read(s, 1);
          scheduleFlush();
        }
      },
      cancel: () => {
        if (!st.closed) cancel();
        scheduleFlush();
      },
    },
    { highWaterMark: 256 * 1024, size: chunk => chunk?.byteLength ?? 0 },
  );
}

/** Hands on_stream_data's bytes to the body (copied: the engine's buffer lives only during the call). */
export function deliverBody(s: Pointer, st: IncomingState, data: Pointer, len: number, fin: boolean) {
  if (!st.body) return;
  if (len > 0) {
    st.body.enqueue(new Uint8Array(toArrayBuffer(data, 0, len).slice(0)));
    if ((st.body.desiredSize ?? 1) <= 0 && !fin) {
      st.paused = true;
      quic().us_quic_stream_want_read(s, 0);
    }
  }
  if (fin) {
    st.body.close();
    st.body = undefined;
  }
}

/** on_stream_writable: resume the writer parked in writeAll. */
export function wakeWriter(st: IncomingState | undefined) {
  const wake = st?.writable;
  if (st) st.writable = undefined;
  wake?.();
}
