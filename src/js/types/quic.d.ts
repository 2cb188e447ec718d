// TypeScript declarations for what this fork adds to Bun's API.
declare module "bun" {
  namespace Serve {
    interface BaseServeOptions<WebSocketData> {
      /**
       * Serve HTTP/3 (QUIC, rust-quic) on the same port number over UDP, with the
       * same handlers. The same as `http3`. Requires `tls`.
       * @default false
       */
      h3?: boolean;
      /**
       * WebTransport over HTTP/3 (needs `h3: true`). Accept a session from the
       * fetch handler with `server.upgradeWebTransport(req, { data })`.
       */
      webtransport?: WebTransportHandler;
      /**
       * Limits on what one client may cost the HTTP/3 side (needs `h3: true`).
       * 0 turns a limit off; omitted ones keep their defaults.
       */
      h3Limits?: H3Limits;
      /**
       * What HTTP/3 0-RTT (early data on a resumed session, a round trip sooner)
       * may carry. Anyone who captured it can replay it, so by default (`true`,
       * `"safe"`) GET, HEAD and OPTIONS requests run at once, with an
       * `early-data: 1` header (RFC 8470), and any other request waits for the
       * handshake, which a replay never completes. `"all"`: every request runs
       * at once (marked; answer 425 Too Early to what must not). `false`: no 0-RTT.
       * @default "safe"
       */
      h3EarlyData?: H3EarlyData;
      /**
       * Address validation (RFC 9000 8.1.2): `true` makes every new client answer a
       * Retry (one more round trip) before the server spends a handshake on it;
       * `false` never does. Unset: only while new connections arrive faster than
       * `h3Limits.handshakesPerSecond`.
       */
      h3ValidateAddress?: boolean;
      /**
       * Connection IDs for a load balancer that routes QUIC by connection ID
       * (needs `h3: true`): every ID the server issues carries `serverId` in
       * QUIC-LB's plaintext encoding (draft-ietf-quic-load-balancers), so a
       * client whose address changes still reaches this server. Give each server
       * (or process) behind the balancer its own `serverId`.
       */
      h3LoadBalancer?: H3LoadBalancer;
    }
  }

  interface H3LoadBalancer {
    /** 1 to 11 bytes (a Buffer, Uint8Array or hex string): this server's ID, as the balancer knows it. */
    serverId: ArrayBufferView | string;
    /** The config rotation codepoint, 0 to 6, the first octet's top 3 bits (7 marks an unroutable ID). @default 0 */
    configId?: number;
  }

  type H3EarlyData = boolean | "safe" | "all";

  interface TLSOptions {
    /**
     * HTTP/3 session-ticket keys: 48 bytes per key (16-byte name, 16-byte HMAC
     * key, 16-byte AES key, as Node's `ticketKeys`), the first sealing new
     * tickets and the others still opening theirs. Servers (or processes)
     * sharing them resume, and take the 0-RTT of, each other's sessions. Rotate
     * with `server.quic.setTicketKeys`. Without it a server draws its own,
     * replaced every 12 hours.
     */
    ticketKeys?: ArrayBufferView | ArrayBuffer;
  }

  /** `Bun.serve({ h3Limits })`. Timeouts in seconds (fractions allowed), as `idleTimeout`. */
  interface H3Limits {
    /** A request's head must be complete this long after its stream opened, else 408. @default 10 */
    requestHeadTimeout?: number;
    /** Until the response begins, a request body being read must make progress this often, else 408. Time the handler's reader holds the body paused does not count. @default 30 */
    requestBodyTimeout?: number;
    /** Requests of one connection that may hit a deadline above before the connection is closed (H3_EXCESSIVE_LOAD). @default 4 */
    stalledRequestsPerConnection?: number;
    /** Requests open at once on one connection (QUIC MAX_STREAMS; a client opening more is closed with STREAM_LIMIT_ERROR). @default 256 */
    maxConcurrentStreams?: number;
    /** Request streams a client may open per second on one connection, bursts of twice that. @default 0 (off) */
    streamOpensPerSecond?: number;
    /** Requests a client may cancel per second on one connection, bursts of twice that ("rapid reset"). @default 200 */
    streamResetsPerSecond?: number;
    /** Connections open at once from one client IP address; more are refused. @default 4096 */
    connectionsPerAddress?: number;
    /** Connections open at once on the server. @default 65536 */
    maxConnections?: number;
    /** Fields in a request head (pseudo-headers included) past which it gets 431. @default 200 */
    maxHeaderFields?: number;
    /** New connections per second (bursts of twice that) past which clients must first prove their address with a Retry round trip. 0: never for load. @default 5000 */
    handshakesPerSecond?: number;
  }

  /** A WebTransport session on the server (the W3C session API plus `data` and `sendDatagram`). */
  interface WebTransportSession<Data = any> extends WebTransportSessionApi {
    /** `upgradeWebTransport`'s `data`. */
    data: Data;
    /** true when queued, false when the send queue is full; RangeError when larger than `datagrams.maxDatagramSize`. */
    sendDatagram(data: string | ArrayBuffer | ArrayBufferView): boolean;
  }

