// One engine stream of a WebTransport session, as Web Streams (server and
// client alike); the session (wt-session.ts) and the router (wt-router.ts)
// hand it out.
import type { Pointer } from "bun:ffi";
import { scheduleFlush } from "./loop";
import { quic } from "./binding";
import { incomingBody, type IncomingState } from "./streams";
import { writeAll } from "./write";
import { bytesOf } from "./bytes";
import { WT_SESSION_GONE, WebTransportError, appToHttp3, http3ToApp } from "./wt-wire";

/** What a stream knows of its session (a WTSession, seen from below). */
export interface StreamSession {
  readonly isClosed: boolean;
  readonly streams: Set<WTStream>;
}

/** One engine stream of a session: Web Streams over it. */
export class WTStream implements IncomingState {
  body?: ReadableStreamDefaultController<Uint8Array>;
  paused = false;
  closed = false;
  writable?: () => void;
  readable?: ReadableStream<Uint8Array>;
  writableStream?: WritableStream<Uint8Array>;
  session?: StreamSession;
  readonly id: number;
  readonly unidirectional: boolean;

  constructor(
    readonly s: Pointer,
    readonly sessionId: number,
    readonly local: boolean,
  ) {
    this.id = Number(quic().us_quic_stream_id(s));
    this.unidirectional = (this.id & 2) !== 0;
    if (!this.unidirectional || !local) {
      this.readable = incomingBody(s, this, () => quic().us_quic_stream_stop_sending(s, appToHttp3(0)));
    }
    if (!this.unidirectional || local) {
      this.writableStream = new WritableStream<Uint8Array>(
        {
          write: async chunk => {
            if (!(await writeAll(s, this, bytesOf(chunk, "chunk")))) throw this.failure();
          },
          close: () => {
            if (!this.closed) quic().us_quic_stream_shutdown(s);
            scheduleFlush();
          },
          abort: reason => {
            if (!this.closed) quic().us_quic_stream_reset_with_code(s, appToHttp3((reason as any)?.streamErrorCode ?? 0));
            scheduleFlush();
          },
        },
        { highWaterMark: 1 },
      );
    }
  }

  failure(code?: bigint) {
    const app = code === undefined || code < 0n ? null : http3ToApp(code);
    if (this.session?.isClosed) return new WebTransportError("the WebTransport session is closed", { source: "session" });
    return new WebTransportError(code !== undefined && code >= 0n ? `stream reset (code ${app ?? "0x" + code.toString(16)})` : "stream closed", {
      source: "stream",
      streamErrorCode: app,
    });
  }

  /** What applications get: W3C bidirectional stream or receive/send stream. */
  get api(): WebTransportStreamLike {
    return { id: this.id, type: this.unidirectional ? "unidirectional" : "bidirectional", readable: this.readable, writable: this.writableStream };
  }

  /** Session over: RESET and STOP_SENDING with WT_SESSION_GONE. */
  abandon() {
    if (this.closed) return;
    quic().us_quic_stream_reset_with_code(this.s, WT_SESSION_GONE);
  }
}

export interface WebTransportStreamLike {
  id: number;
  type: "bidirectional" | "unidirectional";
  readable?: ReadableStream<Uint8Array>;
  writable?: WritableStream<Uint8Array>;
}
