"""Hardening over the wire: aioquic's low-level API (a QUIC stack no one here
wrote) writes deliberately bad or abusive HTTP/3 at our native h3-server and at
Bun.serve({ h3: true }), and each gets the answer RFC 9114 / 9204 or our limits
(QUIC.md, "Limits") name: the connection error code, or the one stream's status.
"""
import asyncio
import subprocess
import json
import ssl
import time

import pytest
from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived
from pylsqpack import Decoder, Encoder

from peers import BIN, CERTS, Server, bun_serve_h3

H3_NO_ERROR = 0x100
H3_FRAME_UNEXPECTED = 0x105
H3_EXCESSIVE_LOAD = 0x107
H3_ID_ERROR = 0x108
H3_REQUEST_CANCELLED = 0x10C
QPACK_ENCODER_STREAM_ERROR = 0x201
CONNECTION_REFUSED = 0x2


def varint(n):
    b = Buffer(capacity=8)
    b.push_uint_var(n)
    return b.data


def frame(ty, payload=b""):
    return varint(ty) + varint(len(payload)) + payload


def request_block(stream_id, path="/echo", method="GET", extra=()):
    fields = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", b"localhost"),
              (b":path", path.encode()), *extra]
    _, block = Encoder().encode(stream_id, fields)
    return block


class RawH3(QuicConnectionProtocol):
    """An HTTP/3 client made of raw stream writes: what it sends is up to the test."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.terminated = asyncio.get_running_loop().create_future()
        self.received = {}

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result(event)
        elif isinstance(event, StreamDataReceived):
            self.received.setdefault(event.stream_id, bytearray()).extend(event.data)

    def send(self, stream_id, data, end=False):
        self._quic.send_stream_data(stream_id, data, end)
        self.transmit()

    def new_stream(self, uni=False):
        return self._quic.get_next_available_stream_id(is_unidirectional=uni)

    def open_control(self):
        """Our control stream with empty SETTINGS; returns its id."""
        sid = self.new_stream(uni=True)
        self.send(sid, varint(0x00) + frame(0x04))
        return sid

    def frames(self, stream_id):
        """The complete HTTP/3 frames received on `stream_id` so far: (type, payload)."""
        buf = Buffer(data=bytes(self.received.get(stream_id, b"")))
        out = []
        while not buf.eof():
            try:
                ty, length = buf.pull_uint_var(), buf.pull_uint_var()
                out.append((ty, buf.pull_bytes(length)))
            except Exception:
                break
        return out

    def status(self, stream_id):
        """The :status of the first HEADERS frame received on `stream_id`, if any."""
        for ty, payload in self.frames(stream_id):
            if ty == 0x01:
                _, headers = Decoder(0, 0).feed_header(stream_id, payload)
                return int(dict(headers)[b":status"])
        return None

    async def get(self, path):
        """A whole GET on a new stream: (stream id, status)."""
        sid = self.new_stream()
        self.send(sid, frame(0x01, request_block(sid, path)), end=True)
        return sid, await self.wait_status(sid)

    def body(self, stream_id):
        return b"".join(p for ty, p in self.frames(stream_id) if ty == 0x00)

    async def wait_status(self, stream_id, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (s := self.status(stream_id)) is not None:
                return s
            await asyncio.sleep(0.02)
        return None

    async def wait_close(self, timeout=5.0):
        try:
            return await asyncio.wait_for(asyncio.shield(self.terminated), timeout)
        except asyncio.TimeoutError:
            return None


def client_config(idle_timeout=10.0):
    return QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE,
                             server_name="localhost", idle_timeout=idle_timeout)


def run(port, scenario, timeout=20):
    async def main():
        async with connect("127.0.0.1", port, configuration=client_config(), create_protocol=RawH3) as client:
            await client.wait_connected()
            return await scenario(client)
    return asyncio.run(asyncio.wait_for(main(), timeout))


LIMITS = {"requestHeadTimeout": 0.4, "stalledRequestsPerConnection": 2, "streamResetsPerSecond": 20,
          "connectionsPerAddress": 0, "maxConnections": 0}


@pytest.fixture(scope="module", params=["h3-server", "Bun.serve"])
def server(request, tmp_path_factory):
    if request.param == "h3-server":
        s = Server([str(BIN / "h3-server"), "--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem"),
                    "--host", "127.0.0.1", "--port", "0", "--root", str(tmp_path_factory.mktemp("root"))])
    else:
        s = bun_serve_h3(tmp_path_factory.mktemp("root"))
        s.serves_stats = True
    yield s
    s.stop()


@pytest.fixture(scope="module")
def limited():
    """Bun.serve with short h3Limits and a 1 s idleTimeout."""
    import tempfile
    s = bun_serve_h3(tempfile.mkdtemp(), limits=LIMITS, idle_timeout=1)
    yield s
    s.stop()


# ---- RFC 9114 / 9204 connection errors, both servers ----

@pytest.mark.parametrize("ty", [0x02, 0x06, 0x08, 0x09])
def test_reserved_http2_frame_on_the_control_stream_is_frame_unexpected(server, ty):
    async def scenario(c):
        c.send(c.open_control(), frame(ty))
        return (await c.wait_close()).error_code
    assert run(server.port, scenario) == H3_FRAME_UNEXPECTED


def test_cancel_push_is_an_id_error(server):
    async def scenario(c):
        c.send(c.open_control(), frame(0x03, varint(1)))
        return (await c.wait_close()).error_code
    assert run(server.port, scenario) == H3_ID_ERROR


def test_a_growing_client_goaway_is_an_id_error(server):
    async def scenario(c):
        control = c.open_control()
        c.send(control, frame(0x07, varint(4)))
        await asyncio.sleep(0.2)
        c.send(control, frame(0x07, varint(8)))
        return (await c.wait_close()).error_code
    assert run(server.port, scenario) == H3_ID_ERROR


def test_a_qpack_capacity_above_zero_is_an_encoder_stream_error(server):
    async def scenario(c):
        c.open_control()
        encoder = c.new_stream(uni=True)
        c.send(encoder, varint(0x02) + bytes([0x3F, 0xE1, 0x1F]))  # Set Dynamic Table Capacity 4096
        return (await c.wait_close()).error_code
    assert run(server.port, scenario) == QPACK_ENCODER_STREAM_ERROR


def test_a_headers_frame_declaring_a_megabyte_gets_431_at_once(server):
    async def scenario(c):
        c.open_control()
        sid = c.new_stream()
        c.send(sid, varint(0x01) + varint(1_000_000) + b"\x00\x00")
        status = await c.wait_status(sid, timeout=2)
        # The connection lives: the next request is served.
        _, next_status = await c.get("/nope")
        return status, next_status, c.terminated.done()
    assert run(server.port, scenario) == (431, 404, False)


def test_streams_past_max_streams_close_the_connection_with_stream_limit_error(server):
    STREAM_LIMIT_ERROR = 0x4

    async def scenario(c):
        c.open_control()
        c._quic._remote_max_streams_bidi = 10_000  # aioquic would otherwise hold them back
        for _ in range(600):
            sid = c.new_stream()
            c._quic.send_stream_data(sid, frame(0x01, request_block(sid, "/nope")), False)  # never ended
        c.transmit()
        return (await c.wait_close()).error_code
    assert run(server.port, scenario) == STREAM_LIMIT_ERROR
    if server.__dict__.get("serves_stats"):
        # Counted when the connection ends, after its closing period (3 PTOs): poll for it.
        for _ in range(20):
            if quic_stats(server)["connectionsClosedForLoad"] >= 1:
                break
            time.sleep(0.1)
        assert quic_stats(server)["connectionsClosedForLoad"] >= 1


def quic_stats(server):
    """Bun.serve's server.quic.stats(), read over HTTP/3 (bun_h3_server.ts /quic-stats)."""
    async def scenario(c):
        c.open_control()
        sid, status = await c.get("/quic-stats")
        assert status == 200
        await asyncio.sleep(0.1)
        return json.loads(c.body(sid))
    return run(server.port, scenario)


