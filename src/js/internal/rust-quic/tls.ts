// TLS for every API on the engine (Bun.serve h3, fetch, Bun.quic, WebTransport):
// the PEM text of what Bun's tls options accept, server contexts (a default
// certificate, more by SNI, optional client verification) and client contexts
// (extra trust, a client certificate).
import type { Pointer } from "bun:ffi";
import { readFileSync } from "node:fs";
import { handle, quic } from "./binding";
import { acquireLoop, releaseLoop } from "./loop";
import { cString } from "./bytes";

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

const pemBytes = (value: TlsInput | undefined, option: string) => Buffer.from(pemText(value, option), "latin1");
/** The NUL-terminated reason the engine wrote into `buf`. */
const reason = (buf: Uint8Array) => Buffer.from(buf).toString("utf8").replace(/\0.*$/s, "");

/** One certificate a server presents (Bun's tls entry; `serverName` selects it by SNI). */
export interface ServerCertificate {
  cert?: TlsInput;
  key?: TlsInput;
  passphrase?: string;
  serverName?: string;
}

export interface ServerTls {
  /** The first is the default certificate; each other one needs a `serverName`. */
  certificates: ServerCertificate[];
  idleTimeoutSeconds: number;
  /** Ask clients for a certificate, verified against `ca` (and the system roots). */
  requestCert?: boolean;
  ca?: TlsInput;
  rejectUnauthorized?: boolean;
  /** How a failure to use the default certificate is worded (the engine's reason follows). */
  certificateError: string;
}

/**
 * A server context on the engine loop, holding a loop reference. The caller
 * frees it with us_quic_socket_context_free and then releases the loop; on a
 * throw both are done here.
 */
export function serverContext(tls: ServerTls): Pointer {
  const [main = {}, ...others] = tls.certificates;
  const cert = pemBytes(main.cert, "tls.cert");
  const key = pemBytes(main.key, "tls.key");
  const pass = main.passphrase ? Buffer.from(main.passphrase) : null;
  const why = new Uint8Array(512);
  const loop = acquireLoop();
  const ctx = handle(quic().us_quic_embed_server_context(loop, cert, cert.byteLength, key, key.byteLength, pass, pass?.byteLength ?? 0, tls.idleTimeoutSeconds, why, why.byteLength));
  if (!ctx) {
    releaseLoop();
    throw new TypeError(`${tls.certificateError}${reason(why)}`);
  }
  try {
    others.forEach((entry, n) => addServerName(ctx, entry, n + 1));
    if (tls.requestCert) {
      const ca = tls.ca === undefined ? null : pemBytes(tls.ca, "tls.ca");
      const reject = tls.rejectUnauthorized !== false;
      if (quic().us_quic_socket_context_set_client_verification(ctx, ca, ca?.byteLength ?? 0, 1, reject ? 1 : 0) !== 0) {
        throw new TypeError("tls.ca: no usable certificate for verifying clients");
      }
    }
  } catch (err) {
    quic().us_quic_socket_context_free(ctx);
    releaseLoop();
    throw err;
  }
  return ctx;
}

function addServerName(ctx: Pointer, entry: ServerCertificate, i: number) {
  if (!entry.serverName) throw new TypeError(`tls[${i}].serverName is required for every certificate after the first`);
  const cert = pemBytes(entry.cert, `tls[${i}].cert`);
  const key = pemBytes(entry.key, `tls[${i}].key`);
  const pass = entry.passphrase ? Buffer.from(entry.passphrase) : null;
  const why = new Uint8Array(512);
  if (quic().us_quic_embed_add_server_name(ctx, cString(entry.serverName), cert, cert.byteLength, key, key.byteLength, pass, pass?.byteLength ?? 0, why, why.byteLength) !== 0) {
    throw new TypeError(`tls[${i}]: ${reason(why)}`);
  }
}

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

/** The client certificate a client's `tls` options name (`cert` with `key`), if any. */
export function clientIdentity(tls: { cert?: TlsInput; key?: TlsInput; passphrase?: string }): ClientIdentity | undefined {
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new TypeError("tls.cert and tls.key go together (a client certificate needs its key)");
  if (tls.cert === undefined) return undefined;
  return { cert: pemText(tls.cert, "tls.cert"), key: pemText(tls.key!, "tls.key"), passphrase: tls.passphrase };
}

/**
 * A client context on the engine loop (holding a loop reference, as a server
 * context does), trusting `ca` (PEM) besides the system roots, presenting
 * `identity` to servers that request a certificate.
 */
export function clientContext(ca: string | undefined, fail: (message: string) => Error, identity?: ClientIdentity): Pointer {
  const ctx = handle(quic().us_create_quic_client_context(acquireLoop(), 0, 8, 8));
  if (!ctx) {
    releaseLoop();
    throw fail("rust-quic: could not create a client context");
  }
  try {
    if (ca) {
      const pem = Buffer.from(ca, "latin1");
      if (quic().us_quic_socket_context_set_ca(ctx, pem, pem.byteLength) !== 0) throw new TypeError("tls.ca contains no certificate");
    }
    if (identity) {
      const cert = Buffer.from(identity.cert, "latin1");
      const key = Buffer.from(identity.key, "latin1");
      const pass = identity.passphrase ? Buffer.from(identity.passphrase) : null;
      if (quic().us_quic_socket_context_set_client_certificate(ctx, cert, cert.byteLength, key, key.byteLength, pass, pass?.byteLength ?? 0) !== 0) {
        throw new TypeError("tls.cert / tls.key: not a usable certificate and matching private key");
      }
    }
  } catch (err) {
    quic().us_quic_socket_context_free(ctx);
    releaseLoop();
    throw err;
  }
  return ctx;
}
