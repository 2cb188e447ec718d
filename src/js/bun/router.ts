// Bun.serve's `routes` for the HTTP/3 side (Bun's native router only sees TCP),
// and the TCP routes with Alt-Svc added. Same precedence as Bun: exact paths,
// then `:param` paths, then `/*` wildcards; `false` sends the path to `fetch`
// (even past a wildcard); a per-method object without the request's method
// falls through.
//
// Every route value Bun's server accepts works on both protocols: a Response
// (static), a Bun.file or a Response of one (a file route: Range, conditional
// requests, Last-Modified), an HTML import (served by Bun's own server), a
// handler, a per-method object of those, and false.
import { OriginalResponse, fileBody, isBunFile, responseOf, type BunFileLike } from "../internal/rust-quic/response-body";

export type RouteHandler = (req: Request & { params: Record<string, string> }, server: any) => Response | Promise<Response>;
type RouteLeaf = Response | RouteHandler | BunFileLike | Blob | HTMLBundleLike;
export type RouteValue = RouteLeaf | Partial<Record<string, RouteLeaf>> | false | null | undefined;

/** An HTML import (`import page from "./index.html"`): Bun's server bundles and serves it. */
export interface HTMLBundleLike {
  index: string;
}

/** What a matched route answers with. */
export type RouteTarget =
  | { kind: "static"; response: Response }
  | { kind: "file"; file: BunFileLike; response?: Response }
  | { kind: "html"; bundle: HTMLBundleLike }
  | { kind: "handler"; handler: RouteHandler };

/** A route that matched a request: what answers it, and the path's :params. */
export type RouteMatch = { target: RouteTarget; params: Record<string, string> };

interface CompiledRoute {
  pattern: string;
  segments: string[];
  wildcard: boolean;
  params: number;
  value: RouteValue;
}

export function isHTMLBundle(value: unknown): value is HTMLBundleLike {
  return Object.prototype.toString.call(value) === "[object HTMLBundle]";
}

function isLeaf(value: unknown): value is RouteLeaf {
  return value instanceof Response || typeof value === "function" || value instanceof Blob || isHTMLBundle(value);
}

/** A route leaf as what it answers with. */
export function targetOf(leaf: RouteLeaf): RouteTarget {
  if (typeof leaf === "function") return { kind: "handler", handler: leaf };
  if (isHTMLBundle(leaf)) return { kind: "html", bundle: leaf };
  if (isBunFile(leaf)) return { kind: "file", file: leaf };
  if (leaf instanceof Blob) return { kind: "static", response: responseOf(leaf) };
  const file = fileBody(leaf as Response);
  if (file) return { kind: "file", file, response: leaf as Response };
  return { kind: "static", response: leaf as Response };
}

export class Router {
  private exact = new Map<string, RouteValue>();
  private dynamic: CompiledRoute[] = [];
  private targets = new Map<RouteLeaf, RouteTarget>();

  constructor(routes: Record<string, RouteValue> | undefined) {
    for (const [pattern, value] of Object.entries(routes ?? {})) {
      if (!pattern.startsWith("/")) throw new TypeError(`routes: "${pattern}" must start with "/"`);
      const segments = pattern.split("/").slice(1);
      const wildcard = segments[segments.length - 1] === "*";
      const params = segments.filter(s => s.startsWith(":")).length;
      if (!wildcard && params === 0) this.exact.set(pattern, value);
      else this.dynamic.push({ pattern, segments: wildcard ? segments.slice(0, -1) : segments, wildcard, params, value });
      for (const leaf of leaves(value)) this.targets.set(leaf, targetOf(leaf));
    }
    // Params before wildcards; longer (more specific) patterns first.
    this.dynamic.sort((a, b) => Number(a.wildcard) - Number(b.wildcard) || b.segments.length - a.segments.length);
  }

