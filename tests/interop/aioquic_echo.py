#!/usr/bin/env python3
"""A raw-QUIC echo peer on aioquic (no HTTP/3), ALPN "bun-quic", for Bun.quic interop.

    aioquic_echo.py server CERT KEY [--ask-client-cert]
                                             prints "listening on PORT"; echoes every stream
                                             (FIN for FIN) and every datagram; with
                                             --ask-client-cert it asks each client for a
                                             certificate and prints "client certificate: <subject>"
                                             (or "client certificate: none") after the handshake
    aioquic_echo.py client PORT MESSAGE      opens a stream to 127.0.0.1:PORT, sends MESSAGE
                                             with FIN, sends a datagram, prints
                                             "stream: <reply>" and "datagram: <reply>"
"""
import asyncio
import socket
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic import tls
from aioquic.quic.events import DatagramFrameReceived, HandshakeCompleted, StreamDataReceived

ALPN = ["bun-quic"]
ASK_CLIENT_CERT = "--ask-client-cert" in sys.argv


def ask_for_client_certificates():
    """aioquic can send a CertificateRequest only through a flag of its TLS context
    (it reads the certificate and checks its signature, not its chain)."""
    init = tls.Context.__init__

    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if not self._is_client:
            self._request_client_certificate = True

    tls.Context.__init__ = patched


class EchoServer(QuicConnectionProtocol):
    def quic_event_received(self, event):
        if isinstance(event, HandshakeCompleted) and ASK_CLIENT_CERT:
            peer = self._quic.tls._peer_certificate
            print(f"client certificate: {peer.subject.rfc4514_string() if peer else 'none'}", flush=True)
        if isinstance(event, StreamDataReceived):
            self._quic.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)
            self.transmit()
        elif isinstance(event, DatagramFrameReceived):
            self._quic.send_datagram_frame(event.data)
            self.transmit()


class EchoClient(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reply = bytearray()
        self.stream_done = asyncio.get_event_loop().create_future()
        self.datagram = asyncio.get_event_loop().create_future()

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            self.reply += event.data
            if event.end_stream and not self.stream_done.done():
                self.stream_done.set_result(bytes(self.reply))
        elif isinstance(event, DatagramFrameReceived) and not self.datagram.done():
            self.datagram.set_result(event.data)


async def run_server(cert, key):
    config = QuicConfiguration(is_client=False, alpn_protocols=ALPN, max_datagram_frame_size=65536)
    config.load_cert_chain(cert, key)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await serve("127.0.0.1", port, configuration=config, create_protocol=EchoServer)
    print(f"listening on {port}", flush=True)
    await asyncio.Future()


async def run_client(port, message):
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, max_datagram_frame_size=65536, verify_mode=0)
    async with connect("127.0.0.1", port, configuration=config, create_protocol=EchoClient) as client:
        stream_id = client._quic.get_next_available_stream_id()
        client._quic.send_stream_data(stream_id, message.encode(), end_stream=True)
        client._quic.send_datagram_frame(b"dgram:" + message.encode())
        client.transmit()
        reply = await asyncio.wait_for(client.stream_done, 10)
        datagram = await asyncio.wait_for(client.datagram, 10)
        print(f"stream: {reply.decode()}", flush=True)
        print(f"datagram: {datagram.decode()}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        if ASK_CLIENT_CERT:
            ask_for_client_certificates()
        asyncio.run(run_server(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(run_client(int(sys.argv[2]), sys.argv[3]))
