// The cluster example (docs/examples/cluster.ts): processes sharing one port with
// reusePort and h3LoadBalancer serve over HTTP/3 and stop cleanly. (That a migrating
// client keeps reaching its process is tests/interop/test_cluster.py's, with ngtcp2.)
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT } from "./harness";

test("the cluster example starts its workers on one port, is served by them, and exits", async () => {
  const proc = Bun.spawn([process.execPath, join(ROOT, "docs", "examples", "cluster.ts"), "2"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill(), 20_000);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  const ports = [...out.matchAll(/worker (\d) listening on (\d+)/g)].map(m => [m[1], m[2]]);
  expect(ports.map(([w]) => w)).toEqual(["0", "1"]);
  expect(ports[0][1]).toBe(ports[1][1]); // one port
  expect(out.match(/answered by worker [01] over HTTPS/g)?.length).toBe(4);
  expect(out).toContain("all workers stopped");
  expect([code, err]).toEqual([0, ""]);
}, 30_000);
