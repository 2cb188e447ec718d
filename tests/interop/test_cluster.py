"""Several server processes on one port (SO_REUSEPORT), each issuing QUIC-LB
connection IDs with its own server ID: the engine attaches a classic-BPF
reuse-port program that sends a short-header packet to the process whose index
in the group is its server ID's first byte, and new connections (long headers)
by the kernel's hash. A client that migrates (ngtcp2's --change-local-addr, a
new source port and connection ID mid-download) keeps reaching its own process.
(NAT rebinding, the same ID from a new port without path validation, fails
against one server as well: quiche takes no packet of the rebound path.)

Without the program the kernel hashes the new 4-tuple, and a moved connection
lands on the other process about half the time (measured with two h3-servers,
40 MB downloads moving after 15 ms: 2 of 8 completed without QUIC-LB, 8 of 8
with it; under CPU load 19 of 20 with it, the one failure a stall the test retries).
"""
import hashlib
import os

import pytest

from peers import BIN, CERTS, Server, bun_serve_h3, free_udp_port, gtlsclient

WORKERS = 2


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster-site")
    (root / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    return root


def start_worker(kind, site, port, index):
    server_id = f"{index:02x}"
    if kind == "h3-server":
        return Server([str(BIN / "h3-server"), "--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem"),
                       "--host", "127.0.0.1", "--port", str(port), "--root", str(site), "--reuse-port",
                       "--quic-lb", f"0:{server_id}"])
    return bun_serve_h3(site, options={"port": port, "reusePort": True, "h3LoadBalancer": {"serverId": server_id}})


@pytest.fixture(scope="module", params=["h3-server", "Bun.serve"])
def cluster(request, site):
    port = free_udp_port()
    # One at a time: a socket's index in the group is its order of binding.
    workers = [start_worker(request.param, site, port, i) for i in range(WORKERS)]
    yield port
    for w in workers:
        w.stop()


def download(port, out):
    """A gtlsclient download of /big.bin that moves to a new local port 15 ms in: its sha256."""
    body, _ = gtlsclient(port, "/big.bin", out, "--change-local-addr=15ms")
    return hashlib.sha256(body).hexdigest()


def test_a_migrating_client_keeps_reaching_its_process(cluster, site, tmp_path):
    want = hashlib.sha256((site / "big.bin").read_bytes()).hexdigest()
    for attempt in range(2):
        # One retry per download: under CPU load about 1 moved download in 20 stalls ~200 ms
        # in even with steering (the server stops receiving; not yet explained, issue 14's
        # note). Without steering half of them fail, so a retry cannot hide its absence
        # for long: both variants pass by chance about 1 run in 3.
        got = download(cluster, tmp_path / f"{attempt}")
        if got != want:
            got = download(cluster, tmp_path / f"{attempt}-retry")
        assert got == want, f"download {attempt} (and its retry)"
