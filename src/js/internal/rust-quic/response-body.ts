// What a Response was built from. Bun's own server knows a body's kind natively:
// it writes bytes in one go, sends `content-length` for every body whose length
// is known (strings, buffers, Blobs, files, form data), and adds a default
// content-type for strings and buffers. Stock Bun does not expose the body's
// kind, so the preload records it at construction (and for Response.json). The
// HTTP/3 server then answers as Bun's server does, and in one engine call when
// the bytes are in memory.

/** Where a tracked Response keeps what it was built from (a symbol: invisible to keys, JSON and inspect). */
const BODY = Symbol("rust-quic response body");
type Tracked = Response & { [BODY]?: unknown };
let installed = false;
/** The untracked constructor, for Responses the runtime itself builds (fetch results). */
export const OriginalResponse = globalThis.Response;

/**
 * Replaces the global Response with a constructor that records the body. It
 * is a plain function sharing Response's prototype (not a Proxy, not a
 * subclass): `instanceof Response` holds for every Response, Bun's own too;
 * subclasses, `constructor` and the static methods work as before; and a
 * construction costs one Reflect.construct and a property store (about
 * 0.1 µs over the bare constructor, against 0.5-0.8 µs for a Proxy's trap).
 */
export function trackResponseBodies() {
  if (installed) return;
  installed = true;
  const Original = OriginalResponse;
  const json = Original.json;
  function Response(this: unknown, body?: unknown, init?: ResponseInit): Response {
    // Without new: Bun's own error (ERR_ILLEGAL_CONSTRUCTOR), thrown by Bun's constructor.
    if (new.target === undefined) return (Original as unknown as (...a: unknown[]) => Response)(body, init);
    const response: Tracked = Reflect.construct(Original, arguments.length > 1 ? [body, init] : arguments.length ? [body] : [], new.target);
    if (body !== undefined && body !== null) response[BODY] = body;
    return response;
  }
  Object.setPrototypeOf(Response, Original); // Response.error, Response.redirect
  Object.defineProperty(Response, "prototype", { value: Original.prototype, writable: false });
  Object.defineProperty(Response, "length", { value: Original.length });
  Object.defineProperty(Response, "toString", { value: () => Function.prototype.toString.call(Original), writable: true, configurable: true });
  Object.defineProperty(Original.prototype, "constructor", { value: Response, writable: true, configurable: true });
  const statics = {
    json(data: unknown, init?: ResponseInit) {
      const response: Tracked = json.call(Original, data, init);
      // Response.json's body is JSON.stringify's text (Bun's own encoder agrees on every value it accepts).
      const text = JSON.stringify(data);
      if (typeof text === "string") response[BODY] = text;
      return response;
    },
  };
  Object.defineProperty(Response, "json", { value: statics.json, writable: true, configurable: true });
  globalThis.Response = Response as unknown as typeof globalThis.Response;
}

/** A Response the runtime builds itself, with its body recorded as if the application had built it. */
export function responseOf(body: ConstructorParameters<typeof Response>[0], init?: ResponseInit): Response {
  const response: Tracked = new OriginalResponse(body, init);
  if (body !== null && body !== undefined) response[BODY] = body;
  return response;
}

export type BunFileLike = Blob & { name: string; exists(): Promise<boolean>; lastModified: number };

/** A Bun.file (a Blob backed by a path): it has a name, like a File, but is not one. */
export function isBunFile(value: unknown): value is BunFileLike {
  return value instanceof Blob && typeof (value as any).name === "string" && !(value instanceof File);
}

/** What the server needs to know about a body before sending its head. */
export interface BodyInfo {
  /** In-memory bytes (strings, buffers, URLSearchParams, JSON). */
  bytes?: Uint8Array;
  /** A Blob or Bun.file body: its length is known, its bytes are read as they go. */
  blob?: Blob;
  /** FormData: serialised (with its boundary) when the response is sent. */
  formData?: boolean;
  /** The content-type Bun's server adds when the response has none. */
  defaultType?: string;
  /** Only the first bytes of a stream (the rest follows): no content-length. */
  partial?: boolean;
  /** The type belongs to the body (a Blob's, a form's): sent for HEAD too, unlike the string/buffer defaults. */
  ownType?: boolean;
}

/** The body's kind and bytes when known and unread; undefined for streams and unknown bodies. */
export function bodyInfo(response: Response): BodyInfo | undefined {
  const body = (response as Tracked)[BODY];
  if (body === undefined || response.bodyUsed) return undefined;
  if (typeof body === "string") return { bytes: Buffer.from(body), defaultType: body ? "text/plain;charset=utf-8" : undefined };
  // Bun's server gives empty bodies no default content-type.
  if (body instanceof ArrayBuffer || body instanceof SharedArrayBuffer) {
    return { bytes: new Uint8Array(body), defaultType: body.byteLength ? "application/octet-stream" : undefined };
  }
  if (ArrayBuffer.isView(body)) {
    const bytes = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    return { bytes, defaultType: bytes.byteLength ? "application/octet-stream" : undefined };
  }
  if (body instanceof Blob) return { blob: body, defaultType: body.type || undefined, ownType: true };
  if (body instanceof URLSearchParams) {
    return { bytes: Buffer.from(body.toString()), defaultType: "application/x-www-form-urlencoded;charset=UTF-8" };
  }
  if (body instanceof FormData) return { formData: true, ownType: true };
  return undefined;
}

/** The Bun.file a Response was built from (`new Response(Bun.file(path))`), if any. */
export function fileBody(response: Response): BunFileLike | undefined {
  const body = (response as Tracked)[BODY];
  return isBunFile(body) ? body : undefined;
}
