// File routes (`routes: { "/a": Bun.file(path) }`, or a Response of a Bun.file)
// and static-route ETags over HTTP/3, answered as Bun's own server answers them
// over HTTP/1.1 (checked side by side against stock Bun 1.4.5):
// - a missing file falls through to `fetch`;
// - content-type from the file, Last-Modified from its mtime, content-length;
// - a 200 is conditional: If-None-Match `*` (a file route has no ETag) or an
//   If-Modified-Since not older than the file gives 304 (If-None-Match, when
//   present, decides alone);
// - one `bytes=` range gives 206 with Content-Range (suffix and open ranges,
//   clamped to the file), an unsatisfiable one 416 `bytes */size`; several
//   ranges or another unit serve the whole file;
// - a Response's own status other than 200 is sent as it is, whole.
import { responseOf, type BunFileLike } from "../internal/rust-quic/response-body";

/** Responses made here: Bun's server gives file routes no content-disposition (a fetch handler's Bun.file gets one). */
export const fileRouteResponses = new WeakSet<Response>();

/** Bun's static-route ETag: the xxHash64 of the body, in hex. */
export function staticEtag(body: Uint8Array): string {
  return `"${Bun.hash.xxHash64(body).toString(16).padStart(16, "0")}"`;
}

/** If-None-Match (RFC 9110 13.1.2): `*` or a list of tags, compared weakly. */
export function etagMatches(condition: string, etag: string | null): boolean {
  const weak = (t: string) => t.trim().replace(/^W\//, "");
  return condition.split(",").some(c => c.trim() === "*" || (etag !== null && weak(c) === weak(etag)));
}

type Range = { start: number; end: number } | "unsatisfiable" | undefined;

/** A single `bytes=` range against `size`; undefined when the header does not apply. */
export function parseRange(header: string | null, size: number): Range {
  if (!header) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return "unsatisfiable";
  return { start, end };
}

/** The answer of a file route, or undefined when the file does not exist (then `fetch` answers). */
export async function serveFile(request: Request, file: BunFileLike, base?: Response): Promise<Response | undefined> {
  if (!(await file.exists())) return undefined;
  const size = file.size;
  const status = base?.status ?? 200;
  const headers = new Headers(base?.headers);
  if (!headers.has("content-type") && file.type) headers.set("content-type", file.type);
  if (!headers.has("last-modified")) headers.set("last-modified", new Date(file.lastModified).toUTCString());
  if (status !== 200) return responseOf(file, { status, headers });
  const inm = request.headers.get("if-none-match");
  const ims = request.headers.get("if-modified-since");
  let notModified = false;
  if (inm !== null) notModified = etagMatches(inm, headers.get("etag"));
  else if (ims !== null) {
    const since = Date.parse(ims);
    notModified = !Number.isNaN(since) && Math.floor(file.lastModified / 1000) * 1000 <= since;
  }
  if (notModified) return responseOf(null, { status: 304, headers });
  const range = parseRange(request.headers.get("range"), size);
  if (range === "unsatisfiable") {
    headers.set("accept-ranges", "bytes");
    headers.set("content-range", `bytes */${size}`);
    headers.set("content-length", "0");
    return responseOf(null, { status: 416, headers });
  }
  if (range) {
    headers.set("accept-ranges", "bytes");
    headers.set("content-range", `bytes ${range.start}-${range.end}/${size}`);
    return responseOf(file.slice(range.start, range.end + 1), { status: 206, headers });
  }
  const whole = responseOf(file, { status, headers });
  fileRouteResponses.add(whole);
  return whole;
}
