// Session resumption and 0-RTT between Bun.serve and fetch, both on rust-quic:
// `tls.ticketKeys` (a restarted server takes its predecessor's tickets),
// `h3EarlyData` (what 0-RTT may carry), `server.quic!.setTicketKeys`, and fetch
// sending safe requests in 0-RTT when it holds a ticket.
import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { tls } from "./harness";

const insecure = { protocol: "http3", tls: { rejectUnauthorized: false } } as RequestInit;
/** fetch options naming the server by a name of this test's own: fetch keeps tickets (and
 * pools connections) by server name and port, so another test's server that had the same
 * port before cannot lend its ticket or connection. */
let origins = 0;
const uniqueOrigin = (): RequestInit => ({ protocol: "http3", tls: { rejectUnauthorized: false, serverName: `t${++origins}-${process.pid}.early.test` } }) as RequestInit;
const urlOf = (port: number, path = "/") => `https://127.0.0.1:${port}${path}`;

/** A server that reports, per request, whether it arrived in 0-RTT. */
function serveOn(port: number, options: Record<string, unknown> = {}): any {
  return Bun.serve({
    ...options,
    port,
    h3: true,
    http1: false,
    tls: { ...tls, ...((options.tls as object) ?? {}) },
    async fetch(req: Request) {
      const body = req.method === "POST" ? await req.text() : "";
      return new Response(`${req.method} ${req.headers.get("early-data") ?? "-"} ${body}`);
    },
  } as any);
}

/** One request on a server, which then stops (its connection closes: fetch keeps the ticket). */
async function firstVisit(port: number, options: Record<string, unknown>, via: RequestInit) {
  const server = serveOn(port, options);
  expect(await (await fetch(urlOf(server.port, "/"), via)).text()).toBe("GET - ");
  // Gracefully: GOAWAY, and the stop ends once fetch's side has closed (so the
  // next request to the port does not go on the old connection).
  await server.stop();
  return server.port as number;
}

describe("0-RTT", () => {
  test("wrong values are TypeErrors naming the option", () => {
    const base = { port: 0, h3: true, tls, fetch: () => new Response("x") };
    const attempt = (extra: object) => () => Bun.serve({ ...base, ...extra } as any);
    const early = 'h3EarlyData must be true, false, "safe" or "all"';
    expect(attempt({ h3EarlyData: "sometimes" })).toThrow(new TypeError(early));
    expect(attempt({ h3EarlyData: 1 })).toThrow(new TypeError(early));
    expect(attempt({ h3: false, h3EarlyData: true })).toThrow(new TypeError("h3EarlyData needs h3: true"));
    const keys = "tls.ticketKeys must be a Buffer of 48 bytes per key (the first seals new tickets)";
    expect(attempt({ tls: { ...tls, ticketKeys: Buffer.alloc(47) } })).toThrow(new TypeError(keys));
    expect(attempt({ tls: { ...tls, ticketKeys: "secret" } })).toThrow(new TypeError(keys));
    using server = Bun.serve({ ...base, http1: false } as any);
    expect(() => server.quic!.setTicketKeys(Buffer.alloc(50))).toThrow(new TypeError("ticketKeys must be a Buffer of 48 bytes per key (the first seals new tickets)"));
    server.quic!.setTicketKeys(randomBytes(96));
  });

  test("a restarted server with the same ticketKeys takes fetch's GET in 0-RTT and holds its POST for the handshake", async () => {
    const ticketKeys = randomBytes(48);
    const via = uniqueOrigin();
    const port = await firstVisit(0, { tls: { ticketKeys } }, via);
    await using again = serveOn(port, { tls: { ticketKeys } });
    const [get, post] = await Promise.all([
      fetch(urlOf(port, "/a"), via).then(r => r.text()),
      fetch(urlOf(port, "/b"), { ...via, method: "POST", body: "payload" }).then(r => r.text()),
    ]);
    // The GET goes in 0-RTT when fetch hands it over before the handshake ends
    // (the usual case; the engine tests and the aioquic/ngtcp2 interop pin 0-RTT
    // itself down); on a loaded machine it may go just after: either way it is
    // marked only if it really was early.
    expect(["GET 1 ", "GET - "]).toContain(get);
    expect(post).toBe("POST - payload");
    const st = again.quic.stats();
    expect(st.connectionsResumed).toBe(1);
    expect(st.requestsInEarlyData).toBe(get === "GET 1 " ? 1 : 0);
    expect(st.requestsHeldForHandshake).toBe(0);
  });

  test("other ticket keys: a full handshake answers the same requests", async () => {
    const via = uniqueOrigin();
    const port = await firstVisit(0, { tls: { ticketKeys: randomBytes(48) } }, via);
    await using again = serveOn(port, { tls: { ticketKeys: randomBytes(48) } });
    expect(await (await fetch(urlOf(port, "/"), via)).text()).toBe("GET - ");
    const st = again.quic.stats();
    expect([st.connectionsResumed, st.earlyDataAccepted, st.requestsInEarlyData]).toEqual([0, 0, 0]);
  });

  test("h3EarlyData: false resumes without 0-RTT", async () => {
    const ticketKeys = randomBytes(48);
    const via = uniqueOrigin();
    const port = await firstVisit(0, { tls: { ticketKeys }, h3EarlyData: false }, via);
    await using again = serveOn(port, { tls: { ticketKeys }, h3EarlyData: false });
    expect(await (await fetch(urlOf(port, "/"), via)).text()).toBe("GET - ");
    const st = again.quic.stats();
    expect([st.connectionsResumed, st.earlyDataAccepted, st.requestsInEarlyData]).toEqual([1, 0, 0]);
  });

  test("a ticket the server accepted 0-RTT for, now refused: the GET is sent again after the handshake", async () => {
    const ticketKeys = randomBytes(48);
    const via = uniqueOrigin();
    const port = await firstVisit(0, { tls: { ticketKeys } }, via);
    await using again = serveOn(port, { tls: { ticketKeys }, h3EarlyData: false });
    expect(await (await fetch(urlOf(port, "/"), via)).text()).toBe("GET - ");
    const st = again.quic.stats();
    expect([st.connectionsResumed, st.earlyDataAccepted, st.requestsInEarlyData]).toEqual([1, 0, 0]);
  });
});

