// Installs the fork's built-in QUIC/HTTP/3 layer (rust-quic) into a stock Bun.
// Loaded by bunfig.toml's preload, or `bun --preload <repo>/src/js/preload.ts`.
// Cheap: it only replaces functions; the engine library loads on first use.
import { installFetch } from "./bun/fetch";
import { quicSocket } from "./bun/quic";
import { serve } from "./bun/serve";
import { WebTransport, WebTransportError } from "./bun/webtransport";
import { trackResponseBodies } from "./internal/rust-quic/response-body";

// Bun.serve is writable but not configurable: assign, don't redefine.
(Bun as any).serve = serve;
(Bun as any).quic = quicSocket;
installFetch();
trackResponseBodies();
// Stock Bun has no WebTransport; a future native one would take precedence.
(globalThis as any).WebTransport ??= WebTransport;
(globalThis as any).WebTransportError ??= WebTransportError;
