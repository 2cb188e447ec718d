// Starting a client connection on an engine context: an IP literal connects at
// once; a host name is resolved here (node:dns) and handed to the pending connect.
// (Contexts come from tls.ts; client-pool.ts dials through here.)
import type { Pointer } from "bun:ffi";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { handle, quic } from "./binding";
import { cString } from "./bytes";

/** The new connection; `fail(message, cause)` builds the caller's error type. */
export async function connectTo(
  ctx: Pointer,
  host: string,
  port: number,
  serverName: string | undefined,
  verify: boolean,
  fail: (message: string, cause?: unknown) => Error,
): Promise<Pointer> {
  const out = new BigUint64Array(1);
  const pending = new BigUint64Array(1);
  const bare = host.replace(/^\[|\]$/g, "");
  const r = quic().us_quic_socket_context_connect(ctx, cString(bare), port, serverName ? cString(serverName) : null, verify ? 1 : 0, out, pending, null);
  let conn: Pointer | null = null;
  if (r === 1) conn = handle(Number(out[0]));
  else if (r === 0) {
    const pc = handle(Number(pending[0]));
    let address: string;
    try {
      address = await resolveHost(bare, fail);
    } catch (err) {
      quic().us_quic_pending_connect_cancel(pc);
      throw err;
    }
    quic().us_quic_pending_connect_set_address(pc, cString(address));
    conn = handle(quic().us_quic_pending_connect_resolved(pc));
  }
  if (!conn) throw fail(`Unable to connect to ${host}:${port} over QUIC`);
  return conn;
}

/** An IP literal for `host` (itself, or its first address from node:dns). */
export async function resolveHost(host: string, fail: (message: string, cause?: unknown) => Error): Promise<string> {
  if (isIP(host)) return host;
  try {
    return (await lookup(host)).address;
  } catch (err) {
    throw fail(`Unable to resolve ${host}`, err);
  }
}
