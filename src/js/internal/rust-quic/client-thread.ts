// fetch's HTTP/3 client on the engine's client thread (quic_embed.h,
// us_quic_client_thread_*), as upstream runs its client on Bun's HTTP thread:
// packets, crypto, loss recovery and timers run there; this (the JS) thread makes
// request-level calls and takes the thread's events in batches, one poll per
// wake-up. Connections and requests are named by ids chosen here.
//
// The thread wakes this one with a one-byte datagram to a loopback UDP socket
// of Bun's: Bun polls it like any socket, and it can be unref()ed, so pooled idle
// connections never keep the process alive. (A second pipe read through
// Bun.file(fd).stream() beside the server loop's stalled that one's reader.)
import { toArrayBuffer, type Pointer } from "bun:ffi";
import type { udp } from "bun";
import { handle, library } from "./binding";
import { parseHeaders } from "./headers";
import {
  CLIENT_EVENT_CONNECTION_CLOSED,
  CLIENT_EVENT_DATA,
  CLIENT_EVENT_GOAWAY,
  CLIENT_EVENT_HANDSHAKE,
  CLIENT_EVENT_HEADERS,
  CLIENT_EVENT_REQUEST_CLOSED,
  CLIENT_EVENT_WRITABLE,
} from "./constants";

/** What a connection hears from the thread. */
export interface ThreadConnectionEvents {
  onHandshake(ok: boolean, errno: number): void;
  onGoaway(): void;
  onClose(): void;
}

/** What a request hears; `onClose` is its last event (code -1: no error code). */
export interface ThreadRequestEvents {
  onHeaders(kind: number, fields: [string, string][]): void;
  onData(bytes: Uint8Array, fin: boolean): void;
  onWritable(): void;
  onClose(code: number): void;
}

/** [u8 kind][u32 id][u32 payload length] */
const EVENT_HEAD = 9;

let thread: Pointer | null = null;
let starting: Promise<void> | null = null;
let wake: udp.Socket<"buffer"> | null = null;
let refs = 0;
const connections = new Map<number, ThreadConnectionEvents>();
const requests = new Map<number, ThreadRequestEvents>();
let nextId = 1;
const lengthOut = new Uint32Array(1);
let flushQueued = false;
let draining = false;

/** Whether the client thread runs (else `startClientThread` first). */
export function clientThreadRunning(): boolean {
  return thread !== null;
}

/** Starts the client thread (once): its wake-up socket is bound first. */
export function startClientThread(): Promise<void> {
  starting ??= (async () => {
    const socket = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: drain } });
    const created = handle(library().us_quic_client_thread_create(socket.port));
    if (!created) {
      socket.close();
      starting = null;
      throw new Error("rust-quic: could not start its client thread");
    }
    if (refs === 0) socket.unref();
    wake = socket;
    thread = created;
  })();
  return starting;
}

function clientThread(): Pointer {
  if (!thread) throw new Error("rust-quic: the client thread is not running (startClientThread first)");
  return thread;
}

/** An id for a new connection or request (never 0; wraps long after any id is still in use). */
function newId(): number {
  const id = nextId;
  nextId = nextId >= 0xffff_fffe ? 1 : nextId + 1;
  return id;
}

/** Takes the thread's events and dispatches them, until there are none. */
function drain() {
  if (draining || !thread) return; // a handler's ref() inside a drain: the loop below goes on
  draining = true;
  try {
    const lib = library();
    for (;;) {
      const at = lib.us_quic_client_thread_poll(thread, lengthOut);
      const len = lengthOut[0];
      if (!at || len === 0) break;
      // A view of the thread's buffer, valid until the next poll: bytes that must
      // outlive this loop are copied out.
      dispatch(Buffer.from(toArrayBuffer(at, 0, len)), len);
    }
  } finally {
    draining = false;
  }
}

