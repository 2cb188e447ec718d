// The clients' side of the engine, one for fetch, WebTransport and Bun.quic:
// client endpoints (an engine context each) kept by what configures them, so
// a TLS client context is built once per configuration, not per connection;
// connections pooled by what they connect to; and dialing, which attaches a
// new connection to its endpoint.
import type { Pointer } from "bun:ffi";
import { connectTo } from "./connect";
import { Endpoint, type ConnectionEvents } from "./endpoint";
import { scheduleFlush } from "./loop";
import { clientContext, type ClientIdentity } from "./tls";

export interface ClientConfig {
  /** Trust (PEM) besides the system roots. */
  ca?: string;
  identity?: ClientIdentity;
  /** Names what `configure` sets; contexts with different keys are never shared. */
  key: string;
  /** Settings beyond trust and identity (ALPN, WebTransport, datagrams, limits). */
  configure?: (ctx: Pointer) => void;
  /** The caller's error for a context that cannot be made. */
  fail: (message: string) => Error;
}

/** An endpoint of client connections; `key` tells its configuration apart (for pool keys). */
export class ClientEndpoint extends Endpoint {
  constructor(
    ctx: Pointer,
    readonly key: string,
  ) {
    super(ctx);
  }
}

const endpoints = new Map<string, ClientEndpoint>();

/** What tells a client configuration's trust and identity apart (a map key). */
export function trustKey(ca: string | undefined, identity: ClientIdentity | undefined): string {
  return identity ? `${ca ?? ""}\0${identity.cert}\0${identity.key}\0${identity.passphrase ?? ""}` : (ca ?? "");
}

/**
 * The endpoint for `config`, made on first use and kept: without connections a
 * client context holds only its configuration (no socket, no ref on the loop).
 */
export function clientEndpoint(config: ClientConfig): ClientEndpoint {
  const { ca, identity } = config;
  const key = `${config.key}\0${trustKey(ca, identity)}`;
  let endpoint = endpoints.get(key);
  if (!endpoint) {
    const ctx = clientContext(ca, config.fail, identity);
    config.configure?.(ctx);
    endpoints.set(key, (endpoint = new ClientEndpoint(ctx, `${endpoints.size}`)));
  }
  return endpoint;
}

/** Where a connection goes and how its server is checked. */
export interface Destination {
  host: string;
  port: number;
  serverName?: string;
  verify: boolean;
}

/** A pool key for `to` (plus whatever else must match for sharing). */
export function poolKey(to: Destination, extra = ""): string {
  return `${to.host}:${to.port}|${to.serverName ?? ""}|${to.verify}|${extra}`;
}

/** Connections shared by key; a connection leaves when it stops taking new work. */
export class ConnectionPool<T> {
  private byKey = new Map<string, T>();
  get(key: string): T | undefined {
    return this.byKey.get(key);
  }
  add(key: string, conn: T) {
    this.byKey.set(key, conn);
  }
  /** Removes `conn` (only if it is still the one pooled under `key`). */
  forget(key: string | null, conn: T) {
    if (key !== null && this.byKey.get(key) === conn) this.byKey.delete(key);
  }
}

/** Connects on `endpoint` and routes the connection's events to `events`. */
export async function dial(endpoint: Endpoint, to: Destination, events: ConnectionEvents, fail: (message: string, cause?: unknown) => Error): Promise<Pointer> {
  const c = await connectTo(endpoint.ctx, to.host, to.port, to.serverName, to.verify, fail);
  endpoint.attach(c, events);
  scheduleFlush();
  return c;
}
