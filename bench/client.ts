// The client-side benchmark: the same fetch({ protocol: "http3" }) code, run with
// the project's preload (rust-quic) or on plain Bun 1.4.5 (lsquic).
// usage: bun [--preload src/js/preload.ts] bench/client.ts ORIGIN small|big|busy
// (busy: 2 x 32 MB while the JS thread works 1 ms after each chunk it reads)
// Prints one JSON line: requests, seconds, rps, mib_per_s, p50_us, p99_us, cpu_s.
const [origin, mode] = process.argv.slice(2);
const init = { protocol: "http3", tls: { rejectUnauthorized: false } } as RequestInit;
const cpuBefore = process.cpuUsage();
const latencies: number[] = [];
let bytes = 0;

/** Work the JS thread does after each chunk (busy mode), in ms. */
const workPerChunk = mode === "busy" ? 1 : 0;

async function one(path: string) {
  const t0 = performance.now();
  const res = await fetch(origin + path, init);
  if (res.status !== 200) throw new Error(`status ${res.status}`);
  const reader = res.body!.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (workPerChunk) {
      const until = performance.now() + workPerChunk;
      while (performance.now() < until);
    }
  }
  latencies.push((performance.now() - t0) * 1000);
}

async function run(total: number, inFlight: number, path: string) {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) {
        next++;
        await one(path);
      }
    }),
  );
}

await one(mode === "big" ? "/fetch" : "/fetch"); // connection set up outside the timing
latencies.length = 0;
bytes = 0;
const start = performance.now();
if (mode === "big") await run(4, 4, "/32mb");
else if (mode === "busy") await run(2, 1, "/32mb");
else await run(2000, 32, "/fetch");
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuBefore);
latencies.sort((a, b) => a - b);
const q = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]);
console.log(
  JSON.stringify({
    requests: latencies.length,
    seconds,
    rps: latencies.length / seconds,
    mib_per_s: bytes / seconds / 1048576,
    p50_us: q(0.5),
    p99_us: q(0.99),
    cpu_s: (cpu.user + cpu.system) / 1e6,
  }),
);
process.exit(0);
