// Randomised (seeded, bounded) testing of the WebTransport capsule parser
// (RFC 9297 3.2; src/js/internal/rust-quic/wt-wire.ts), which reads what a peer
// writes on a CONNECT stream. CAPSULE_FUZZ_RUNS=N runs N inputs of each kind
// (the documented long run: 10,000,000); the suite runs 10,000.
import { expect, test } from "bun:test";
import { CapsuleParser, WebTransportError } from "../../../../src/js/internal/rust-quic/wt-wire";

const RUNS = Number(process.env.CAPSULE_FUZZ_RUNS ?? 10_000);
const MAX_CAPSULE_BUFFER = 64 * 1024;

/** xorshift32: the same inputs on every run, reproducible from the seed in a failure. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

function varint(v: number, width: number): number[] {
  const out: number[] = [];
  for (let i = width - 1; i >= 0; i--) out.push(Math.floor(v / 256 ** i) % 256);
  out[0] |= ({ 1: 0, 2: 0x40, 4: 0x80, 8: 0xc0 } as Record<number, number>)[width];
  return out;
}

/** The smallest width holding v, or a wider one (peers may pad varints). */
function widthFor(v: number, random: (n: number) => number): number {
  const min = v < 64 ? 1 : v < 16384 ? 2 : v < 2 ** 30 ? 4 : 8;
  const widths = [1, 2, 4, 8].filter(w => w >= min);
  return widths[random(widths.length)];
}

/** Feeds `bytes` in random splits: the capsules out, or the error thrown. */
function feed(bytes: Uint8Array, random: (n: number) => number) {
  const parser = new CapsuleParser();
  const got: { type: number; value: Uint8Array }[] = [];
  let off = 0;
  while (off < bytes.length) {
    const n = 1 + random(Math.min(bytes.length - off, 300));
    got.push(...parser.push(bytes.subarray(off, off + n)));
    off += n;
    if (parser.pending > MAX_CAPSULE_BUFFER + 16) throw new Error(`${parser.pending} bytes buffered`);
  }
  return { got, pending: parser.pending };
}

test(`capsules written with any varint widths come back whole in any split (${RUNS} runs)`, () => {
  for (let seed = 1; seed <= RUNS; seed++) {
    const random = rng(seed);
    const sent: { type: number; value: Uint8Array }[] = [];
    const wire: Uint8Array[] = [];
    for (let c = random(5); c >= 0; c--) {
      const type = random(4) === 0 ? 2 ** 40 + random(1000) : random(0x3000);
      const value = new Uint8Array(random(8) === 0 ? random(20_000) : random(40));
      for (let i = 0; i < value.length; i += 97) value[i] = random(256);
      sent.push({ type, value });
      wire.push(new Uint8Array([...varint(type, widthFor(type, random)), ...varint(value.length, widthFor(value.length, random))]), value);
    }
    const { got, pending } = feed(Buffer.concat(wire), random);
    if (got.length !== sent.length || pending !== 0) throw new Error(`seed ${seed}: ${got.length} of ${sent.length} capsules, ${pending} left`);
    got.forEach((g, i) => {
      if (g.type !== sent[i].type || Buffer.compare(g.value, sent[i].value) !== 0) throw new Error(`seed ${seed}: capsule ${i} differs`);
    });
  }
});

test(`arbitrary bytes: capsules or a WebTransportError, never another failure, never unbounded (${RUNS} runs)`, () => {
  let refused = 0;
  for (let seed = 1; seed <= RUNS; seed++) {
    const random = rng(seed ^ 0x9e3779b9);
    const bytes = new Uint8Array(random(600));
    for (let i = 0; i < bytes.length; i++) bytes[i] = random(256);
    try {
      const { got } = feed(bytes, random);
      for (const c of got) if (c.value.length > MAX_CAPSULE_BUFFER) throw new Error(`seed ${seed}: a ${c.value.length}-byte capsule`);
    } catch (err) {
      if (!(err instanceof WebTransportError)) throw new Error(`seed ${seed}: ${err}`);
      refused++;
    }
  }
  expect(refused).toBeGreaterThan(0); // the oversized-length path is reached
});
