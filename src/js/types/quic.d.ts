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
    }
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
  }

  interface Server<WebSocketData> {
    /** Present when the server was started with `h3: true` (or `http3: true`). */
    readonly quic?: {
      /** The UDP port (equal to `port` unless `http1: false`). */
      readonly port: number;
      stats(): QuicServerStats;
    };
  }
}

export {};
