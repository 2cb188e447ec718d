// What a request whose handler failed (and no `error` handler answered) gets,
// as Bun's own server answers it: in production a plain 500 "Something went
// wrong!" with the error printed; in development Bun's HTML error page, which
// only Bun's server can render. An HTTP/3 request's error is therefore handed
// to a loopback-only native server whose handler throws it again: the page and
// the printed report ("GET - /path failed") are Bun's own.
import { nativeServe } from "./native-serve";
import { OriginalResponse } from "../internal/rust-quic/response-body";

const pending = new Map<string, unknown>();
let renderer: { port: number } | undefined;
let next = 0;

function rendererServer() {
  if (!renderer) {
    const server = nativeServe.call(Bun, {
      hostname: "127.0.0.1",
      port: 0,
      development: true,
      fetch(req: Request) {
        throw pending.get(req.headers.get("x-rust-quic-error") ?? "");
      },
    } as any);
    server.unref();
    renderer = { port: server.port! };
  }
  return renderer;
}

const HOP_BY_HOP = ["connection", "keep-alive", "transfer-encoding", "date"];

/** Bun's answer to a failed request. */
export async function errorPage(err: unknown, request: Request, development: boolean): Promise<Response> {
  if (!development) {
    console.error(err);
    return new OriginalResponse("Something went wrong!", { status: 500, headers: { "content-type": "text/plain" } });
  }
  const id = String(++next);
  pending.set(id, err);
  try {
    const { port } = rendererServer();
    const url = new URL(request.url, "https://localhost");
    const page = await fetch(`http://127.0.0.1:${port}${url.pathname}${url.search}`, {
      method: request.method === "HEAD" ? "HEAD" : "GET",
      headers: { "x-rust-quic-error": id },
    });
    const headers = new Headers(page.headers);
    for (const name of HOP_BY_HOP) headers.delete(name);
    return new OriginalResponse(await page.arrayBuffer(), { status: page.status, headers });
  } catch {
    console.error(err);
    return new OriginalResponse("Something went wrong!", { status: 500, headers: { "content-type": "text/plain" } });
  } finally {
    pending.delete(id);
  }
}