describe("address validation", () => {
  test("wrong values are TypeErrors naming the option", () => {
    const base = { port: 0, h3: true, tls, fetch: () => new Response("x") };
    const attempt = (extra: object) => () => Bun.serve({ ...base, ...extra } as any);
    expect(attempt({ h3ValidateAddress: "yes" })).toThrow(new TypeError("h3ValidateAddress must be a boolean"));
    expect(attempt({ h3: false, h3ValidateAddress: true })).toThrow(new TypeError("h3ValidateAddress needs h3: true"));
    expect(attempt({ h3Limits: { handshakesPerSecond: -1 } })).toThrow(new TypeError("h3Limits.handshakesPerSecond must be a non-negative integer"));
  });

  test("h3ValidateAddress: true makes fetch answer a Retry first, and the request is served", async () => {
    await using server = serveOn(0, { h3ValidateAddress: true });
    expect(await (await fetch(urlOf(server.port, "/"), insecure)).text()).toBe("GET - ");
    const st = server.quic.stats();
    // (More than one Retry only if a slow run made fetch send its first Initial again.)
    expect(st.retriesSent).toBeGreaterThanOrEqual(1);
    expect([st.connectionsAccepted, st.invalidTokens]).toEqual([1, 0]);
  });

  test("an Initial with a forged token is counted and answered with a Retry, not a handshake", async () => {
    await using server = serveOn(0, { h3ValidateAddress: true });
    const replies: Buffer[] = [];
    const sock = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: (_s, data) => void replies.push(Buffer.from(data)) } });
    // A QUIC v1 Initial (RFC 9000 17.2.2) carrying a token the server never sealed, padded to 1200 bytes.
    const token = Buffer.from("a token nobody sealed");
    const head = Buffer.concat([Buffer.from([0xc0, 0, 0, 0, 1, 8]), Buffer.alloc(8, 0xd1), Buffer.from([8]), Buffer.alloc(8, 0x5c), Buffer.from([token.length]), token]);
    const rest = 1200 - head.length - 2;
    const initial = Buffer.concat([head, Buffer.from([0x40 | (rest >> 8), rest & 0xff]), randomBytes(rest)]);
    sock.send(initial, server.port, "127.0.0.1");
    for (let i = 0; i < 100 && replies.length === 0; i++) await Bun.sleep(10);
    sock.close();
    expect(replies.length).toBeGreaterThanOrEqual(1);
    expect(replies[0][0] & 0xf0).toBe(0xf0); // a Retry (long header, type 3)
    const st = server.quic.stats();
    expect([st.invalidTokens, st.retriesSent, st.connectionsAccepted]).toEqual([1, 1, 0]);
  });

  test("by default no Retry below the handshake rate", async () => {
    await using server = serveOn(0);
    expect(await (await fetch(urlOf(server.port, "/"), insecure)).text()).toBe("GET - ");
    expect(server.quic.stats().retriesSent).toBe(0);
  });
});

describe("QUIC-LB connection IDs", () => {
  const attempt = (options: Record<string, unknown>) => () =>
    Bun.serve({ port: 0, h3: true, tls, fetch: () => new Response("x"), ...options } as any).stop(true);

  test("wrong values are TypeErrors naming the option", () => {
    expect(attempt({ h3LoadBalancer: "5e01" })).toThrow(new TypeError("h3LoadBalancer must be an object with a serverId"));
    const serverId = "h3LoadBalancer.serverId must be 1 to 11 bytes (a Buffer or a hex string)";
    expect(attempt({ h3LoadBalancer: {} })).toThrow(new TypeError(serverId));
    expect(attempt({ h3LoadBalancer: { serverId: "5e0" } })).toThrow(new TypeError(serverId));
    expect(attempt({ h3LoadBalancer: { serverId: Buffer.alloc(12) } })).toThrow(new TypeError(serverId));
    expect(attempt({ h3LoadBalancer: { serverId: "5e01", configId: 7 } })).toThrow(
      new TypeError("h3LoadBalancer.configId must be an integer from 0 to 6 (7 marks an unroutable ID)"),
    );
    expect(attempt({ h3: false, h3LoadBalancer: { serverId: "5e01" } })).toThrow(new TypeError("h3LoadBalancer needs h3: true"));
  });

  test("a server issuing QUIC-LB IDs serves fetch over them, after a Retry too", async () => {
    // The Retry's new connection ID is one of the server's: fetch's handshake then runs on it.
    await using server = serveOn(0, { h3LoadBalancer: { serverId: Buffer.from([0x5e, 0x01]), configId: 3 }, h3ValidateAddress: true });
    for (let i = 0; i < 3; i++) expect(await (await fetch(urlOf(server.port, "/"), insecure)).text()).toBe("GET - ");
    expect(server.quic.stats().retriesSent).toBeGreaterThanOrEqual(1);
  });
});
