"""Seeds for the `server_datagrams` fuzz target from real peers: aioquic's and
ngtcp2's clients fetch a page from our h3-server through a loopback relay that
writes every client-to-server datagram in the target's input form (a 2-byte
big-endian length, then the bytes). Their first flights (a ClientHello from
another TLS stack, other transport parameters, coalesced packets) decrypt in
any fresh server; the rest exercises the paths for packets that do not.

    python3 tests/interop/capture_seeds.py [OUT_DIR]   (default rust-quic/fuzz/corpus/server_datagrams)
"""
import asyncio
import random
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from peers import AIOQUIC, BIN, CERTS, ROOT, Server, free_udp_port, run
from relay import Reorder


def relay(listen_port, server_port, log, stop):
    async def main():
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: Reorder(server_port, random.Random(0), 0.0, log),
                                                           local_addr=("127.0.0.1", listen_port))
        while not stop.is_set():
            await asyncio.sleep(0.05)
        transport.close()
    asyncio.run(main())


def capture(server, argv_for):
    port = free_udp_port()
    log, stop = [], threading.Event()
    t = threading.Thread(target=relay, args=(port, server.port, log, stop))
    t.start()
    try:
        argv, cwd = argv_for(port)
        r = run(argv, timeout=60, cwd=cwd)
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-1000:]
    finally:
        stop.set()
        t.join()
    return b"".join(struct.pack(">H", len(d)) + d for d in log)


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    site = Path(tempfile.mkdtemp())
    (site / "index.html").write_text("<p>seed</p>")
    server = Server([str(BIN / "h3-server"), "--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem"),
                     "--host", "127.0.0.1", "--port", "0", "--root", str(site)])
    try:
        dl = tempfile.mkdtemp()
        peers = {
            "aioquic-get": lambda port: (["python3", str(AIOQUIC / "http3_client.py"), "--insecure", "--output-dir", dl,
                                          f"https://127.0.0.1:{port}/index.html"], str(AIOQUIC)),
            "ngtcp2-get": lambda port: (["gtlsclient", "--quiet", "--exit-on-all-streams-close", "--download", dl,
                                         "127.0.0.1", str(port), f"https://127.0.0.1:{port}/index.html"], None),
        }
        for name, argv_for in peers.items():
            seed = capture(server, argv_for)
            (out / name).write_bytes(seed)
            print(f"{name}: {len(seed)} bytes")
    finally:
        server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "rust-quic" / "fuzz" / "corpus" / "server_datagrams")
