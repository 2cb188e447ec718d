// Shared helpers: certificates, and clients no one here wrote.
import { spawnSync, spawn } from "node:child_process";
import { join } from "node:path";
import { tmpdir } from "node:os";

export const ROOT = join(import.meta.dir, "..", "..", "..", "..");
export const CERT = join(ROOT, "build", "certs", "cert.pem");
export const KEY = join(ROOT, "build", "certs", "key.pem");
export const BUN = join(ROOT, "node_modules", ".bin", "bun");
export const H3_CLIENT = join(ROOT, "build", "bin", "h3-client");

spawnSync("bash", [join(ROOT, "scripts", "gen-cert.sh"), join(ROOT, "build", "certs")]);

export const tls = { cert: Bun.file(CERT), key: Bun.file(KEY) };

/** Bun 1.4.5's own lsquic client, in a process without our preload (cwd outside the repo). */
export async function nativeFetch(url: string, postFile?: string): Promise<{ status: number; length: number; sha256: string }> {
  const args = [join(ROOT, "tests", "interop", "bun_native_fetch.mjs"), url];
  if (postFile) args.push(postFile);
  const proc = Bun.spawn([BUN, "--no-install", ...args], { cwd: tmpdir(), stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH } });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`native fetch failed (${code}): ${err}`);
  const [status, length, sha256] = out.trim().split(" ");
  return { status: Number(status), length: Number(length), sha256 };
}

/** Our C client (quic.h ABI): returns status, head lines and body. */
export async function h3Client(url: string, ...args: string[]) {
  const proc = Bun.spawn([H3_CLIENT, "--insecure", "-v", ...args, url], { stdout: "pipe", stderr: "pipe" });
  const [body, err, code] = await Promise.all([new Response(proc.stdout).arrayBuffer(), new Response(proc.stderr).text(), proc.exited]);
  const head = err.split("\n").filter(l => l.startsWith("< ")).map(l => l.slice(2));
  const status = Number(head.find(l => l.startsWith(":status:"))?.split(": ")[1] ?? 0);
  const header = (name: string) => head.find(l => l.startsWith(name + ": "))?.slice(name.length + 2);
  return { code, status, header, body: new Uint8Array(body), stderr: err };
}

export function sha256(data: Uint8Array | ArrayBuffer): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

export function bytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) % 251;
  return out;
}

export { spawn };

/** aioquic's examples/http3_server.py with its demo app (pages, /echo, /wt) on a free UDP port. */
export async function startAioquicServer(): Promise<{ port: number; proc: ReturnType<typeof Bun.spawn> }> {
  const { createSocket } = await import("node:dgram");
  const examples = join(ROOT, "build", "peers", "aioquic-1.7.2", "examples");
  const sock = createSocket("udp4");
  await new Promise<void>(r => sock.bind(0, "127.0.0.1", () => r()));
  const port = sock.address().port;
  sock.close();
  const argv = ["python3", join(examples, "http3_server.py"), "--certificate", CERT, "--private-key", KEY, "--host", "127.0.0.1", "--port", String(port), "demo:app"];
  return { port, proc: Bun.spawn(argv, { cwd: examples, stdout: "ignore", stderr: "ignore" }) };
}

/** fetch over HTTP/1.1 (Bun's native client) or HTTP/3 (ours), trusting the test certificate. */
export function fetchOver(protocol: "h1" | "h3", url: string, init: RequestInit = {}) {
  return fetch(url, { ...init, ...(protocol === "h3" ? { protocol: "http3" } : {}), tls: { rejectUnauthorized: false } } as RequestInit);
}

