// What the HTTP/3 server (Bun.serve h3), WebTransport and the client (fetch)
// share about streams: an incoming body as a ReadableStream with flow control,
// and waking a parked writer. The body logic takes its stream through a
// `BodyFlow`, so it serves streams of this thread's loop (by pointer) and of
// the client thread (by id) alike.
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

/** How a body's reader reaches its stream. */
export interface BodyFlow {
  /** Deliver again (after `pause`). */
  resume(): void;
  /** The reader gave up (it stopped reading, or the stream should be reset). */
  cancel(): void;
}

/**
 * The body as a ReadableStream. A full queue pauses reading (see `enqueueBody`;
 * QUIC flow control then holds the peer); a pull resumes it.
 */
export function bodyStream(st: IncomingState, flow: BodyFlow): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      start: c => void (st.body = c),
      pull: () => {
        if (st.paused && !st.closed) {
          st.paused = false;
          flow.resume();
        }
      },
      cancel: () => {
        if (!st.closed) flow.cancel();
      },
    },
    { highWaterMark: 256 * 1024, size: chunk => chunk?.byteLength ?? 0 },
  );
}

/** Hands received bytes (the body's own) to the body; `pause` stops delivery while its queue is full. */
export function enqueueBody(st: IncomingState, bytes: Uint8Array | null, fin: boolean, pause: () => void) {
  if (!st.body) return;
  if (bytes) {
    st.body.enqueue(bytes);
    if ((st.body.desiredSize ?? 1) <= 0 && !fin) {
      st.paused = true;
      pause();
    }
  }
  if (fin) {
    st.body.close();
    st.body = undefined;
  }
}

/** An engine stream's incoming body on this thread's loop. `cancel` runs when the reader gives up. */
export function incomingBody(s: Pointer, st: IncomingState, cancel: () => void): ReadableStream<Uint8Array> {
  return bodyStream(st, {
    resume: () => {
      quic().us_quic_stream_want_read(s, 1);
      scheduleFlush();
    },
    cancel: () => {
      cancel();
      scheduleFlush();
    },
  });
}

/** Hands on_stream_data's bytes to the body (copied: the engine's buffer lives only during the call). */
export function deliverBody(s: Pointer, st: IncomingState, data: Pointer, len: number, fin: boolean) {
  if (!st.body) return;
  const bytes = len > 0 ? new Uint8Array(toArrayBuffer(data, 0, len).slice(0)) : null;
  enqueueBody(st, bytes, fin, () => quic().us_quic_stream_want_read(s, 0));
}

/** on_stream_writable: resume the writer parked in writeAll. */
export function wakeWriter(st: IncomingState | undefined) {
  const wake = st?.writable;
  if (st) st.writable = undefined;
  wake?.();
}