  /** A stream handed to `webtransport.stream`: `writable` only when bidirectional. */
  interface WebTransportIncomingStream {
    readonly id: number;
    readonly type: "bidirectional" | "unidirectional";
    readonly readable: ReadableStream<Uint8Array>;
    readonly writable?: WritableStream<Uint8Array>;
  }

  interface WebTransportHandler<Data = any> {
    open?(session: WebTransportSession<Data>): void | Promise<void>;
    /** Without it, datagrams go to `session.datagrams.readable`. */
    datagram?(session: WebTransportSession<Data>, data: Uint8Array): void;
    /** Without it, streams go to `session.incoming*Streams`. */
    stream?(session: WebTransportSession<Data>, stream: WebTransportIncomingStream): void | Promise<void>;
    close?(session: WebTransportSession<Data>, code: number, reason: string): void;
    /** Sessions per connection, announced in SETTINGS. @default 16 */
    maxSessions?: number;
  }

  /** Counters of the HTTP/3 side of a server. */
  interface QuicServerStats {
    connectionsAccepted: number;
    connectionsActive: number;
    requests: number;
    bytesReceived: number;
    bytesSent: number;
    packetsReceived: number;
    packetsSent: number;
    /** Requests answered 408: head or body past its `h3Limits` deadline. */
    requestsTimedOut: number;
    /** Requests answered 431: head over the size or `maxHeaderFields` limit. */
    headersTooLarge: number;
    /** Initial datagrams refused at `connectionsPerAddress` / `maxConnections` (an attempt may send several). */
    connectionsRefused: number;
    /** Connections closed for load: stalled requests, open or reset floods (H3_EXCESSIVE_LOAD), streams past MAX_STREAMS (STREAM_LIMIT_ERROR). */
    connectionsClosedForLoad: number;
    /** Connections closed (GOAWAY) with no request open for the idle timeout, however often the client pinged. */
    connectionsClosedIdle: number;
    /** Handshakes that resumed a session (a ticket). */
    connectionsResumed: number;
    /** Connections whose 0-RTT was accepted. */
    earlyDataAccepted: number;
    /** Requests that reached the handler in 0-RTT (with `early-data: 1`). */
    requestsInEarlyData: number;
    /** Requests that arrived in 0-RTT and waited for the handshake (not safe to replay). */
    requestsHeldForHandshake: number;
    /** Retry packets sent: new clients asked to prove their address (`h3Limits.handshakesPerSecond`, `h3ValidateAddress`). */
    retriesSent: number;
    /** Initials whose address-validation token did not open (forged, expired, another address). */
    invalidTokens: number;
  }

  interface Server<WebSocketData> {
    /**
     * Accepts the WebTransport extended CONNECT behind `req` (HTTP/3 only):
     * true when the session is open (return nothing from fetch), false when
     * `req` is not a WebTransport request, was answered, or its connection
     * has `webtransport.maxSessions` sessions.
     */
    upgradeWebTransport?(req: Request, options?: { data?: unknown; headers?: HeadersInit }): boolean;
    /** Present when the server was started with `h3: true` (or `http3: true`). */
    readonly quic?: {
      /** The UDP port (equal to `port` unless `http1: false`). */
      readonly port: number;
      stats(): QuicServerStats;
      /** New session-ticket keys (see `tls.ticketKeys`) for the next handshakes: put the new key first. */
      setTicketKeys(keys: ArrayBufferView | ArrayBuffer): void;
    };
  }
}

declare module "bun" {
  type QuicData = string | ArrayBufferView | ArrayBuffer;

  interface QuicStream {
    readonly id: number;
    readonly bidirectional: boolean;
    readonly closed: boolean;
    readonly connection: QuicConnection;
    /** A slot for the application. */
    data: unknown;
    /** Bytes accepted now; fewer under flow control (then `drain`), -1 when closed. */
    write(data: QuicData): number;
    end(): void;
    reset(code?: number): void;
    stopSending(code?: number): void;
  }

  interface QuicConnectionStats {
    streamCount: number;
    isConnected: boolean;
    /** The server accepted this connection's 0-RTT (or it is flowing now). */
    has0RTT: boolean;
    /** The session was resumed from a ticket. */
    resumed: boolean;
    bytesSent: number;
    bytesReceived: number;
    /** Smoothed round-trip time, milliseconds. */
    rtt: number;
    packetsLost: number;
  }

  interface QuicConnection {
    readonly readyState: "connecting" | "open" | "closing" | "closed";
    readonly isServer: boolean;
    readonly serverName: string;
    readonly remoteAddress: string;
    readonly alpn: string;
    readonly streamCount: number;
    readonly stats: QuicConnectionStats;
    data: unknown;
    /** Writes to the connection's default stream (opened on first use). */
    write(data: QuicData): number;
    createStream(options?: { bidirectional?: boolean }): Promise<QuicStream>;
    /** true when queued, false when the queue is full; throws RangeError when too large. */
    sendDatagram(data: QuicData): boolean;
    close(errorCode?: number, reason?: string): void;
    /** Client: the latest session ticket the server sent (after the handshake), for a later connection's `session`. */
    getSession(): Buffer | undefined;
  }

