// The engine's loop beside Bun's: an engine thread runs it (packets, crypto,
// timers, static routes) and never calls JS. What would reach a JS callback it
// holds, and it wakes us with a one-byte datagram to a loopback UDP socket of
// Bun's; we then take its baton, deliver what it held on this (the JS) thread,
// and give the baton back, with our answers sent, once the handlers' microtasks
// have run. Every call into the loop's objects holds the baton: binding.ts's
// quic() takes it for the rest of the turn (released by a microtask).
//
// Keep-alive: servers and in-flight requests hold a ref; with none the wake-up
// socket is unref()ed, so idle pooled connections and unref()ed servers never
// keep the process alive, and both are still served while something else does.
// (A UDP socket, not a pipe: Bun cannot unref() a pipe read, and a second pipe
// reader beside this one, fetch's, stalled it.)
import type { Pointer } from "bun:ffi";
import type { udp } from "bun";
import { guardEngineCalls, handle as asPointer, library } from "./binding";

let embed: Pointer | null = null;
let loopPtr: Pointer | null = null;
let wake: udp.Socket<"buffer"> | null = null;
let users = 0;
let refs = 0;

/** This thread holds the engine's baton (from a take until the queued release). */
let held = false;
let releaseQueued = false;
/** The engine delivered since the release was queued: it waits for those handlers' microtasks. */
let deliveredSinceQueued = false;
let inEngine = false;
/** How many times the engine thread woke this thread to deliver callbacks (diagnostics, tests). */
let deliveries = 0;

/** Takes the baton for the rest of this turn (waits for the engine thread's iteration). */
function takeBaton() {
  if (held || !embed) return;
  library().us_quic_embed_lock(embed);
  held = true;
  queueRelease();
}
guardEngineCalls(takeBaton);

function queueRelease() {
  if (releaseQueued) {
    deliveredSinceQueued ||= inEngine;
    return;
  }
  releaseQueued = true;
  queueMicrotask(release);
}

/** Sends what JS wrote and gives the baton back to the engine thread. */
function release() {
  if (deliveredSinceQueued) {
    deliveredSinceQueued = false;
    queueMicrotask(release); // after the microtasks of the handlers it called
    return;
  }
  releaseQueued = false;
  if (!held) return;
  const handle = embed;
  // Callbacks of the timers this sends for still hold the baton: held stays set until it is back.
  try {
    if (handle) library().us_quic_embed_release(handle);
  } finally {
    held = false;
  }
}

/**
 * Delivers what the engine thread held: every callback runs now, on this
 * thread. Connections that received requests send at the release queued here,
 * after the handlers' microtasks have written their answers.
 */
function runEngine(handle: Pointer) {
  const lib = library();
  if (!held) {
    lib.us_quic_embed_lock(handle);
    held = true;
  }
  inEngine = true;
  deliveries++;
  try {
    lib.us_quic_embed_run(handle);
  } finally {
    queueRelease();
    inEngine = false;
  }
}

/**
 * Binds the wake-up socket and starts the engine thread on it. Until then
 * (the rest of this turn) nothing is lost: datagrams wait in the engine's sockets.
 */
async function startWatching(handle: Pointer) {
  const socket = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: () => void (embed === handle && runEngine(handle)) } });
  if (embed !== handle || library().us_quic_embed_set_wake_port(handle, socket.port) !== 0) {
    socket.close(); // released meanwhile (or no engine thread: nothing would ever run the loop)
    if (embed === handle) throw new Error("rust-quic: could not start its engine thread");
    return;
  }
  if (refs === 0) socket.unref();
  wake = socket;
}

/** The engine loop, created on first use. Pair with releaseLoop. */
export function acquireLoop(): Pointer {
  if (!embed) {
    const lib = library();
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
  held = false; // the old loop's baton is let go by its free below
  wake?.close();
  wake = null;
  // After the current callbacks: stops the engine thread (the baton, if held, is let go), frees the loop.
  queueMicrotask(() => library().us_quic_embed_free(handle));
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
  return { users, refs, watching: wake !== null, embed: embed !== null, deliveries };
}

/**
 * Sends what JS wrote outside a delivery (after an await): at the release of
 * the baton its calls took, which is queued already; this takes it if not.
 */
export function scheduleFlush() {
  takeBaton();
}