# ---- limits, on Bun.serve with h3Limits ----

def test_a_trickled_head_gets_408_and_a_second_stall_closes_the_connection(limited):
    async def scenario(c):
        c.open_control()
        block = request_block(0)
        first = c.new_stream()
        started = time.monotonic()
        c.send(first, varint(0x01) + varint(len(block)) + block[:2])
        status = await c.wait_status(first)
        waited = time.monotonic() - started
        assert not c.terminated.done()
        second = c.new_stream()
        c.send(second, varint(0x01) + varint(len(block)) + block[:2])
        return status, waited, (await c.wait_close()).error_code
    before = quic_stats(limited)
    status, waited, code = run(limited.port, scenario)
    assert (status, code) == (408, H3_EXCESSIVE_LOAD)
    assert waited >= 0.3
    after = quic_stats(limited)
    assert after["requestsTimedOut"] - before["requestsTimedOut"] == 2
    assert after["connectionsClosedForLoad"] - before["connectionsClosedForLoad"] == 1


def test_thirty_slow_loris_connections_are_all_closed(limited):
    """The issue's scenario: 30 connections trickling request heads a few bytes at a
    time, which once were never timed out (the trickle kept QUIC's idle timer fresh)."""
    async def loris(c):
        c.open_control()
        block = request_block(0)
        while not c.terminated.done():
            sid = c.new_stream()
            c.send(sid, varint(0x01) + varint(len(block)))
            for byte in block[:-1]:  # never the last byte
                if c.terminated.done():
                    break
                try:
                    c.send(sid, bytes([byte]))
                except (ValueError, RuntimeError):  # 408 and STOP_SENDING: aioquic ended or reset this stream
                    break
                await asyncio.sleep(0.05)
        return c.terminated.result().error_code

    async def main():
        async def one():
            async with connect("127.0.0.1", limited.port, configuration=client_config(30.0),
                               create_protocol=RawH3) as c:
                await c.wait_connected()
                return await loris(c)
        return await asyncio.gather(*(one() for _ in range(30)))

    started = time.monotonic()
    codes = asyncio.run(asyncio.wait_for(main(), 20))
    assert codes == [H3_EXCESSIVE_LOAD] * 30
    assert time.monotonic() - started < 10


