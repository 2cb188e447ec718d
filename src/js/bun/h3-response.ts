// Writing a Response to an HTTP/3 request stream, as Bun's own server writes it.
import type { Pointer } from "bun:ffi";
import { quic } from "../internal/rust-quic/binding";
import { H3_INTERNAL_ERROR } from "../internal/rust-quic/constants";
import { encodeHeaders } from "../internal/rust-quic/headers";
import { scheduleFlush } from "../internal/rust-quic/loop";
import { writeAll } from "../internal/rust-quic/write";
import { bodyInfo, isBunFile, type BodyInfo } from "../internal/rust-quic/response-body";
import { fileRouteResponses } from "./file-route";
import { H3RouteRequest, type StreamState } from "./h3-request";

/** Known bodies up to this size go out in one engine call (queued whole); larger ones stream. */
const ONE_CALL_BODY_LIMIT = 64 * 1024;
/** Response fields that HTTP/3 forbids (RFC 9114 4.2). */
const CONNECTION_SPECIFIC = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

type ReadResult = { done: true; value?: undefined } | { done: false; value: Uint8Array | string };
type BodyReader = { read(): Promise<ReadResult>; cancel(): Promise<void>; closed: Promise<void> };

/**
 * A stream body collected before the head goes out is sent with its length, as
 * Bun's server does: up to this much that is ready at once (16 KiB, where Bun's
 * server starts streaming chunked), else the head goes first.
 */
const STREAM_COLLECT_LIMIT = 16 * 1024;

/**
 * What a body stream has ready now: chunks are read while each read settles
 * before a macrotask passes, until `limit` bytes are in. `pending` is the read
 * still under way, if any.
 */
async function readAvailable(reader: BodyReader, limit: number): Promise<{ done: boolean; bytes: Uint8Array; pending?: Promise<ReadResult> }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const later = Symbol("later");
  for (;;) {
    const read = reader.read();
    const first = await Promise.race([read, new Promise<typeof later>(r => setImmediate(() => r(later)))]);
    if (first === later) return { done: false, bytes: concat(chunks, size), pending: read };
    if (first.done) return { done: true, bytes: concat(chunks, size) };
    const value: Uint8Array = typeof first.value === "string" ? Buffer.from(first.value) : first.value;
    chunks.push(value);
    size += value.byteLength;
    if (size >= limit) return { done: false, bytes: concat(chunks, size) };
  }
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

let dateSecond = 0;
let dateText = "";
/** The Date header value, made once per second. */
function httpDate(): string {
  const now = Math.floor(Date.now() / 1000);
  if (now !== dateSecond) {
    dateSecond = now;
    dateText = new Date(now * 1000).toUTCString();
  }
  return dateText;
}

/** A response head: `:status`, the fields HTTP/3 allows, a Date unless given or `date` is false, then `extra`. */
export function headFields(status: number, headers: Headers, extra: [string, string][] = [], date = true): [string, string][] {
  const fields: [string, string][] = [[":status", String(status)]];
  let hasDate = false;
  for (const [name, value] of headers) {
    if (CONNECTION_SPECIFIC.has(name)) continue;
    if (name === "date") hasDate = true;
    fields.push([name, value]);
  }
  if (!hasDate && date) fields.push(["date", httpDate()]);
  return fields.concat(extra);
}

/**
 * Sends a Response as Bun's own server does: `content-length` whenever the
 * body's length is known (also for HEAD, which sends no body), Bun's default
 * content-type for strings and buffers, and a known body in one engine call —
 * synchronously, without a promise, when the bytes are in memory.
 */
export function respond(s: Pointer, st: StreamState, response: Response, isHead: boolean, development = false): void | Promise<void> {
  st.responded = true;
  const status = response.status;
  const noContent = status === 204 || status === 304 || status < 200;
  const info: BodyInfo | undefined = noContent ? undefined : bodyInfo(response);
  const whole = wholeBody(info, isHead);
  if (whole) return respondAtOnce(s, st, response, info, whole);
  return respondLater(s, st, response, isHead, noContent, info, development);
}

/** The body's bytes when head, body and FIN can go in one engine call: all in memory, small enough. */
function wholeBody(info: BodyInfo | undefined, isHead: boolean): Uint8Array | undefined {
  const bytes = info?.bytes;
  return !isHead && bytes && !info.partial && bytes.byteLength <= ONE_CALL_BODY_LIMIT ? bytes : undefined;
}