  /** Exact paths whose GET/HEAD has a fixed answer: the engine can send it itself. */
  staticResponses(): [string, Response][] {
    const out: [string, Response][] = [];
    for (const [path, value] of this.exact) {
      if (!value || !isLeaf(value)) continue;
      const target = this.targets.get(value)!;
      if (target.kind === "static") out.push([path, target.response]);
    }
    return out;
  }

  /** The HTML imports among the routes (Bun's own server serves them). */
  htmlRoutes(): Record<string, RouteValue> {
    const out: Record<string, RouteValue> = {};
    for (const [path, value] of [...this.exact, ...this.dynamic.map(r => [r.pattern, r.value] as const)]) {
      if (isHTMLBundle(value)) out[path] = value;
    }
    return out;
  }

  get size() {
    return this.exact.size + this.dynamic.length;
  }

  /** The route for this request, or undefined to fall through to fetch. */
  match(method: string, pathname: string): RouteMatch | undefined {
    const pick = (value: RouteValue): RouteTarget | undefined => {
      if (!value) return undefined;
      if (isLeaf(value)) return this.targets.get(value);
      const byMethod = value as Partial<Record<string, RouteLeaf>>;
      const leaf = byMethod[method] ?? (method === "HEAD" ? byMethod.GET : undefined);
      return leaf ? this.targets.get(leaf) : undefined;
    };
    const exact = this.exact.get(pathname);
    if (exact === false) return undefined;
    if (exact !== undefined) {
      const target = pick(exact);
      if (target) return { target, params: {} };
    }
    const parts = pathname.split("/").slice(1);
    for (const route of this.dynamic) {
      if (route.wildcard ? parts.length < route.segments.length : parts.length !== route.segments.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < route.segments.length && ok; i++) {
        const seg = route.segments[i];
        if (seg.startsWith(":")) params[seg.slice(1)] = safeDecode(parts[i]);
        else ok = seg === parts[i];
      }
      if (!ok) continue;
      if (route.value === false) return undefined;
      const target = pick(route.value);
      if (target) return { target, params };
    }
    return undefined;
  }
}

function safeDecode(part: string) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function leaves(value: RouteValue): RouteLeaf[] {
  if (!value) return [];
  if (isLeaf(value)) return [value];
  if (typeof value !== "object") throw new TypeError(`routes: a route must be a Response, a Bun.file, an HTML import, a function, an object of methods or false`);
  return Object.values(value).filter((v): v is RouteLeaf => !!v && isLeaf(v));
}

/**
 * The same routes for Bun's native (TCP) server, with `header` on every
 * response: a static Response is copied with it, a Bun.file becomes a
 * Response of that file (still a native file route: Range, Last-Modified), a
 * handler's result gets it. An HTML import is left to Bun's bundler as it is
 * (its responses carry no Alt-Svc: nothing outside Bun can add a header to them).
 */
export function withHeader(routes: Record<string, RouteValue> | undefined, name: string, value: () => string) {
  if (!routes) return routes;
  const wrap = (v: RouteLeaf): RouteLeaf => {
    if (isHTMLBundle(v)) return v;
    if (v instanceof Blob) return new OriginalResponse(v, { headers: { [name]: value() } });
    if (v instanceof Response) {
      const copy = v.clone() as Response;
      copy.headers.set(name, value());
      return copy;
    }
    const handler = v as RouteHandler;
    return async (req, server) => {
      const res = await handler(req, server);
      try {
        res.headers.set(name, value());
        return res;
      } catch {
        const copy = new Response(res.body, res);
        copy.headers.set(name, value());
        return copy;
      }
    };
  };
  const out: Record<string, RouteValue> = {};
  for (const [pattern, v] of Object.entries(routes)) {
    if (!v) out[pattern] = v;
    else if (isLeaf(v)) out[pattern] = wrap(v);
    else out[pattern] = Object.fromEntries(Object.entries(v).map(([m, h]) => [m, h && isLeaf(h) ? wrap(h) : h]));
  }
  return out;
}
