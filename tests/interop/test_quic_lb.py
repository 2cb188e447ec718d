"""QUIC-LB connection IDs (draft-ietf-quic-load-balancers, plaintext): every
connection ID our server issues, the one its handshake chose and those it
sends in NEW_CONNECTION_ID frames, carries the configured server ID, as a
client no one here wrote (aioquic) receives them; requests work across them.
"""
import pytest

from peers import BIN, CERTS, Server, bun_serve_h3
from test_hardening import run

SERVER_ID = bytes.fromhex("5e01")
CONFIG_ID = 2


def decodes_to_our_server(cid):
    """What a QUIC-LB plaintext balancer reads: config rotation bits, length, server ID."""
    return len(cid) == 16 and cid[0] >> 5 == CONFIG_ID and (cid[0] & 0x1F) + 1 == len(cid) and cid[1:3] == SERVER_ID


@pytest.fixture(params=["h3-server", "Bun.serve"])
def server(request, tmp_path):
    (tmp_path / "hi.txt").write_text("hello\n")
    if request.param == "h3-server":
        s = Server([str(BIN / "h3-server"), "--cert", str(CERTS / "cert.pem"), "--key", str(CERTS / "key.pem"),
                    "--host", "127.0.0.1", "--port", "0", "--root", str(tmp_path),
                    "--quic-lb", f"{CONFIG_ID}:{SERVER_ID.hex()}"])
    else:
        s = bun_serve_h3(tmp_path, options={"h3LoadBalancer": {"serverId": SERVER_ID.hex(), "configId": CONFIG_ID}})
    yield s
    s.stop()


def test_every_connection_id_the_server_issues_names_it(server):
    async def scenario(client):
        quic = client._quic
        client.open_control()
        _, status = await client.get("/hi.txt")
        issued = [quic._peer_cid.cid] + [c.cid for c in quic._peer_cid_available]
        # Move to another of the server's IDs (as a migrating client would) and ask again.
        quic.change_connection_id()
        _, again = await client.get("/hi.txt")
        return status, again, issued, quic._peer_cid.cid

    status, again, issued, now = run(server.port, scenario)
    assert (status, again) == (200, 200)
    assert len(issued) >= 2, "the server sent spare connection IDs"
    assert all(decodes_to_our_server(c) for c in issued), [c.hex() for c in issued]
    assert decodes_to_our_server(now) and now != issued[0]
