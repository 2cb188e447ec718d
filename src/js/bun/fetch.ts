// The global fetch with `protocol: "http3"` (or "h3") going over rust-quic.
// Without that option fetch is Bun's own, untouched.
import { fetchH3 } from "./fetch-h3";

const nativeFetch = globalThis.fetch;

export function installFetch() {
  const fetch = function fetch(input: string | Request | URL, init?: RequestInit & { protocol?: string }) {
    const protocol = init?.protocol;
    if (protocol === "http3" || protocol === "h3") return fetchH3(input, init as any);
    return nativeFetch(input as any, init as any);
  };
  Object.assign(fetch, nativeFetch); // fetch.preconnect and friends
  globalThis.fetch = fetch as typeof globalThis.fetch;
}
