// Bun.serve's `routes` for the HTTP/3 side (Bun's native router only sees TCP).
// Same precedence as Bun: exact paths, then `:param` paths, then `/*` wildcards;
// a per-method object without the request's method falls through to `fetch`.

export type RouteHandler = (req: Request & { params: Record<string, string> }, server: any) => Response | Promise<Response>;
export type RouteValue = Response | RouteHandler | Partial<Record<string, Response | RouteHandler>> | false | null | undefined;

interface CompiledRoute {
  pattern: string;
  segments: string[];
  wildcard: boolean;
  params: number;
  value: RouteValue;
}

export class Router {
  private exact = new Map<string, RouteValue>();
  private dynamic: CompiledRoute[] = [];

  constructor(routes: Record<string, RouteValue> | undefined) {
    for (const [pattern, value] of Object.entries(routes ?? {})) {
      if (!pattern.startsWith("/")) throw new TypeError(`routes: "${pattern}" must start with "/"`);
      const segments = pattern.split("/").slice(1);
      const wildcard = segments[segments.length - 1] === "*";
      const params = segments.filter(s => s.startsWith(":")).length;
      if (!wildcard && params === 0) this.exact.set(pattern, value);
      else this.dynamic.push({ pattern, segments: wildcard ? segments.slice(0, -1) : segments, wildcard, params, value });
    }
    // Params before wildcards; longer (more specific) patterns first.
    this.dynamic.sort((a, b) => Number(a.wildcard) - Number(b.wildcard) || b.segments.length - a.segments.length);
  }

  /** Exact paths whose value is a plain Response: the engine can answer their GET/HEAD itself. */
  staticResponses(): [string, Response][] {
    return [...this.exact].filter((e): e is [string, Response] => e[1] instanceof Response);
  }

  get size() {
    return this.exact.size + this.dynamic.length;
  }

  /** The handler for this request, or undefined to fall through to fetch. */
  match(method: string, pathname: string): { handler: Response | RouteHandler; params: Record<string, string> } | undefined {
    const pick = (value: RouteValue) => {
      if (!value) return undefined;
      if (value instanceof Response || typeof value === "function") return value;
      const byMethod = value as Partial<Record<string, Response | RouteHandler>>;
      return byMethod[method] ?? (method === "HEAD" ? byMethod.GET : undefined);
    };
    const exact = this.exact.get(pathname);
    if (exact !== undefined) {
      const handler = pick(exact);
      if (handler) return { handler, params: {} };
    }
    const parts = pathname.split("/").slice(1);
    for (const route of this.dynamic) {
      if (route.wildcard ? parts.length < route.segments.length : parts.length !== route.segments.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < route.segments.length && ok; i++) {
        const seg = route.segments[i];
        if (seg.startsWith(":")) params[seg.slice(1)] = decodeURIComponent(parts[i]);
        else ok = seg === parts[i];
      }
      if (!ok) continue;
      const handler = pick(route.value);
      if (handler) return { handler, params };
    }
    return undefined;
  }
}

/** The same routes with `header` added to every response (Alt-Svc on TCP). */
export function withHeader(routes: Record<string, RouteValue> | undefined, name: string, value: () => string) {
  if (!routes) return routes;
  const wrap = (v: Response | RouteHandler): Response | RouteHandler => {
    if (v instanceof Response) {
      const copy = v.clone() as Response;
      copy.headers.set(name, value());
      return copy;
    }
    return async (req, server) => {
      const res = await v(req, server);
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
    else if (v instanceof Response || typeof v === "function") out[pattern] = wrap(v);
    else out[pattern] = Object.fromEntries(Object.entries(v).map(([m, h]) => [m, h ? wrap(h) : h]));
  }
  return out;
}
