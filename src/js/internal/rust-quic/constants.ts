// Numbers the runtime shares with the engine, in one place: quic.h's header
// kinds, quic_embed.h's client-thread event kinds, libusockets.h's listen flags, HTTP/3's registry (rust-quic/src/http3/
// codes.rs). test/js/bun/quic/ffi-symbols.test.ts checks each against its source.
import { constants as os } from "node:os";

/** quic.h US_QUIC_HEADERS_*: what us_quic_stream_headers_kind reports. */
export const HEADERS_INFORMATIONAL = 1;
export const HEADERS_INITIAL = 2;
export const HEADERS_TRAILERS = 3;
export const HEADERS_WEBTRANSPORT = 4;

/** quic_embed.h US_QUIC_CLIENT_EVENT_*: the kinds of the client thread's events. */
export const CLIENT_EVENT_HANDSHAKE = 1;
export const CLIENT_EVENT_GOAWAY = 2;
export const CLIENT_EVENT_CONNECTION_CLOSED = 3;
export const CLIENT_EVENT_HEADERS = 4;
export const CLIENT_EVENT_DATA = 5;
export const CLIENT_EVENT_WRITABLE = 6;
export const CLIENT_EVENT_REQUEST_CLOSED = 7;

/** quic.h US_QUIC_EARLY_DATA_*: what us_quic_socket_context_set_early_data takes. */
export const EARLY_DATA_OFF = 0;
export const EARLY_DATA_SAFE = 1;
export const EARLY_DATA_ALL = 2;

/** quic.h US_QUIC_RETRY_*: what us_quic_socket_context_set_retry takes. */
export const RETRY_NEVER = 0;
export const RETRY_ALWAYS = 1;
export const RETRY_ABOVE_RATE = 2;

/** The u64 fields of quic.h's out-structs: the BigUint64Arrays the engine fills. */
export const CONTEXT_STATS_FIELDS = 20; // struct us_quic_context_stats_t
export const SOCKET_INFO_FIELDS = 10; // struct us_quic_socket_info_t

/** libusockets.h LIBUS_LISTEN_REUSE_PORT. */
export const LISTEN_REUSE_PORT = 4;

/** HTTP/3 error codes (RFC 9114 8.1), as the engine's u64 arguments take them. */
export const H3_INTERNAL_ERROR = 0x102n;
export const H3_EXCESSIVE_LOAD = 0x107n;
export const H3_REQUEST_REJECTED = 0x10bn;
export const H3_REQUEST_CANCELLED = 0x10cn;

/** HTTP/3 SETTINGS identifiers, as us_quic_socket_peer_setting takes them. */
export const SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8n;
export const SETTINGS_H3_DATAGRAM = 0x33n;
export const SETTINGS_ENABLE_WEBTRANSPORT = 0x2b603742n;
export const SETTINGS_WT_MAX_SESSIONS = 0xc671706an;

/** us_quic_socket_errno after an ICMP port unreachable (the platform's value). */
export const ECONNREFUSED = os.errno.ECONNREFUSED;