function dispatch(buf: Buffer, len: number) {
  let off = 0;
  while (off + EVENT_HEAD <= len) {
    const kind = buf[off];
    const id = buf.readUInt32LE(off + 1);
    const size = buf.readUInt32LE(off + 5);
    const at = off + EVENT_HEAD;
    off = at + size;
    try {
      if (kind <= CLIENT_EVENT_CONNECTION_CLOSED) {
        const c = connections.get(id);
        if (!c) continue;
        if (kind === CLIENT_EVENT_HANDSHAKE) c.onHandshake(buf[at] === 1, buf.readInt32LE(at + 1));
        else if (kind === CLIENT_EVENT_GOAWAY) c.onGoaway();
        else {
          connections.delete(id);
          c.onClose();
        }
        continue;
      }
      const r = requests.get(id);
      if (!r) continue;
      if (kind === CLIENT_EVENT_HEADERS) r.onHeaders(buf[at], parseHeaders(buf, at + 1, at + size));
      else if (kind === CLIENT_EVENT_DATA) r.onData(new Uint8Array(buf.buffer.slice(buf.byteOffset + at + 1, buf.byteOffset + at + size)), buf[at] === 1);
      else if (kind === CLIENT_EVENT_WRITABLE) r.onWritable();
      else if (kind === CLIENT_EVENT_REQUEST_CLOSED) {
        requests.delete(id);
        r.onClose(Number(buf.readBigInt64LE(at)));
      }
    } catch (err) {
      // A handler's error is the program's, not the engine's: report it, go on.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}

/** Sends what the calls of this turn queued: one wake-up of the thread per turn. */
function flushClient() {
  if (flushQueued) return;
  flushQueued = true;
  queueMicrotask(() => {
    flushQueued = false;
    if (thread) library().us_quic_client_thread_flush(thread);
  });
}

/** Keep the process alive and the events read (a request in flight, a connect). */
export function refClient() {
  if (refs++ === 0) {
    wake?.ref();
    // Take what arrived while nothing waited (a pooled connection's close), so a
    // caller looking at its pool next sees it.
    drain();
  }
}

export function unrefClient() {
  if (refs > 0 && --refs === 0) wake?.unref();
}

/**
 * A client configuration (trust besides the system roots, a client
 * certificate): its id, or the error that explains why it cannot be made.
 */
export function addClientConfig(ca: string | undefined, identity: { cert: string; key: string; passphrase?: string } | undefined): number | Error {
  const t = clientThread();
  const bytes = (text: string | undefined) => (text ? Buffer.from(text, "latin1") : null);
  const pem = bytes(ca);
  const cert = bytes(identity?.cert);
  const key = bytes(identity?.key);
  const pass = identity?.passphrase ? Buffer.from(identity.passphrase) : null;
  const id = library().us_quic_client_thread_add_config(t, pem, pem?.byteLength ?? 0, cert, cert?.byteLength ?? 0, key, key?.byteLength ?? 0, pass, pass?.byteLength ?? 0);
  if (id === -2) return new TypeError("tls.ca contains no certificate");
  if (id === -3) return new TypeError("tls.cert / tls.key: not a usable certificate and matching private key");
  if (id < 0) return new Error("rust-quic: could not create a client context");
  return id;
}

/** Connects to an IP literal; the connection's id, or 0 when it could not start. */
/** A connection started on the client thread: its id (0: it could not start), and
 * whether it resumes an earlier session (its safe requests may go before the handshake). */
export interface ClientConnection {
  id: number;
  resuming: boolean;
}

export function connectClient(config: number, ip: Buffer, port: number, serverName: Buffer | null, verify: boolean, events: ThreadConnectionEvents): ClientConnection {
  const id = newId();
  const r = library().us_quic_client_thread_connect(clientThread(), config, id, ip, port, serverName, verify ? 1 : 0);
  if (r < 0) return { id: 0, resuming: false };
  connections.set(id, events);
  flushClient();
  return { id, resuming: r === 1 };
}

/** Starts a request on connection `conn`: its id, or 0 when the connection is gone. */
export function startRequest(conn: number, block: Uint8Array, endStream: boolean, events: ThreadRequestEvents): number {
  const id = newId();
  if (library().us_quic_client_thread_request(clientThread(), conn, id, block, block.byteLength, endStream ? 1 : 0) !== 0) return 0;
  requests.set(id, events);
  flushClient();
  return id;
}

/** A request's body bytes: the count accepted, -1 once it is closed. */
export function writeRequest(id: number, chunk: Uint8Array): number {
  const n = library().us_quic_client_thread_write(clientThread(), id, chunk, chunk.byteLength);
  flushClient();
  return n;
}

export function endRequest(id: number) {
  library().us_quic_client_thread_shutdown(clientThread(), id);
  flushClient();
}

export function resetRequest(id: number, code: bigint) {
  library().us_quic_client_thread_reset(clientThread(), id, code);
  flushClient();
}

export function readRequest(id: number, want: boolean) {
  library().us_quic_client_thread_want_read(clientThread(), id, want ? 1 : 0);
  if (want) flushClient();
}

export function closeConnection(id: number) {
  library().us_quic_client_thread_close(clientThread(), id);
  flushClient();
}
