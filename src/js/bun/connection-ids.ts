// Bun.serve's `h3LoadBalancer`: the connection IDs the HTTP/3 side issues carry
// a server ID in QUIC-LB's plaintext encoding (draft-ietf-quic-load-balancers),
// so a load balancer that routes QUIC by connection ID keeps each connection on
// this server (or process) when its client's address changes.
import type { Pointer } from "bun:ffi";
import { quic } from "../internal/rust-quic/binding";

export type H3LoadBalancer = import("bun").H3LoadBalancer;

/** Server IDs of 1 to 11 bytes leave a 16-byte ID its 4-byte nonce. */
const MAX_SERVER_ID = 11;

/** The option as the engine takes it (TypeError naming it for anything else). */
export function loadBalancerConfig(value: unknown): { configId: number; serverId: Uint8Array } | null {
  if (value === undefined) return null;
  if (!value || typeof value !== "object") throw new TypeError("h3LoadBalancer must be an object with a serverId");
  const { serverId, configId = 0 } = value as { serverId?: unknown; configId?: unknown };
  if (!Number.isInteger(configId) || (configId as number) < 0 || (configId as number) > 6) {
    throw new TypeError("h3LoadBalancer.configId must be an integer from 0 to 6 (7 marks an unroutable ID)");
  }
  const bytes =
    typeof serverId === "string" && /^([0-9a-f]{2})+$/i.test(serverId)
      ? Buffer.from(serverId, "hex")
      : ArrayBuffer.isView(serverId)
        ? new Uint8Array(serverId.buffer, serverId.byteOffset, serverId.byteLength)
        : null;
  if (!bytes || bytes.byteLength < 1 || bytes.byteLength > MAX_SERVER_ID) {
    throw new TypeError(`h3LoadBalancer.serverId must be 1 to ${MAX_SERVER_ID} bytes (a Buffer or a hex string)`);
  }
  return { configId: configId as number, serverId: bytes };
}

export function applyLoadBalancer(ctx: Pointer, value: unknown): void {
  const config = loadBalancerConfig(value);
  if (!config) return;
  if (quic().us_quic_socket_context_set_quic_lb(ctx, config.configId, config.serverId, config.serverId.byteLength) !== 0) {
    throw new TypeError("h3LoadBalancer: the engine refused the configuration");
  }
}
