// Run from the repository: bun docs/examples/cluster.ts [WORKERS]
// WORKERS processes (default 2) serve HTTP/1.1 and HTTP/3 on one port (`reusePort`). Each names
// itself in the QUIC connection IDs it issues (`h3LoadBalancer`), so the kernel, steered by the
// engine's reuse-port program, keeps sending a client's packets to its own process even after the
// client's address changes. Workers start one at a time: a process's index in the port's group is
// the order it bound in, and its server ID's first byte must be that index.
const tls = {
  cert: Bun.file(new URL("../../build/certs/cert.pem", import.meta.url).pathname),
  key: Bun.file(new URL("../../build/certs/key.pem", import.meta.url).pathname),
};

const index = process.env.WORKER_INDEX;
if (index !== undefined) {
  const server = Bun.serve({
    port: Number(process.env.PORT),
    reusePort: true,
    h3: true,
    h3LoadBalancer: { serverId: Buffer.from([Number(index)]) },
    tls,
    fetch: req => new Response(`answered by worker ${index} over ${req.url.startsWith("https") ? "HTTPS" : "HTTP"}\n`),
  });
  console.log(`worker ${index} listening on ${server.port}`);
  process.on("SIGTERM", async () => {
    await server.stop(); // graceful: GOAWAY, in-flight requests finish
    process.exit(0);
  });
} else {
  const count = Number(process.argv[2] ?? 2);
  const workers: ReturnType<typeof Bun.spawn>[] = [];
  let port = 0;
  for (let i = 0; i < count; i++) {
    const worker = Bun.spawn([process.execPath, import.meta.path], {
      env: { ...process.env, WORKER_INDEX: String(i), PORT: String(port) },
      stdout: "pipe",
      stderr: "inherit",
    });
    workers.push(worker);
    // Wait for "listening on <port>" before the next one binds (the first one picks the port).
    const reader = worker.stdout.getReader();
    let line = "";
    while (!line.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`worker ${i} exited before listening`);
      line += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    process.stdout.write(line);
    port = Number(line.match(/listening on (\d+)/)![1]);
  }
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`https://127.0.0.1:${port}/`, { protocol: "http3", tls: { rejectUnauthorized: false } } as RequestInit);
    process.stdout.write(await res.text());
  }
  for (const worker of workers) worker.kill("SIGTERM");
  await Promise.all(workers.map(w => w.exited));
  console.log("all workers stopped");
}
