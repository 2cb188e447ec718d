// The engine's loop inside Bun's: a watcher thread in the engine signals a pipe
// when the engine's epoll fd is ready; Bun reads the pipe like any stream, and on
// each byte we run one non-blocking engine iteration on this (the JS) thread.
import type { Pointer } from "bun:ffi";
import { handle as asPointer, quic } from "./native";

let embed: Pointer | null = null;
let loopPtr: Pointer | null = null;
let users = 0;
let flushQueued = false;

async function pump(handle: Pointer, fd: number) {
  const reader = Bun.file(fd).stream().getReader();
  for (;;) {
    const { done } = await reader.read();
    if (done || handle !== embed) break;
    quic().us_quic_embed_run(handle);
  }
}

/** The engine loop, created on first use; release it when done so the process can exit. */
export function acquireLoop(): Pointer {
  if (!embed) {
    const lib = quic();
    const created = asPointer(lib.us_quic_embed_create());
    if (!created) throw new Error("rust-quic: could not create its event loop");
    embed = created;
    loopPtr = asPointer(lib.us_quic_embed_loop(created));
    pump(created, lib.us_quic_embed_wake_fd(created));
  }
  users++;
  return loopPtr!;
}

export function releaseLoop() {
  if (--users > 0 || !embed) return;
  const handle = embed;
  embed = null;
  loopPtr = null;
  // After the current callbacks: stops the watcher; the wake pipe reaches EOF.
  queueMicrotask(() => quic().us_quic_embed_free(handle));
}

/**
 * Sends what JS wrote outside the engine's own iteration (after an await).
 * Deferred to a microtask so it never runs inside an engine callback.
 */
export function scheduleFlush() {
  if (flushQueued || !loopPtr) return;
  flushQueued = true;
  queueMicrotask(() => {
    flushQueued = false;
    if (loopPtr) quic().us_quic_loop_process(loopPtr);
  });
}
