"""A UDP relay on loopback that reorders: a seeded fraction of the datagrams,
both ways, is held back 5-25 ms (none lost, none duplicated).

    python3 relay.py LISTEN_PORT SERVER_PORT SEED [FRACTION]   (prints "relay ready")
"""
import asyncio
import random
import sys


class Reorder(asyncio.DatagramProtocol):
    """Relays between one client and the server; `log`, when given, collects every
    client-to-server datagram (tests/interop/capture_seeds.py)."""

    def __init__(self, server_port, rng, fraction, log=None):
        self.server = ("127.0.0.1", server_port)
        self.client = None
        self.rng = rng
        self.fraction = fraction
        self.log = log

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if addr == self.server:
            dest = self.client
        else:
            self.client, dest = addr, self.server
            if self.log is not None:
                self.log.append(data)
        if dest is None:
            return
        if self.rng.random() < self.fraction:
            asyncio.get_running_loop().call_later(self.rng.uniform(0.005, 0.025), self.transport.sendto, data, dest)
        else:
            self.transport.sendto(data, dest)


async def main(listen_port, server_port, seed, fraction):
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Reorder(server_port, random.Random(seed), fraction),
                                        local_addr=("127.0.0.1", listen_port))
    print("relay ready", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    fraction = float(sys.argv[4]) if len(sys.argv) > 4 else 0.2
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), fraction))
