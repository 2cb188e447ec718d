// Header blocks cross the FFI boundary as one buffer each way:
// repeated [u32 name length][name][u32 value length][value], native endian.
import type { Pointer } from "bun:ffi";
import { quic } from "./native";

const latin1 = new TextDecoder("latin1");
let scratch = new Uint8Array(16 * 1024);

export function readHeaders(stream: Pointer): [string, string][] {
  const lib = quic();
  let need = lib.us_quic_embed_read_headers(stream, scratch, scratch.byteLength);
  if (need > scratch.byteLength) {
    scratch = new Uint8Array(Math.max(need, scratch.byteLength * 2));
    need = lib.us_quic_embed_read_headers(stream, scratch, scratch.byteLength);
  }
  const view = new DataView(scratch.buffer, 0, need);
  const out: [string, string][] = [];
  let off = 0;
  while (off < need) {
    const nameLen = view.getUint32(off, true);
    const name = latin1.decode(scratch.subarray(off + 4, off + 4 + nameLen));
    off += 4 + nameLen;
    const valueLen = view.getUint32(off, true);
    const value = latin1.decode(scratch.subarray(off + 4, off + 4 + valueLen));
    off += 4 + valueLen;
    out.push([name, value]);
  }
  return out;
}

export function encodeHeaders(fields: Iterable<[string, string]>): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const [name, value] of fields) {
    for (const text of [name, value]) {
      const bytes = Buffer.from(text, "latin1");
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, bytes.byteLength, true);
      parts.push(len, bytes);
      total += 4 + bytes.byteLength;
    }
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
