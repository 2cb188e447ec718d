// Header blocks cross the FFI boundary as one buffer each way:
// repeated [u32 name length][name][u32 value length][value], native endian.
// Field names and values are ByteStrings (latin1), so one char is one byte.
import type { Pointer } from "bun:ffi";
import { quic } from "./binding";

type Latin1Buffer = Buffer & {
  latin1Slice(start: number, end: number): string;
  latin1Write(text: string, offset: number): number;
};

let scratch = Buffer.allocUnsafe(16 * 1024) as Latin1Buffer;

export function readHeaders(stream: Pointer): [string, string][] {
  let need = quic().us_quic_embed_read_headers(stream, scratch, scratch.byteLength);
  if (need > scratch.byteLength) {
    scratch = Buffer.allocUnsafe(Math.max(need, scratch.byteLength * 2)) as Latin1Buffer;
    need = quic().us_quic_embed_read_headers(stream, scratch, scratch.byteLength);
  }
  return parseHeaders(scratch, 0, need);
}

/** The fields of a block held in `buf` from `start` to `end`. */
export function parseHeaders(buf: Uint8Array, start: number, end: number): [string, string][] {
  // One decode of the whole block, then substrings (which share its storage):
  // a native call per field costs more than the fields themselves (0.4 against
  // 1.1 µs for a six-field request head).
  const text = (buf as Latin1Buffer).latin1Slice(start, end);
  const out: [string, string][] = [];
  let off = start;
  while (off < end) {
    const nameLen = u32At(buf, off);
    const name = text.substring(off + 4 - start, off + 4 - start + nameLen);
    off += 4 + nameLen;
    const valueLen = u32At(buf, off);
    const value = text.substring(off + 4 - start, off + 4 - start + valueLen);
    off += 4 + valueLen;
    out.push([name, value]);
  }
  return out;
}

/** A little-endian u32 (the block's lengths; unaligned). */
function u32At(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + b[i + 3] * 0x1000000;
}

/** A fresh block (callers may keep it across awaits). */
export function encodeHeaders(fields: Iterable<[string, string]>): Uint8Array {
  const list = Array.isArray(fields) ? (fields as [string, string][]) : [...fields];
  let total = 0;
  for (const [name, value] of list) total += 8 + name.length + value.length;
  const out = Buffer.allocUnsafe(total) as Latin1Buffer;
  let off = 0;
  for (const [name, value] of list) {
    out.writeUInt32LE(name.length, off);
    off += 4 + out.latin1Write(name, off + 4);
    out.writeUInt32LE(value.length, off);
    off += 4 + out.latin1Write(value, off + 4);
  }
  return out;
}
