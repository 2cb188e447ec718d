// The engine's loop inside Bun's: a watcher thread in the engine signals a pipe
// when the engine's epoll fd is ready; Bun reads the pipe like any stream, and on
// each byte we run one non-blocking engine iteration on this (the JS) thread.
//
// Keep-alive: servers and in-flight requests hold a ref. With no ref the pending
// read is cancelled, so idle pooled connections never keep the process alive;
// the next ref resumes reading and catches up with whatever happened meanwhile.
import type { Pointer } from "bun:ffi";
import { handle as asPointer, quic } from "./binding";

let embed: Pointer | null = null;
let loopPtr: Pointer | null = null;
let wakeFd = -1;
let users = 0;
let refs = 0;
let reader: { read(): Promise<{ done: boolean }>; cancel(): Promise<void> } | null = null;
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

function startReading() {
  if (reader || !embed) return;
  const handle = embed;
  const current = Bun.file(wakeFd).stream().getReader();
  reader = current;
  updateIdlePoll();
  runEngine(handle); // catch up on what happened while paused
  (async () => {
    for (;;) {
      let done = true;
      try {
        ({ done } = await current.read());
      } catch {}
      if (done || reader !== current || handle !== embed) break;
      runEngine(handle);
    }
  })();
}

function stopReading() {
  const current = reader;
  reader = null;
  current?.cancel().catch(() => {});
  updateIdlePoll();
}

/**
 * Servers that were unref()ed must still serve while something else keeps the
 * process alive, without keeping it alive themselves. A pipe read cannot be
 * unref()ed, so while no ref is held and such a server exists, the engine is
 * polled from an unref()ed timer instead.
 */
let idleServers = 0;
let idlePoll: ReturnType<typeof setInterval> | null = null;
const IDLE_POLL_MS = 5;

function updateIdlePoll() {
  const want = idleServers > 0 && reader === null && embed !== null;
  if (want && !idlePoll) {
    idlePoll = setInterval(() => embed && runEngine(embed), IDLE_POLL_MS);
    idlePoll.unref();
  } else if (!want && idlePoll) {
    clearInterval(idlePoll);
    idlePoll = null;
  }
}

/** An unref()ed server begins (+1) or stops (-1) needing service without a ref. */
export function idleService(delta: 1 | -1) {
  idleServers += delta;
  updateIdlePoll();
}

/** The engine loop, created on first use. Pair with releaseLoop. */
export function acquireLoop(): Pointer {
  if (!embed) {
    const lib = quic();
    const created = asPointer(lib.us_quic_embed_create());
    if (!created) throw new Error("rust-quic: could not create its event loop");
    embed = created;
    loopPtr = asPointer(lib.us_quic_embed_loop(created));
    wakeFd = lib.us_quic_embed_wake_fd(created);
    if (refs > 0) startReading();
  }
  users++;
  return loopPtr!;
}

export function releaseLoop() {
  if (--users > 0 || !embed) return;
  const handle = embed;
  embed = null;
  loopPtr = null;
  stopReading();
  updateIdlePoll();
  // After the current callbacks: stops the watcher, closes the pipe.
  queueMicrotask(() => quic().us_quic_embed_free(handle));
}

/** Keep the process alive and the loop running (a server, a request in flight). */
export function ref() {
  refs++;
  startReading(); // idempotent: whatever happened before, a ref means "keep reading"
}

let stopQueued = false;

export function unref() {
  if (refs > 0 && --refs === 0 && !stopQueued) {
    // Stop at the end of this turn, unless something took a ref meanwhile (a
    // client issuing its next request right after a response): re-arming the
    // reader per request would cost more than the request.
    stopQueued = true;
    setImmediate(() => {
      stopQueued = false;
      if (refs === 0) stopReading();
    });
  }
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
  return { users, refs, reading: reader !== null, embed: embed !== null };
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
