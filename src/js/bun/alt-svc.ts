// Alt-Svc upgrade for fetch (RFC 7838), behind upstream's flag
// BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP3_CLIENT=1: an HTTPS response advertising
// `h3` for the same host sends later requests to that origin over HTTP/3.

const MAX_ORIGINS = 256;
const DEFAULT_MAX_AGE_S = 86400;

interface Alternative {
  port: number;
  expires: number;
}

export class AltSvcCache {
  private entries = new Map<string, Alternative>();

  /** Records (or clears) what an HTTPS response from `url` advertises. */
  record(url: URL, header: string | null, now = Date.now()) {
    if (!header || url.protocol !== "https:") return;
    if (header.trim().toLowerCase() === "clear") {
      this.entries.delete(url.origin);
      return;
    }
    for (const entry of header.split(",")) {
      const m = entry.trim().match(/^h3="([^"]*)"(.*)$/);
      if (!m) continue;
      const authority = m[1];
      const colon = authority.lastIndexOf(":");
      const host = authority.slice(0, colon).replace(/^\[|\]$/g, "");
      const port = Number(authority.slice(colon + 1));
      if (colon < 0 || !Number.isInteger(port) || port < 1 || port > 65535) continue;
      if (host && host.toLowerCase() !== url.hostname.toLowerCase()) continue; // same host only
      const ma = Number(m[2].match(/;\s*ma=(\d+)/)?.[1] ?? DEFAULT_MAX_AGE_S);
      this.entries.delete(url.origin); // re-insert: most recent last
      this.entries.set(url.origin, { port, expires: now + ma * 1000 });
      if (this.entries.size > MAX_ORIGINS) this.entries.delete(this.entries.keys().next().value!);
      return;
    }
  }

  /** The HTTP/3 port for this origin, if a fresh alternative is known. */
  lookup(url: URL, now = Date.now()): number | undefined {
    const alt = this.entries.get(url.origin);
    if (!alt) return undefined;
    if (alt.expires <= now) {
      this.entries.delete(url.origin);
      return undefined;
    }
    return alt.port;
  }

  forget(url: URL) {
    this.entries.delete(url.origin);
  }

  get size() {
    return this.entries.size;
  }
}
