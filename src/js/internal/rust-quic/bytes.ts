// Bytes from what the runtime's APIs accept as data (Bun.quic writes and
// datagrams, WebTransport chunks and datagrams): a view over the caller's
// memory where there is one, so nothing is copied before the engine's own copy.

/** A NUL-terminated C string, as the engine takes host names, addresses and server names. */
export function cString(text: string): Buffer {
  return Buffer.from(text + "\0");
}

/** `data` as bytes; a TypeError naming `what` for anything else. */
export function bytesOf(data: unknown, what: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (typeof data === "string") return Buffer.from(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`${what} must be a string, ArrayBuffer or ArrayBufferView`);
}