/** What a response shows an application, with what legitimately differs between protocols left out. */
export interface Observed {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Hop-by-hop and per-connection fields, and values that change per response. */
const UNCOMPARED = new Set(["date", "alt-svc", "transfer-encoding", "connection", "keep-alive"]);

export async function observe(res: Response): Promise<Observed> {
  const headers: Record<string, string> = {};
  // (Set-Cookie fields stay apart when iterated: all of them are compared.)
  for (const [name, value] of res.headers) if (!UNCOMPARED.has(name)) headers[name] = name in headers ? `${headers[name]}\n${value}` : value;
  const body = Buffer.from(await res.arrayBuffer()).toString("latin1");
  return { status: res.status, headers, body: body.length > 256 ? `${body.length} bytes sha256=${sha256(Buffer.from(body, "latin1"))}` : body };
}

/** The same request over HTTP/1.1 and HTTP/3 against a server with both. */
export async function overBoth(url: string, init: RequestInit = {}): Promise<{ h1: Observed; h3: Observed }> {
  const [h1, h3] = await Promise.all([fetchOver("h1", url, init).then(observe), fetchOver("h3", url, init).then(observe)]);
  return { h1, h3 };
}

/**
 * One HTTP/3 request with exactly these fields, sent by Bun 1.4.5's own node:quic
 * (lsquic), so that what our fetch would never send can be sent: "<status> <body>",
 * or "closed ..." when the stream or connection ended without a response.
 */
export async function rawH3(port: number, fields: Record<string, string>): Promise<string> {
  const { connect, QuicEndpoint } = (await import("node:quic")) as any;
  const endpoint = new QuicEndpoint();
  const client = await connect(`127.0.0.1:${port}`, {
    endpoint,
    servername: "localhost",
    verifyPeer: "manual",
    transportParams: { maxIdleTimeout: 5 },
    onerror() {},
  });
  try {
    await client.opened;
    let status = "";
    const stream = await client.createBidirectionalStream({ headers: fields, onheaders: (h: Record<string, string>) => void (status = h[":status"]) });
    stream.closed.catch(() => {});
    let body = "";
    try {
      for await (const batch of stream as AsyncIterable<Uint8Array[]>) for (const c of batch) body += Buffer.from(c).toString("latin1");
    } catch (err: any) {
      return `closed ${err?.code ?? ""} ${err?.errorCode ?? ""}`.trim();
    }
    return status ? `${status} ${body}` : "closed";
  } finally {
    await client.close().catch(() => {});
    await endpoint.close?.().catch?.(() => {});
  }
}

export const requestFields = (path: string, extra: Record<string, string> = {}) => ({
  ":method": "GET",
  ":path": path,
  ":scheme": "https",
  ":authority": "localhost",
  ...extra,
});

/**
 * A CA, a client certificate it signed, and an unrelated self-signed client
 * certificate (made once, with openssl, under build/certs/clients).
 */
export function clientCertificates() {
  const dir = join(ROOT, "build", "certs", "clients");
  const file = (name: string) => join(dir, name);
  const { existsSync, mkdirSync, readFileSync } = require("node:fs") as typeof import("node:fs");
  if (!existsSync(file("other-key.pem"))) {
    mkdirSync(dir, { recursive: true });
    const ssl = (...args: string[]) => {
      const r = spawnSync("openssl", args, { stdio: "pipe" });
      if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
    };
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    ssl("req", "-x509", ...ec, "-days", "3650", "-subj", "/CN=test client CA", "-keyout", file("ca-key.pem"), "-out", file("ca.pem"));
    ssl("req", ...ec, "-subj", "/CN=trusted client", "-keyout", file("client-key.pem"), "-out", file("client.csr"));
    ssl("x509", "-req", "-in", file("client.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca-key.pem"), "-CAcreateserial", "-days", "3650", "-out", file("client.pem"));
    ssl("req", "-x509", ...ec, "-days", "3650", "-subj", "/CN=unknown client", "-keyout", file("other-key.pem"), "-out", file("other.pem"));
  }
  const read = (name: string) => readFileSync(file(name), "utf8");
  return {
    ca: read("ca.pem"),
    trusted: { cert: read("client.pem"), key: read("client-key.pem") },
    untrusted: { cert: read("other.pem"), key: read("other-key.pem") },
  };
}
