// WebTransport over HTTP/3 on the wire (draft-ietf-webtrans-http3): error codes and their
// mapping, the W3C error class, varints and the capsules of the CONNECT stream (RFC 9297).
export const WT_SESSION_GONE = 0x170d7b68n;
export const WT_BUFFERED_STREAM_REJECTED = 0x3994bd84n;
export const H3_MESSAGE_ERROR = 0x10en;
export const CAPSULE_CLOSE_SESSION = 0x2843;
export const CAPSULE_DRAIN_SESSION = 0x78ae;
const FIRST_APP_CODE = 0x52e4a40fa8dbn;
const LAST_APP_CODE = 0x52e5ac983162n;
/** Capsules larger than this (other than ones we skip) end the session. */
export const MAX_CAPSULE_BUFFER = 64 * 1024;
export const MAX_REASON_BYTES = 1024;

/** A WebTransport application error code (32 bits) as an HTTP/3 error code. */
export function appToHttp3(code: number): bigint {
  const n = BigInt(code >>> 0);
  return FIRST_APP_CODE + n + n / 0x1en;
}

/** The application code inside an HTTP/3 error code, or null for other codes. */
export function http3ToApp(h3: bigint): number | null {
  if (h3 < FIRST_APP_CODE || h3 > LAST_APP_CODE || (h3 - 0x21n) % 0x1fn === 0n) return null;
  const shifted = h3 - FIRST_APP_CODE;
  return Number(shifted - shifted / 0x1fn);
}

/** W3C WebTransportError: a DOMException with the error's source and the stream's code. */
export class WebTransportError extends DOMException {
  readonly source: "stream" | "session";
  readonly streamErrorCode: number | null;
  constructor(message = "", init: { source?: "stream" | "session"; streamErrorCode?: number | null } = {}) {
    super(message, "WebTransportError");
    this.source = init.source ?? "stream";
    this.streamErrorCode = init.streamErrorCode ?? null;
  }
}

function putVarint(out: number[], v: number) {
  if (v < 0x40) out.push(v);
  else if (v < 0x4000) out.push(0x40 | (v >> 8), v & 0xff);
  else if (v < 0x40000000) out.push(0x80 | (v >>> 24), (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
  else {
    const big = BigInt(v);
    for (let i = 7; i >= 0; i--) out.push(Number((big >> BigInt(8 * i)) & 0xffn) | (i === 7 ? 0xc0 : 0));
  }
}

/** A varint at `off`: [value, length], or null when incomplete. */
function getVarint(buf: Uint8Array, off: number): [number, number] | null {
  if (off >= buf.length) return null;
  const len = 1 << (buf[off] >> 6);
  if (off + len > buf.length) return null;
  let v = buf[off] & 0x3f;
  for (let i = 1; i < len; i++) v = v * 256 + buf[off + i];
  return [v, len];
}

export function encodeCloseCapsule(code: number, reason: string): Uint8Array {
  let text = Buffer.from(reason);
  if (text.byteLength > MAX_REASON_BYTES) text = Buffer.from(new TextDecoder().decode(text.subarray(0, MAX_REASON_BYTES)).replace(/\uFFFD$/, ""));
  const header: number[] = [];
  putVarint(header, CAPSULE_CLOSE_SESSION);
  putVarint(header, 4 + text.byteLength);
  const out = new Uint8Array(header.length + 4 + text.byteLength);
  out.set(header);
  new DataView(out.buffer).setUint32(header.length, code >>> 0);
  out.set(text, header.length + 4);
  return out;
}

export type Capsule = { type: number; value: Uint8Array };

/**
 * Capsules from the CONNECT stream's body, in any split (RFC 9297 3.2). Bytes
 * of an incomplete capsule are kept as chunks and joined once the capsule is
 * whole, so a capsule that arrives a byte at a time costs linear time, not
 * quadratic. Chunks are copied: the caller's buffer may be reused.
 */
export class CapsuleParser {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Bytes that must be buffered before another capsule can complete. */
  private needed = 0;
  /** Returns the complete capsules; throws when a capsule is too large to buffer. */
  push(chunk: Uint8Array): Capsule[] {
    if (chunk.length === 0) return [];
    this.chunks.push(chunk.slice());
    this.buffered += chunk.length;
    if (this.buffered < this.needed) return [];
    const joined = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const out: Capsule[] = [];
    let off = 0;
    this.needed = 0;
    for (;;) {
      const type = getVarint(joined, off);
      const len = type && getVarint(joined, off + type[1]);
      if (!type || !len) break;
      const start = off + type[1] + len[1];
      if (len[0] > MAX_CAPSULE_BUFFER) throw new WebTransportError("capsule too large", { source: "session" });
      if (start + len[0] > joined.length) {
        this.needed = start + len[0] - off;
        break;
      }
      out.push({ type: type[0], value: joined.subarray(start, start + len[0]) });
      off = start + len[0];
    }
    const rest = joined.subarray(off);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
  get pending() {
    return this.buffered;
  }
}