def test_a_rapid_reset_flood_closes_the_connection(limited):
    async def scenario(c):
        c.open_control()
        for _ in range(200):
            sid = c.new_stream()
            c.send(sid, frame(0x01, request_block(sid, "/echo", "POST")))
            c._quic.reset_stream(sid, H3_REQUEST_CANCELLED)
            c.transmit()
            await asyncio.sleep(0)
            if c.terminated.done():
                break
        return (await c.wait_close()).error_code
    before = quic_stats(limited)["connectionsClosedForLoad"]
    assert run(limited.port, scenario) == H3_EXCESSIVE_LOAD
    assert quic_stats(limited)["connectionsClosedForLoad"] == before + 1


def test_a_connection_that_only_pings_is_closed_after_the_idle_timeout(limited):
    async def scenario(c):
        c.open_control()
        assert (await c.get("/nope"))[1] == 404
        started = time.monotonic()
        while not c.terminated.done() and time.monotonic() - started < 6:
            await c.ping()  # PING every 0.2 s: QUIC's idle timer never runs out
            await asyncio.sleep(0.2)
        return (await c.wait_close(0.1)), time.monotonic() - started
    before = quic_stats(limited)["connectionsClosedIdle"]
    closed, after = run(limited.port, scenario)
    assert closed is not None and closed.error_code == H3_NO_ERROR
    assert 0.8 <= after < 4
    assert quic_stats(limited)["connectionsClosedIdle"] >= before + 1


# ---- Version Negotiation over real UDP (RFC 9000 6, RFC 8999 6), both servers ----

def test_every_unknown_version_long_header_gets_version_negotiation_over_udp(server):
    import socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2.0)
    try:
        for first in (0x80, 0xc0, 0xd3, 0xe7, 0xff):  # the version-specific bits vary; the long-header bit is set
            for version, dcid, scid in ((0x1A2A3A4A, b"\xd0" * 8, b"\xc0" * 8), (0x6B3343CF, b"\xd1" * 20, b""),
                                        (0xFF00001D, b"\xd2" * 40, b"\xc2" * 30)):
                datagram = bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
                sock.sendto(datagram.ljust(1200, b"\x5a"), ("127.0.0.1", server.port))
                answer, _ = sock.recvfrom(2048)
                assert answer[0] & 0x80 and answer[1:5] == b"\0\0\0\0", answer[:8]
                at = 6 + answer[5]
                assert answer[6:at] == scid and answer[at + 1:at + 1 + answer[at]] == dcid
                versions = answer[at + 1 + answer[at]:]
                assert b"\x00\x00\x00\x01" in [versions[i:i + 4] for i in range(0, len(versions), 4)]
                assert len(answer) < 1200
        # Too small to start a connection: no answer (no amplification of spoofed packets).
        sock.sendto(bytes([0xc0]) + (0x1A2A3A4A).to_bytes(4, "big") + b"\x08" + b"\x01" * 8 + b"\x00", ("127.0.0.1", server.port))
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recvfrom(2048)
    finally:
        sock.close()


# ---- stateless reset (RFC 9000 10.3), against ngtcp2's client ----

@pytest.mark.parametrize("same_key", [True, False])
def test_a_restarted_server_resets_the_connection_it_lost(same_key, tmp_path):
    """ngtcp2 completes its handshake, holds its request for a second, and meanwhile the
    server dies (SIGKILL: no CONNECTION_CLOSE) and a new one takes its port. The request
    reaches a server without its connection, which answers with a Stateless Reset: the
    client recognizes the token (and drains at once) only when the new server derives
    tokens from the same key (h3-server --reset-key)."""
    def h3_server(port, key):
        return Server([str(BIN / "h3-server"), "--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem"),
                       "--host", "127.0.0.1", "--port", str(port), "--root", str(tmp_path), "--reset-key", key])
    first = h3_server(0, "ab" * 32)
    port = first.port
    client = subprocess.Popen(["gtlsclient", "--exit-on-all-streams-close", "--delay-stream=1s", "--timeout=4s",
                               "127.0.0.1", str(port), f"https://127.0.0.1:{port}/"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.4)  # the handshake is done; the request is not sent yet
    first.proc.kill()
    first.proc.wait()
    second = h3_server(port, "ab" * 32 if same_key else "cd" * 32)
    try:
        assert second.port == port
        began = time.monotonic()
        out, _ = client.communicate(timeout=30)
        took = time.monotonic() - began
    finally:
        second.stop()
    recognized = b" SR token=" in out
    assert recognized == same_key, out[-2000:].decode(errors="replace")
    if same_key:
        assert took < 2.0, f"drained at once after the reset, not at the timeout ({took:.1f} s)"
