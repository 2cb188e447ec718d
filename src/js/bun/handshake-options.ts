// Bun.serve's handshake options: `h3EarlyData` (what HTTP/3 0-RTT may carry),
// `tls.ticketKeys` (the session-ticket keys that let a restarted server, or
// several processes, resume and take the 0-RTT of each other's sessions) and
// `h3ValidateAddress` (when new clients must answer a Retry first).
import type { Pointer } from "bun:ffi";
import { quic } from "../internal/rust-quic/binding";
import { EARLY_DATA_ALL, EARLY_DATA_OFF, EARLY_DATA_SAFE, RETRY_ABOVE_RATE, RETRY_ALWAYS, RETRY_NEVER } from "../internal/rust-quic/constants";

export type H3EarlyData = import("bun").H3EarlyData;

/** The engine's mode for the option (TypeError naming it for anything else). */
export function earlyDataMode(value: unknown): number {
  switch (value) {
    case undefined:
    case true:
    case "safe":
      return EARLY_DATA_SAFE;
    case "all":
      return EARLY_DATA_ALL;
    case false:
      return EARLY_DATA_OFF;
  }
  throw new TypeError('h3EarlyData must be true, false, "safe" or "all"');
}

export function applyEarlyData(ctx: Pointer, value: unknown): void {
  if (quic().us_quic_socket_context_set_early_data(ctx, earlyDataMode(value)) !== 0) throw new Error("h3EarlyData: the engine refused the mode");
}

/** Session-ticket keys as bytes: 48 per key (Node's ticketKeys layout), the first sealing. */
export function ticketKeyBytes(keys: unknown, option: string): Uint8Array {
  const bytes = ArrayBuffer.isView(keys) ? new Uint8Array(keys.buffer, keys.byteOffset, keys.byteLength) : keys instanceof ArrayBuffer ? new Uint8Array(keys) : null;
  if (!bytes || bytes.byteLength === 0 || bytes.byteLength % 48 !== 0) {
    throw new TypeError(`${option} must be a Buffer of 48 bytes per key (the first seals new tickets)`);
  }
  return bytes;
}

export function applyTicketKeys(ctx: Pointer, keys: unknown, option: string): void {
  const bytes = ticketKeyBytes(keys, option);
  if (quic().us_quic_socket_context_set_ticket_keys(ctx, bytes, bytes.byteLength) !== 0) throw new TypeError(`${option}: the engine refused the keys`);
}

/** The engine's Retry mode: true always, false never, unset while `h3Limits.handshakesPerSecond` is exceeded. */
export function retryMode(value: unknown): number {
  if (value === undefined) return RETRY_ABOVE_RATE;
  if (typeof value !== "boolean") throw new TypeError("h3ValidateAddress must be a boolean");
  return value ? RETRY_ALWAYS : RETRY_NEVER;
}

export function applyRetry(ctx: Pointer, value: unknown): void {
  if (quic().us_quic_socket_context_set_retry(ctx, retryMode(value)) !== 0) throw new Error("h3ValidateAddress: the engine refused the mode");
}
