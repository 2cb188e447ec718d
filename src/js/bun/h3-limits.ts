// Bun.serve's `h3Limits`: the engine's per-client limits (quic.h
// `us_quic_limits_t`), validated here and written over the engine's defaults.
import type { Pointer } from "bun:ffi";
import { quic } from "../internal/rust-quic/binding";

export type H3Limits = import("bun").H3Limits;

/** `us_quic_limits_t`'s fields in order: the option, and whether it is seconds (else a count). */
const FIELDS: ReadonlyArray<readonly [keyof H3Limits, boolean]> = [
  ["requestHeadTimeout", true],
  ["requestBodyTimeout", true],
  ["stalledRequestsPerConnection", false],
  ["streamOpensPerSecond", false],
  ["streamResetsPerSecond", false],
  ["connectionsPerAddress", false],
  ["maxConnections", false],
  ["maxHeaderFields", false],
  ["handshakesPerSecond", false],
];
const U32_MAX = 0xffff_ffff;

/** TypeError naming the option, for anything the engine could not take. */
export function validateH3Limits(limits: unknown): void {
  if (limits === undefined) return;
  if (limits === null || typeof limits !== "object") throw new TypeError("h3Limits must be an object");
  const known = new Set<string>([...FIELDS.map(([name]) => name), "maxConcurrentStreams"]);
  for (const name of Object.keys(limits)) {
    if (!known.has(name)) throw new TypeError(`h3Limits.${name} is not a limit (${[...known].join(", ")})`);
  }
  const streams = (limits as H3Limits).maxConcurrentStreams;
  if (streams !== undefined && (!Number.isInteger(streams) || streams < 1 || streams > U32_MAX)) {
    throw new TypeError("h3Limits.maxConcurrentStreams must be a positive integer");
  }
  for (const [name, seconds] of FIELDS) {
    const v = (limits as H3Limits)[name];
    if (v === undefined) continue;
    if (seconds) {
      if (typeof v !== "number" || !(v >= 0) || v * 1000 > U32_MAX) throw new TypeError(`h3Limits.${name} must be a non-negative number of seconds`);
    } else if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > U32_MAX) {
      throw new TypeError(`h3Limits.${name} must be a non-negative integer`);
    }
  }
}

/** The engine's defaults with `limits` written over them. */
export function applyH3Limits(ctx: Pointer, limits: H3Limits | undefined): void {
  if (!limits) return;
  // QUIC's own limit (MAX_STREAMS); the unidirectional count stays the HTTP/3
  // default (WebTransport raises it later when enabled).
  if (limits.maxConcurrentStreams !== undefined && quic().us_quic_socket_context_set_max_streams(ctx, limits.maxConcurrentStreams, 16) !== 0) {
    throw new Error("h3Limits: the engine refused maxConcurrentStreams");
  }
  const raw = new Uint32Array(FIELDS.length);
  if (quic().us_quic_socket_context_get_limits(ctx, raw) !== 0) throw new Error("h3Limits: the engine refused to report its limits");
  FIELDS.forEach(([name, seconds], i) => {
    const v = limits[name];
    if (v !== undefined) raw[i] = seconds ? Math.round(v * 1000) : v;
  });
  if (quic().us_quic_socket_context_set_limits(ctx, raw) !== 0) throw new Error("h3Limits: the engine refused the limits");
}
