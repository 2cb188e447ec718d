// TLS inputs shared by Bun.serve h3, fetch, Bun.quic and WebTransport: the PEM
// text of what Bun's tls options accept.
import { readFileSync } from "node:fs";

export type TlsInput = string | ArrayBufferView | ArrayBuffer | Blob | Array<string | ArrayBufferView | Blob>;

/** PEM text from what Bun.serve's tls accepts: string, Buffer/TypedArray, BunFile, or arrays of them. */
export function pemText(value: TlsInput | undefined, option: string): string {
  if (value === undefined || value === null) throw new TypeError(`${option} is required for HTTP/3`);
  if (Array.isArray(value)) return value.map((v, i) => pemText(v, `${option}[${i}]`)).join("\n");
  if (typeof value === "string") return value;
  if (value instanceof ArrayBuffer) return Buffer.from(value).toString("latin1");
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("latin1");
  if (value instanceof Blob && typeof (value as any).name === "string") return readFileSync((value as any).name, "latin1");
  throw new TypeError(`${option} must be a string, Buffer, TypedArray or BunFile`);
}
