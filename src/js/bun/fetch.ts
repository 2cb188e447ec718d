// The global fetch with `protocol: "http3"` (or "h3") going over rust-quic.
// Without that option fetch is Bun's own, untouched.
import { AltSvcCache } from "./alt-svc";
import { fetchH3 } from "./fetch-h3";

const nativeFetch = globalThis.fetch;
export const altSvc = new AltSvcCache();

/** Fails before anything was sent: safe to fall back to HTTP/1.1 or 2. */
const CONNECT_FAILURES = new Set(["ConnectionRefused", "HTTP3HandshakeFailed"]);

async function upgradingFetch(input: string | Request | URL, init: any): Promise<Response> {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const port = url.protocol === "https:" ? altSvc.lookup(url) : undefined;
  if (port !== undefined) {
    try {
      return await fetchH3(input, { ...init, protocol: "http3", connectPort: port });
    } catch (err: any) {
      if (!CONNECT_FAILURES.has(err?.code)) throw err;
      altSvc.forget(url);
    }
  }
  const res = await nativeFetch(input as any, init);
  altSvc.record(url, res.headers.get("alt-svc"));
  return res;
}

export function installFetch() {
  // Upstream's switches: the feature flag or the CLI flag.
  const upgrade = process.env.BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP3_CLIENT === "1" || process.execArgv.includes("--experimental-http3-fetch");
  const fetch = function fetch(input: string | Request | URL, init?: RequestInit & { protocol?: string }) {
    const protocol = init?.protocol;
    if (protocol === "http3" || protocol === "h3") return fetchH3(input, init as any);
    if (upgrade && protocol === undefined) return upgradingFetch(input, init ?? {});
    return nativeFetch(input as any, init as any);
  };
  Object.assign(fetch, nativeFetch); // fetch.preconnect and friends
  globalThis.fetch = fetch as typeof globalThis.fetch;
}
