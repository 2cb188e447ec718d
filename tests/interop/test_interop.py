"""Interop of the engine (through h3-server and h3-client, both on the C ABI)
with HTTP/3 stacks no one here wrote: aioquic, ngtcp2, Chromium, Bun's lsquic.

`python3 scripts/interop.py` runs this file and writes docs/interop.md.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from peers import (AIOQUIC, BIN, BUN, CERTS, HERE, ROOT, Server, bun_serve_h3, free_udp_port, gtlsclient, run, sha256, spki_hash,
                   udp_bound)

CERT, KEY = CERTS / "cert.pem", CERTS / "key.pem"
MB = 1024 * 1024


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    big = bytes((i * 31 + 7) % 251 for i in range(MB))
    (root / "big.bin").write_bytes(big)
    (root / "post.bin").write_bytes(big[: 300 * 1024])
    # Chromium loads this page over HTTP/3, then fetches 1 MB and prints its hash.
    (root / "index.html").write_text(
        """<!doctype html><html><body><p id="page">rust-quic page</p><p id="result">pending</p>
<script>
fetch('/big.bin').then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b)).then(h => {
  const hex = [...new Uint8Array(h)].map(x => x.toString(16).padStart(2, '0')).join('');
  document.getElementById('result').textContent = 'sha256=' + hex;
}).catch(e => { document.getElementById('result').textContent = 'error ' + e; });
</script></body></html>"""
    )
    return root


@pytest.fixture(scope="module")
def our_server(site):
    s = Server([str(BIN / "h3-server"), "--cert", str(CERT), "--key", str(KEY), "--host", "127.0.0.1",
                "--port", "0", "--root", str(site)])
    yield s
    s.stop()


def url(server, path):
    return f"https://127.0.0.1:{server.port}{path}"


# ---- peers as clients, our server ----

def aioquic_client(tmp_path, target, data=None):
    argv = ["python3", str(AIOQUIC / "http3_client.py"), "--insecure", "--output-dir", str(tmp_path), target]
    if data is not None:
        argv[2:2] = ["--data", data]
    r = run(argv, timeout=60, cwd=str(AIOQUIC))
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    name = os.path.basename(target.split("://", 1)[1].split("/", 1)[1]) or "index.html"
    return (tmp_path / name).read_bytes()


def test_aioquic_client_gets_page(our_server, site, tmp_path):
    assert aioquic_client(tmp_path, url(our_server, "/index.html")) == (site / "index.html").read_bytes()


def test_aioquic_client_downloads_1mb(our_server, site, tmp_path):
    assert sha256(aioquic_client(tmp_path, url(our_server, "/big.bin"))) == sha256((site / "big.bin").read_bytes())


def test_aioquic_client_posts_echo(our_server, tmp_path):
    data = "q" * 100_000
    assert aioquic_client(tmp_path, url(our_server, "/echo"), data=data) == data.encode()


def ngtcp2_get(tmp_path, server, path, data_file=None):
    extra = ["--data", str(data_file)] if data_file else []
    return gtlsclient(server.port, path, tmp_path, *extra)[0]


def test_ngtcp2_client_downloads_1mb(our_server, site, tmp_path):
    assert sha256(ngtcp2_get(tmp_path, our_server, "/big.bin")) == sha256((site / "big.bin").read_bytes())


def test_ngtcp2_client_posts_echo(our_server, site, tmp_path):
    assert ngtcp2_get(tmp_path, our_server, "/echo", data_file=site / "post.bin") == (site / "post.bin").read_bytes()


def chromium_dump(target_port, path, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/setup.sh --peers)")
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-quic",
            f"--origin-to-force-quic-on=127.0.0.1:{target_port}",
            f"--ignore-certificate-errors-spki-list={spki_hash(CERT)}",
            "--virtual-time-budget=15000", "--dump-dom", f"https://127.0.0.1:{target_port}{path}"]
    r = run(argv, timeout=90)
    return r.stdout.decode(errors="replace")


def test_chromium_loads_page_and_1mb_over_http3(our_server, site, tmp_path):
    # Our server has no TCP listener: a page that loads came over HTTP/3.
    dom = chromium_dump(our_server.port, "/index.html", tmp_path)
    assert "rust-quic page" in dom, dom[-2000:]
    assert f"sha256={sha256((site / 'big.bin').read_bytes())}" in dom, dom[-2000:]


def bun_native(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUN_")}
    # No preload and no bunfig: this is Bun's own lsquic stack.
    r = run([str(BUN), "--no-install", *args], timeout=60, env=env, cwd=str(HERE))
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")[-2000:]
    return r.stdout.decode().split()


def test_bun_native_client_downloads_1mb(our_server, site):
    status, length, digest = bun_native("bun_native_fetch.mjs", url(our_server, "/big.bin"))
    assert (status, int(length), digest) == ("200", MB, sha256((site / "big.bin").read_bytes()))


def test_bun_native_client_posts_echo(our_server, site):
    status, length, digest = bun_native("bun_native_fetch.mjs", url(our_server, "/echo"), str(site / "post.bin"))
    assert (status, digest) == ("200", sha256((site / "post.bin").read_bytes()))


def test_dead_udp_port_fails_fast():
    # Upstream's client waits for a timeout; ours hears the ICMP port unreachable.
    import time
    port = free_udp_port()
    start = time.monotonic()
    r = run([str(BIN / "h3-client"), "--insecure", f"https://127.0.0.1:{port}/"], timeout=30)
    assert r.returncode == 1
    assert b"refused" in r.stderr.lower(), r.stderr
    assert time.monotonic() - start < 2


# ---- peers as clients, Bun.serve({ h3: true }) on rust-quic (the runtime module) ----

@pytest.fixture(scope="module")
def bun_h3_server(site):
    s = bun_serve_h3(site)
    yield s
    s.stop()


def test_aioquic_client_against_bun_serve_h3(bun_h3_server, site, tmp_path):
    assert sha256(aioquic_client(tmp_path, url(bun_h3_server, "/big.bin"))) == sha256((site / "big.bin").read_bytes())
    assert aioquic_client(tmp_path, url(bun_h3_server, "/echo"), data="z" * 50_000) == b"z" * 50_000


def test_ngtcp2_client_against_bun_serve_h3(bun_h3_server, site, tmp_path):
    # (gtlsclient --data sends a GET with a body, which a Fetch Request cannot carry.)
    assert sha256(ngtcp2_get(tmp_path, bun_h3_server, "/big.bin")) == sha256((site / "big.bin").read_bytes())


def test_chromium_against_bun_serve_h3(bun_h3_server, site, tmp_path):
    # The page comes over HTTP/3 (forced QUIC for the origin), then fetches 1 MB.
    dom = chromium_dump(bun_h3_server.port, "/index.html", tmp_path)
    assert "rust-quic page" in dom, dom[-2000:]
    assert f"sha256={sha256((site / 'big.bin').read_bytes())}" in dom, dom[-2000:]


# ---- our client, peers as servers ----

def h3_client(target, *args):
    r = run([str(BIN / "h3-client"), "--insecure", *args, target], timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def aioquic_server():
    port = free_udp_port()
    s = Server(["python3", str(AIOQUIC / "http3_server.py"), "--certificate", str(CERT), "--private-key", str(KEY),
                "--host", "127.0.0.1", "--port", str(port), "demo:app"], port=port, ready=udp_bound(port),
               cwd=str(AIOQUIC))
    yield s
    s.stop()


def test_our_client_gets_aioquic_page(aioquic_server):
    assert b"aioquic" in h3_client(url(aioquic_server, "/"))


def test_our_client_downloads_1mb_from_aioquic(aioquic_server):
    assert h3_client(url(aioquic_server, f"/{MB}")) == b"Z" * MB


def test_our_client_posts_to_aioquic_echo(aioquic_server, site):
    assert h3_client(url(aioquic_server, "/echo"), "--data", f"@{site / 'post.bin'}") == (site / "post.bin").read_bytes()


@pytest.fixture(scope="module")
def ngtcp2_server(site):
    port = free_udp_port()
    s = Server(["gtlsserver", "--quiet", f"--htdocs={site}", "127.0.0.1", str(port), str(KEY), str(CERT)],
               port=port, ready=udp_bound(port))
    yield s
    s.stop()


def test_our_client_downloads_1mb_from_ngtcp2(ngtcp2_server, site):
    assert sha256(h3_client(url(ngtcp2_server, "/big.bin"))) == sha256((site / "big.bin").read_bytes())


@pytest.fixture(scope="module")
def bun_server(site):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUN_")}
    s = Server([str(BUN), "--no-install", str(HERE / "bun_native_server.mjs"), str(CERT), str(KEY), str(site)],
               env=env, cwd=str(HERE))
    yield s
    s.stop()


def test_our_client_downloads_1mb_from_bun_native(bun_server, site):
    assert sha256(h3_client(url(bun_server, "/big.bin"))) == sha256((site / "big.bin").read_bytes())


def test_our_client_posts_to_bun_native_echo(bun_server, site):
    assert h3_client(url(bun_server, "/echo"), "--data", f"@{site / 'post.bin'}") == (site / "post.bin").read_bytes()


# ---- TLS key logging (SSLKEYLOGFILE): our secrets are the peer's ----

def key_lines(path):
    """{(label, client random): secret} of an NSS key log."""
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            out[(parts[0], parts[1].lower())] = parts[2].lower()
    return out


QUIC_SECRETS = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
                "SERVER_TRAFFIC_SECRET_0"}


def test_server_key_log_matches_aioquic_clients(site, tmp_path):
    ours = tmp_path / "server.keys"
    s = Server([str(BIN / "h3-server"), "--cert", str(CERT), "--key", str(KEY), "--host", "127.0.0.1", "--port", "0",
                "--root", str(site)], env={**os.environ, "SSLKEYLOGFILE": str(ours)})
    try:
        theirs = tmp_path / "client.keys"
        argv = ["python3", str(AIOQUIC / "http3_client.py"), "--insecure", "--secrets-log", str(theirs),
                "--output-dir", str(tmp_path), url(s, "/index.html")]
        r = run(argv, timeout=60, cwd=str(AIOQUIC))
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    finally:
        s.stop()
    mine, peer = key_lines(ours), key_lines(theirs)
    assert {label for label, _ in peer} >= QUIC_SECRETS
    # Every secret aioquic derived for the connection, we logged the same (one connection, one client random).
    assert {k: v for k, v in peer.items() if k[0] in QUIC_SECRETS} == {k: v for k, v in mine.items() if k[0] in QUIC_SECRETS}


def test_client_key_log_matches_aioquic_servers(tmp_path):
    port = free_udp_port()
    theirs = tmp_path / "server.keys"
    s = Server(["python3", str(AIOQUIC / "http3_server.py"), "--certificate", str(CERT), "--private-key", str(KEY),
                "--host", "127.0.0.1", "--port", str(port), "--secrets-log", str(theirs), "demo:app"], port=port,
               ready=udp_bound(port), cwd=str(AIOQUIC))
    try:
        ours = tmp_path / "client.keys"
        r = run([str(BIN / "h3-client"), "--insecure", f"https://127.0.0.1:{port}/"], timeout=30,
                env={**os.environ, "SSLKEYLOGFILE": str(ours)})
        assert r.returncode == 0 and b"aioquic" in r.stdout, r.stderr.decode(errors="replace")[-2000:]
    finally:
        s.stop()
    mine, peer = key_lines(ours), key_lines(theirs)
    assert {label for label, _ in mine} >= QUIC_SECRETS
    assert {k: v for k, v in peer.items() if k[0] in QUIC_SECRETS} == {k: v for k, v in mine.items() if k[0] in QUIC_SECRETS}
