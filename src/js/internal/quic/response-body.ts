// Which Responses were built from bytes already in memory (a string, an
// ArrayBuffer or a view). Bun's own server knows this natively and writes such a
// body in one go; stock Bun does not expose it, so the preload records the body
// at construction. The HTTP/3 server then answers in one engine call instead of
// pulling the body through a ReadableStream reader (about 5 µs per response).
const bodies = new WeakMap<Response, string | ArrayBuffer | ArrayBufferView>();
let installed = false;
/** The untracked constructor, for Responses the runtime itself builds (fetch results). */
export const OriginalResponse = globalThis.Response;

export function trackResponseBodies() {
  if (installed) return;
  installed = true;
  const Original = OriginalResponse;
  // A Proxy keeps `instanceof Response`, subclassing and the static methods intact.
  globalThis.Response = new Proxy(Original, {
    construct(target, args, newTarget) {
      const response = Reflect.construct(target, args, newTarget);
      const body = args[0];
      if (typeof body === "string" || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) bodies.set(response, body);
      return response;
    },
  });
}

/** The body's bytes when known and unread; a string body also says so (for content-type). */
export function knownBody(response: Response): { bytes: Uint8Array; text: boolean } | undefined {
  const body = bodies.get(response);
  if (body === undefined || response.bodyUsed) return undefined;
  if (typeof body === "string") return { bytes: Buffer.from(body), text: true };
  if (body instanceof ArrayBuffer) return { bytes: new Uint8Array(body), text: false };
  return { bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength), text: false };
}
