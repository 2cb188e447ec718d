// The engine's loop inside Bun's: a watcher thread in the engine sends a
// one-byte datagram to a loopback UDP socket of Bun's whenever the engine's epoll
// fd is ready, and on each one we run one non-blocking engine iteration on this
// (the JS) thread.
//
// Keep-alive: servers and in-flight requests hold a ref; with none the wake-up
// socket is unref()ed, so idle pooled connections and unref()ed servers never
// keep the process alive, and both are still served while something else does.
// (A UDP socket, not a pipe: Bun cannot unref() a pipe read, and a second pipe
// reader beside this one, fetch's, stalled it.)
import type { Pointer } from "bun:ffi";
import type { udp } from "bun";
import { handle as asPointer, quic } from "./binding";

let embed: Pointer | null = null;
let loopPtr: Pointer | null = null;
let wake: udp.Socket<"buffer"> | null = null;
let users = 0;
let refs = 0;
let flushQueued = false;

let inEngine = false;

/**
 * One engine iteration. Connections that received requests send at the flush
 * queued here, after the handlers' microtasks have written their answers.
 */
function runEngine(handle: Pointer) {
  inEngine = true;
  try {
    quic().us_quic_embed_run(handle);
  } finally {
    inEngine = false;
  }
  scheduleFlush();
}

/**
 * Binds the wake-up socket and starts the engine's watcher on it. Until then
 * (the rest of this turn) nothing is lost: datagrams wait in the engine's sockets.
 */
async function startWatching(handle: Pointer) {
  const socket = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: () => void (embed === handle && runEngine(handle)) } });
  if (embed !== handle || quic().us_quic_embed_set_wake_port(handle, socket.port) !== 0) {
    socket.close(); // released meanwhile (or no watcher: nothing would ever wake us)
    if (embed === handle) throw new Error("rust-quic: could not start its loop watcher");
    return;
  }
  if (refs === 0) socket.unref();
  wake = socket;
  runEngine(handle); // what arrived before the watcher ran
}

/** The engine loop, created on first use. Pair with releaseLoop. */
export function acquireLoop(): Pointer {
  if (!embed) {
    const lib = quic();
    const created = asPointer(lib.us_quic_embed_create());
    if (!created) throw new Error("rust-quic: could not create its event loop");
    embed = created;
    loopPtr = asPointer(lib.us_quic_embed_loop(created));
    startWatching(created).catch(err =>
      queueMicrotask(() => {
        throw err;
      }),
    );
  }
  users++;
  return loopPtr!;
}

export function releaseLoop() {
  if (--users > 0 || !embed) return;
  const handle = embed;
  embed = null;
  loopPtr = null;
  wake?.close();
  wake = null;
  // After the current callbacks: stops the watcher, frees the loop.
  queueMicrotask(() => quic().us_quic_embed_free(handle));
}

/** Keep the process alive (a server, a request in flight). */
export function ref() {
  if (refs++ === 0) wake?.ref();
}

export function unref() {
  if (refs > 0 && --refs === 0) wake?.unref();
}

/**
 * After a context was freed: close its callbacks and drop its ref and loop use.
 * Deferred a tick, because the engine may still be running this context's
 * callbacks in the current iteration.
 */
export function retire(callbacks: { close(): void }[]) {
  setTimeout(() => {
    for (const cb of callbacks) cb.close();
    unref();
    releaseLoop();
  }, 0);
}

/** For diagnostics and tests. */
export function loopState() {
  return { users, refs, watching: wake !== null, embed: embed !== null };
}

/**
 * Sends what JS wrote outside the engine's own iteration (after an await).
 * Deferred to a microtask so it never runs inside an engine callback.
 */
export function scheduleFlush() {
  // Inside an engine iteration the engine sends at its end anyway.
  if (flushQueued || !loopPtr || inEngine) return;
  flushQueued = true;
  queueMicrotask(() => {
    flushQueued = false;
    if (loopPtr) quic().us_quic_loop_process(loopPtr);
  });
}
