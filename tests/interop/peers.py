"""Starting and stopping the peers the interop tests talk to (none written here)."""
import base64
import hashlib
import json
import os
import re
import select
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "build" / "bin"
CERTS = ROOT / "build" / "certs"
AIOQUIC = ROOT / "build" / "peers" / "aioquic-1.7.2" / "examples"
BUN = ROOT / "node_modules" / ".bin" / "bun"
HERE = Path(__file__).resolve().parent


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spki_hash(cert: Path) -> str:
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(cert)], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Server:
    """A server process; `port` is read from its output or given."""

    def __init__(self, argv, port=None, ready=None, cwd=None, env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        self.port = port
        self.output = b""
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: {self.output.decode(errors='replace')}")
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                self.output += chunk
                m = re.search(rb"listening on (\d+)", self.output)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    return
            if ready and ready(self):
                return
        raise RuntimeError(f"{argv[0]} did not start: {self.output.decode(errors='replace')}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def bun_serve_h3(root, limits=None, idle_timeout=None, options=None):
    """Bun.serve({ h3: true }) on rust-quic (tests/interop/bun_h3_server.ts, with the
    preload) serving the files of `root`; none of the caller's BUN_* settings.
    `limits` (a dict) becomes h3Limits, `idle_timeout` (seconds) idleTimeout, and
    `options` (a dict) is spread into the options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUN_")}
    if options is not None:
        env["H3_OPTIONS"] = json.dumps(options)
    if limits is not None:
        env["H3_LIMITS"] = json.dumps(limits)
    if idle_timeout is not None:
        env["IDLE_TIMEOUT"] = str(idle_timeout)
    return Server([str(BUN), "--no-install", "--preload", str(ROOT / "src" / "js" / "preload.ts"),
                   str(HERE / "bun_h3_server.ts"), str(CERTS / "cert.pem"), str(CERTS / "key.pem"), str(root)],
                  env=env, cwd=str(HERE))


def udp_bound(port):
    def check(_server):
        out = subprocess.run(["ss", "-uln"], capture_output=True, text=True).stdout
        return f":{port} " in out
    return check


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, timeout=timeout, **kw)


def gtlsclient(port, path, out, *extra, quiet=True):
    """ngtcp2's client downloads https://127.0.0.1:port/path into the directory `out`
    (made if missing) with `extra` options; it must exit 0. Returns (body, log)."""
    out.mkdir(parents=True, exist_ok=True)
    argv = ["gtlsclient", *(["--quiet"] if quiet else []), "--exit-on-all-streams-close", "--timeout=20s",
            *extra, "--download", str(out), "127.0.0.1", str(port), f"https://127.0.0.1:{port}{path}"]
    r = run(argv, timeout=60)
    log = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, log[-2000:]
    return (out / (os.path.basename(path) or "index.html")).read_bytes(), log
