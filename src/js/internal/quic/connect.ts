// Starting a client connection on an engine context: an IP literal connects at
// once; a host name is resolved here (node:dns) and handed to the pending connect.
import type { Pointer } from "bun:ffi";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { acquireLoop, releaseLoop } from "./loop";
import { handle, quic } from "./native";

const cstr = (text: string) => Buffer.from(text + "\0");

/**
 * Whether a client verifies the server's certificate: the `rejectUnauthorized`
 * option, else on unless NODE_TLS_REJECT_UNAUTHORIZED=0 (as every TLS client in Bun).
 */
export function verifiesPeer(rejectUnauthorized: boolean | undefined): boolean {
  return rejectUnauthorized ?? process.env.NODE_TLS_REJECT_UNAUTHORIZED !== "0";
}

/** A client certificate (PEM) shown to servers that ask for one. */
export interface ClientIdentity {
  cert: string;
  key: string;
  passphrase?: string;
}

/**
 * A client context on the engine loop, trusting `ca` (PEM) besides the system
 * roots, presenting `identity` to servers that request a certificate.
 */
export function createClientContext(ca: string | undefined, fail: (message: string) => Error, identity?: ClientIdentity): Pointer {
  const lib = quic();
  const ctx = handle(lib.us_create_quic_client_context(acquireLoop(), 0, 8, 8));
  if (!ctx) {
    releaseLoop();
    throw fail("rust-quic: could not create a client context");
  }
  if (ca) {
    const pem = Buffer.from(ca, "latin1");
    if (lib.us_quic_socket_context_set_ca(ctx, pem, pem.byteLength) !== 0) {
      lib.us_quic_socket_context_free(ctx);
      releaseLoop();
      throw new TypeError("tls.ca contains no certificate");
    }
  }
  if (identity) {
    const cert = Buffer.from(identity.cert, "latin1");
    const key = Buffer.from(identity.key, "latin1");
    const pass = identity.passphrase ? Buffer.from(identity.passphrase) : null;
    if (lib.us_quic_socket_context_set_client_certificate(ctx, cert, cert.byteLength, key, key.byteLength, pass, pass?.byteLength ?? 0) !== 0) {
      lib.us_quic_socket_context_free(ctx);
      releaseLoop();
      throw new TypeError("tls.cert / tls.key: not a usable certificate and matching private key");
    }
  }
  return ctx;
}

/** The new connection; `fail(message, cause)` builds the caller's error type. */
export async function connectTo(
  ctx: Pointer,
  host: string,
  port: number,
  serverName: string | undefined,
  verify: boolean,
  fail: (message: string, cause?: unknown) => Error,
): Promise<Pointer> {
  const lib = quic();
  const out = new BigUint64Array(1);
  const pending = new BigUint64Array(1);
  const bare = host.replace(/^\[|\]$/g, "");
  const r = lib.us_quic_socket_context_connect(ctx, cstr(bare), port, serverName ? cstr(serverName) : null, verify ? 1 : 0, out, pending, null);
  let conn: Pointer | null = null;
  if (r === 1) conn = handle(Number(out[0]));
  else if (r === 0) {
    const pc = handle(Number(pending[0]));
    let address: string;
    try {
      address = isIP(bare) ? bare : (await lookup(bare)).address;
    } catch (err) {
      lib.us_quic_pending_connect_cancel(pc);
      throw fail(`Unable to resolve ${bare}`, err);
    }
    lib.us_quic_pending_connect_set_address(pc, cstr(address));
    conn = handle(lib.us_quic_pending_connect_resolved(pc));
  }
  if (!conn) throw fail(`Unable to connect to ${host}:${port} over QUIC`);
  return conn;
}