  interface QuicServer {
    readonly isServer: true;
    readonly port: number;
    readonly hostname: string;
    readonly readyState: "open" | "closed";
    readonly connections: QuicConnection[];
    close(): void;
    stop(): void;
  }

  interface QuicSocketOptions {
    hostname?: string;
    port?: number;
    server?: boolean;
    tls?: {
      cert?: string | ArrayBufferView | BunFile;
      key?: string | ArrayBufferView | BunFile;
      ca?: string | ArrayBufferView | BunFile;
      passphrase?: string;
      rejectUnauthorized?: boolean;
      serverName?: string;
      /** Server: ask clients for a certificate (checked against `ca` unless `rejectUnauthorized` is false). A client sends `cert`/`key` when asked. */
      requestCert?: boolean;
    };
    /** @default "bun-quic" */
    alpn?: string | string[];
    /** Milliseconds. @default 30000 */
    idleTimeout?: number;
    /** Streams of each kind the peer may open. @default 100 */
    maxStreams?: number;
    /** QUIC DATAGRAM (RFC 9221). @default false */
    datagrams?: boolean;
    /** Client: a session ticket from an earlier connection's `getSession()` (maybe of another process) to resume. */
    session?: ArrayBufferView;
    /** Server: accept 0-RTT from resuming clients (it can be replayed: only for idempotent protocols). @default false */
    earlyData?: boolean;
    open?(socket: any): void;
    connection?(conn: QuicConnection): void;
    message?(conn: QuicConnection, data: Buffer): void;
    close?(conn: QuicConnection): void;
    error?(conn: QuicConnection, err: Error & { code?: string }): void;
    datagram?(conn: QuicConnection, data: Buffer): void;
    stream?: {
      open?(stream: QuicStream): void;
      data?(stream: QuicStream, chunk: Buffer): void;
      end?(stream: QuicStream): void;
      drain?(stream: QuicStream): void;
      close?(stream: QuicStream, errorCode?: number): void;
    };
  }

  /** Raw QUIC sockets (this fork): a server with `server: true`, else a client connection. */
  function quic(options: QuicSocketOptions & { server: true }): QuicServer;
  function quic(options: QuicSocketOptions & { server?: false }): QuicConnection;
}

declare global {
  interface WebTransportCloseInfo {
    closeCode: number;
    reason: string;
  }
  interface WebTransportHash {
    algorithm: "sha-256";
    value: ArrayBuffer | ArrayBufferView;
  }
  interface WebTransportOptions {
    allowPooling?: boolean;
    requireUnreliable?: boolean;
    congestionControl?: "default" | "throughput" | "low-latency";
    serverCertificateHashes?: WebTransportHash[];
    /** Bun extension, as in fetch: trust, and a client certificate for servers that ask for one. */
    tls?: {
      rejectUnauthorized?: boolean;
      ca?: string | ArrayBufferView | Array<string | ArrayBufferView>;
      serverName?: string;
      cert?: string | ArrayBufferView;
      key?: string | ArrayBufferView;
      passphrase?: string;
    };
  }
  interface WebTransportBidirectionalStream {
    readonly readable: ReadableStream<Uint8Array>;
    readonly writable: WritableStream<Uint8Array>;
  }
  interface WebTransportDatagramDuplexStream {
    readonly readable: ReadableStream<Uint8Array>;
    readonly writable: WritableStream<Uint8Array>;
    readonly maxDatagramSize: number;
    incomingHighWaterMark: number;
    outgoingHighWaterMark: number;
  }
  /** What a WebTransport session offers on either side (W3C). */
  interface WebTransportSessionApi {
    readonly ready: Promise<void>;
    readonly closed: Promise<WebTransportCloseInfo>;
    readonly draining: Promise<void>;
    readonly datagrams: WebTransportDatagramDuplexStream;
    readonly incomingBidirectionalStreams: ReadableStream<WebTransportBidirectionalStream>;
    readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
    createBidirectionalStream(): Promise<WebTransportBidirectionalStream>;
    createUnidirectionalStream(): Promise<WritableStream<Uint8Array>>;
    close(info?: Partial<WebTransportCloseInfo>): void;
  }
  /** W3C WebTransport over rust-quic (this fork). */
  interface WebTransport extends WebTransportSessionApi {
    readonly reliability: string;
    readonly congestionControl: string;
    readonly protocol: string;
    getStats(): Promise<unknown>;
  }
  var WebTransport: {
    prototype: WebTransport;
    new (url: string | URL, options?: WebTransportOptions): WebTransport;
  };
  class WebTransportError extends DOMException {
    constructor(message?: string, init?: { source?: "stream" | "session"; streamErrorCode?: number | null });
    readonly source: "stream" | "session";
    readonly streamErrorCode: number | null;
  }
}

export {};