function respondAtOnce(s: Pointer, st: StreamState, response: Response, info: BodyInfo | undefined, bytes: Uint8Array) {
  const block = responseHead(st, response, info, bytes.byteLength, false);
  quic().us_quic_embed_respond(s, block, block.byteLength, bytes, bytes.byteLength);
  scheduleFlush();
}

/** The response's header block, with the fields Bun's server adds. */
function responseHead(st: StreamState, response: Response, info: BodyInfo | undefined, length: number | undefined, isHead: boolean) {
  const extra: [string, string][] = [];
  if (st.request) for (const cookie of H3RouteRequest.setCookiesOf(st.request)) extra.push(["set-cookie", cookie]);
  if (length !== undefined && !response.headers.has("content-length")) extra.push(["content-length", String(length)]);
  if ((!isHead || info?.ownType) && info?.defaultType && !response.headers.has("content-type")) extra.push(["content-type", info.defaultType]);
  const attachment = isBunFile(info?.blob) && info.blob.type === "application/octet-stream" && !fileRouteResponses.has(response);
  if (!isHead && attachment && !response.headers.has("content-disposition")) {
    extra.push(["content-disposition", `filename="${(info!.blob as unknown as { name: string }).name.split("/").pop()}"`]);
  }
  return encodeHeaders(headFields(response.status, response.headers, extra));
}

/** The rest of respond: bodies read, serialised or streamed first, and HEAD. */
async function respondLater(s: Pointer, st: StreamState, response: Response, isHead: boolean, noContent: boolean, known: BodyInfo | undefined, development: boolean) {
  let info = known;
  if (info?.formData) {
    // The multipart boundary is only known once the form is serialised.
    const blob = await response.blob();
    info = { bytes: new Uint8Array(await blob.arrayBuffer()), defaultType: blob.type, ownType: true };
  }
  let reader: BodyReader | undefined;
  let pending: Promise<ReadResult> | undefined;
  if (!info && !noContent && response.body) {
    // A stream whose whole (small) body is there at once is sent like bytes, with its
    // length, as Bun's server does; for HEAD only an already-empty stream counts.
    reader = response.body.getReader() as unknown as BodyReader;
    if (isHead) {
      // Nothing is read for HEAD: only a stream that is closed already (empty) has a known length.
      const closed = await Promise.race([reader.closed.then(() => true, () => false), Promise.resolve().then(() => false)]);
      if (closed) info = { bytes: new Uint8Array(0) };
    } else {
      const ready = await readAvailable(reader, STREAM_COLLECT_LIMIT);
      if (ready.done) info = { bytes: ready.bytes };
      else if (ready.bytes.byteLength > 0) info = { bytes: ready.bytes, partial: true };
      pending = ready.pending;
    }
  }
  const whole = wholeBody(info, isHead);
  if (whole) return respondAtOnce(s, st, response, info, whole);
  const length = info?.partial ? undefined : info ? (info.bytes?.byteLength ?? info.blob!.size) : !response.body && !noContent ? 0 : undefined;
  const block = responseHead(st, response, info, length, isHead);
  const bytes = info?.bytes;
  const end = isHead || noContent || length === 0 || !response.body ? 1 : 0;
  if (quic().us_quic_embed_send_headers(s, block, block.byteLength, end) !== 0) return;
  scheduleFlush();
  if (end) {
    if (reader) await reader.cancel().catch(() => {});
    else if (response.body && !response.bodyUsed) await response.body.cancel().catch(() => {});
    return;
  }
  if (bytes && !info?.partial) {
    if ((await writeAll(s, st, bytes)) && !st.closed) quic().us_quic_stream_shutdown(s);
    scheduleFlush();
    return;
  }
  const body: BodyReader = reader ?? (response.body!.getReader() as unknown as BodyReader);
  try {
    if (bytes && !(await writeAll(s, st, bytes))) {
      await body.cancel().catch(() => {});
      return;
    }
    for (;;) {
      const { value, done } = await (pending ?? body.read());
      pending = undefined;
      if (done) break;
      const chunk: Uint8Array = typeof value === "string" ? Buffer.from(value) : (value as Uint8Array);
      if (!(await writeAll(s, st, chunk))) {
        await body.cancel().catch(() => {});
        return;
      }
    }
    if (!st.closed) quic().us_quic_stream_shutdown(s);
  } catch (err) {
    // A body that fails half-way must not look complete: RESET, never FIN.
    if (!st.closed) quic().us_quic_stream_reset_with_code(s, H3_INTERNAL_ERROR);
    if (development) console.error(err);
  }
  scheduleFlush();
}
