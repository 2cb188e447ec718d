"""Downloads through a reordering relay (a fifth of the datagrams held back
5-25 ms, nothing lost), by ngtcp2's client, from the native h3-server and from
Bun.serve({ h3: true }). A stall here once hit 2-3 of 8 Bun.serve runs: a
stream left with less credit than a DATA frame header wrote nothing, so QUIC
never told the peer it was blocked and the peer never granted more.
Bounded: 4 seeded runs per server, each with its own deadline."""
import subprocess
import sys

import pytest

from peers import BIN, CERTS, HERE, Server, bun_serve_h3, free_udp_port, run, sha256

CERT, KEY = CERTS / "cert.pem", CERTS / "key.pem"
SIZE = 5 * 1024 * 1024
SEEDS = [1, 2, 3, 4]


@pytest.fixture(scope="module")
def big_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("reorder-site")
    (root / "big.bin").write_bytes(bytes((i * 7 + 3) % 253 for i in range(SIZE)))
    return root


@pytest.fixture(scope="module")
def native_server(big_site):
    s = Server([str(BIN / "h3-server"), "--cert", str(CERT), "--key", str(KEY), "--host", "127.0.0.1",
                "--port", "0", "--root", str(big_site)])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bun_server(big_site):
    s = bun_serve_h3(big_site)
    yield s
    s.stop()


def download_through_relay(server, seed, tmp_path):
    port = free_udp_port()
    relay = subprocess.Popen([sys.executable, str(HERE / "relay.py"), str(port), str(server.port), str(seed)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert relay.stdout.readline().strip() == "relay ready"
        r = run(["gtlsclient", "--quiet", "--exit-on-all-streams-close", "--timeout=10s", "--download", str(tmp_path),
                 "127.0.0.1", str(port), f"https://127.0.0.1:{port}/big.bin"], timeout=30)
        got = (tmp_path / "big.bin").read_bytes() if (tmp_path / "big.bin").exists() else b""
        return r.returncode, got
    finally:
        relay.kill()
        relay.wait()


@pytest.mark.parametrize("seed", SEEDS)
def test_native_h3_server_under_reordering(native_server, big_site, seed, tmp_path):
    code, got = download_through_relay(native_server, seed, tmp_path)
    assert (code, len(got)) == (0, SIZE)
    assert sha256(got) == sha256((big_site / "big.bin").read_bytes())


@pytest.mark.parametrize("seed", SEEDS)
def test_bun_serve_h3_under_reordering(bun_server, big_site, seed, tmp_path):
    code, got = download_through_relay(bun_server, seed, tmp_path)
    assert (code, len(got)) == (0, SIZE)
    assert sha256(got) == sha256((big_site / "big.bin").read_bytes())
