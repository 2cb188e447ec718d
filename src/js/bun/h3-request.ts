// An HTTP/3 request as the handlers see it, and the per-stream state behind it.
import type { Pointer } from "bun:ffi";

export class StreamState {
  request?: Request;
  body?: ReadableStreamDefaultController<Uint8Array>;
  bodyBytes = 0;
  paused = false;
  closed = false;
  responded = false;
  /** req.signal's controller, made on first use (most handlers never read it). */
  abort?: AbortController;
  pathname = "/";
  writable?: () => void;
  remote?: { address: string; port: number; family: "IPv4" | "IPv6" };
  /** Extended CONNECT (RFC 9220): the :protocol asked for. */
  protocol?: string;
  /** The client offered WebTransport draft-02 (answered with sec-webtransport-http3-draft). */
  draft02 = false;
  upgraded = false;
}

/** What a request head gives its Request: the method, the regular fields, the body (null: none). */
export interface RequestHead {
  method: string;
  fields: [string, string][];
  body: ReadableStream<Uint8Array> | null;
}

/**
 * An HTTP/3 request: a Request whose `signal` follows its stream (made on first read: most
 * handlers never read it), and which knows its stream and listener without a per-request map
 * entry (server.requestIP, upgrades).
 */
export class H3Request extends Request {
  #stream: Pointer;
  #state: StreamState;
  #owner: object;

  constructor(url: string, head: RequestHead, stream: Pointer, state: StreamState, owner: object) {
    // The fields are appended after construction: Bun's Request takes an
    // init's `headers` through a slower path than Headers.append (about 1 µs
    // a request); a GET without a body needs no init at all.
    super(url, head.method === "GET" && head.body === null ? undefined : { method: head.method, body: head.body });
    const headers = this.headers;
    for (const [name, value] of head.fields) headers.append(name, value);
    this.#stream = stream;
    this.#state = state;
    this.#owner = owner;
  }

  // @ts-expect-error lib.dom declares `signal` a property; Request.prototype defines it as a getter.
  override get signal(): AbortSignal {
    const st = this.#state;
    if (!st.abort) {
      st.abort = new AbortController();
      if (st.closed && !st.responded) st.abort.abort();
    }
    return st.abort.signal;
  }

  /** The stream behind `req` when it is one of `owner`'s requests. */
  static entryOf(req: Request, owner: object): { s: Pointer; st: StreamState } | undefined {
    return #owner in req && req.#owner === owner ? { s: req.#stream, st: req.#state } : undefined;
  }
}

/**
 * A route handler's request, as Bun's BunRequest: `params`, and `cookies` (a Bun.CookieMap of the
 * Cookie header, made on first read) whose changes go out as Set-Cookie with the response.
 */
export class H3RouteRequest extends H3Request {
  #params: Record<string, string>;
  #cookies?: Bun.CookieMap;

  constructor(url: string, head: RequestHead, stream: Pointer, state: StreamState, owner: object, params: Record<string, string>) {
    super(url, head, stream, state, owner);
    this.#params = params;
  }

  get params(): Record<string, string> {
    return this.#params;
  }

  get cookies(): Bun.CookieMap {
    return (this.#cookies ??= new Bun.CookieMap(this.headers.get("cookie") ?? ""));
  }

  get [Symbol.toStringTag]() {
    return "BunRequest";
  }

  /** The Set-Cookie values the handler's cookie changes make (none when it never read cookies). */
  static setCookiesOf(req: Request): string[] {
    return req instanceof H3RouteRequest && req.#cookies ? req.#cookies.toSetCookieHeaders() : [];
  }
}

// `req.constructor === Request`, as for upstream's requests (only getPrototypeOf tells them apart).
for (const kind of [H3Request, H3RouteRequest]) {
  Object.defineProperty(kind.prototype, "constructor", { value: Request, writable: true, configurable: true });
}
