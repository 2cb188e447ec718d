// Minimal stand-in for oven-sh/bun's test harness: what the HTTP/3 suites import.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const certDir = process.env.UPSTREAM_CERTS!;
export const tls = { cert: readFileSync(join(certDir, "cert.pem"), "utf8"), key: readFileSync(join(certDir, "key.pem"), "utf8") };
export const bunExe = () => process.execPath;
const preload = process.env.UPSTREAM_PRELOAD;
export const bunEnv: Record<string, string> = { ...(process.env as Record<string, string>), BUN_DEBUG_QUIET_LOGS: "1", NO_COLOR: "1" };
if (preload) bunEnv.BUN_OPTIONS = `--preload ${preload}`;
else delete bunEnv.BUN_OPTIONS;
export const isASAN = false;
export const isDebug = false;
export const isCI = false;
export function tempDir(name: string, files: Record<string, string | Uint8Array>) {
  const dir = mkdtempSync(join(tmpdir(), name + "-"));
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), content);
  }
  return { toString: () => dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}
