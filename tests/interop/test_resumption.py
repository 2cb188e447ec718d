"""Session resumption and 0-RTT between our server (h3-server, on the C ABI)
and clients no one here wrote: aioquic's example client (`--session-ticket`,
`--zero-rtt`) and ngtcp2's (`--session-file`, `--tp-file`).

The server's `/early-data` answers "early" to a request that reached it in
0-RTT (the engine adds `early-data: 1`, RFC 8470) and "after-handshake" to
any other, so the client's own download says where its request ran.
"""
import os
import secrets

from peers import AIOQUIC, BIN, CERTS, Server, free_udp_port, gtlsclient, run

CERT, KEY = CERTS / "cert.pem", CERTS / "key.pem"


def h3_server(tmp_path, port=0, *extra):
    return Server([str(BIN / "h3-server"), "--cert", str(CERT), "--key", str(KEY), "--host", "127.0.0.1",
                   "--port", str(port), "--root", str(tmp_path), *extra])


def aioquic(tmp_path, server, path, ticket, zero_rtt=False, data=None):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    argv = ["python3", str(AIOQUIC / "http3_client.py"), "--insecure", "--session-ticket", str(ticket),
            "--output-dir", str(out), f"https://127.0.0.1:{server.port}{path}"]
    if zero_rtt:
        argv.insert(2, "--zero-rtt")
    if data is not None:
        argv[2:2] = ["--data", data]
    r = run(argv, timeout=60, cwd=str(AIOQUIC))
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    return (out / os.path.basename(path)).read_bytes()


def test_aioquic_resumes_and_its_get_runs_in_0rtt(tmp_path):
    s = h3_server(tmp_path)
    try:
        ticket = tmp_path / "ticket.bin"
        assert aioquic(tmp_path, s, "/early-data", ticket) == b"after-handshake\n"
        assert ticket.stat().st_size > 0, "our server issued a ticket"
        assert aioquic(tmp_path, s, "/early-data", ticket, zero_rtt=True) == b"early\n"
    finally:
        s.stop()


def test_aioquic_post_in_0rtt_is_held_for_the_handshake(tmp_path):
    s = h3_server(tmp_path)
    try:
        ticket = tmp_path / "ticket.bin"
        aioquic(tmp_path, s, "/early-data", ticket)
        data = "p" * 20_000
        assert aioquic(tmp_path, s, "/echo", ticket, zero_rtt=True, data=data) == data.encode()
    finally:
        s.stop()


def test_a_restart_with_the_same_ticket_keys_takes_0rtt_and_other_keys_do_not(tmp_path):
    keys = secrets.token_hex(48)
    port = free_udp_port()
    ticket = tmp_path / "ticket.bin"
    s = h3_server(tmp_path, port, "--ticket-keys", keys)
    try:
        assert aioquic(tmp_path, s, "/early-data", ticket) == b"after-handshake\n"
    finally:
        s.stop()
    s = h3_server(tmp_path, port, "--ticket-keys", keys)
    try:
        assert aioquic(tmp_path, s, "/early-data", ticket, zero_rtt=True) == b"early\n"
    finally:
        s.stop()
    # Keys rotated away: the ticket no longer opens, a full handshake answers instead.
    s = h3_server(tmp_path, port, "--ticket-keys", secrets.token_hex(48))
    try:
        assert aioquic(tmp_path, s, "/early-data", ticket, zero_rtt=True) == b"after-handshake\n"
    finally:
        s.stop()


def test_early_data_off_answers_after_the_handshake(tmp_path):
    s = h3_server(tmp_path, 0, "--early-data", "off")
    try:
        ticket = tmp_path / "ticket.bin"
        aioquic(tmp_path, s, "/early-data", ticket)
        assert aioquic(tmp_path, s, "/early-data", ticket, zero_rtt=True) == b"after-handshake\n"
    finally:
        s.stop()


def ngtcp2_resuming(tmp_path, server, path):
    """gtlsclient keeping its session and transport parameters in tmp_path: (body, log)."""
    return gtlsclient(server.port, path, tmp_path / "out", "--session-file", str(tmp_path / "session.pem"),
                      "--tp-file", str(tmp_path / "tp.pem"), quiet=False)


def test_ngtcp2_resumes_and_sends_0rtt(tmp_path):
    s = h3_server(tmp_path)
    try:
        body, _ = ngtcp2_resuming(tmp_path, s, "/early-data")
        assert body == b"after-handshake\n"
        body, log = ngtcp2_resuming(tmp_path, s, "/early-data")
        assert "type=0RTT" in log, "ngtcp2 sent 0-RTT packets"
        assert body == b"early\n", log[-2000:]
    finally:
        s.stop()


# ---- address validation: Retry (RFC 9000 8.1.2) ----

def test_aioquic_answers_our_retry(tmp_path):
    s = h3_server(tmp_path, 0, "--retry", "always")
    try:
        (tmp_path / "page.txt").write_bytes(b"validated\n")
        out = tmp_path / "out"
        out.mkdir()
        qlog = tmp_path / "qlog"
        qlog.mkdir()
        argv = ["python3", str(AIOQUIC / "http3_client.py"), "--insecure", "--quic-log", str(qlog), "--output-dir",
                str(out), f"https://127.0.0.1:{s.port}/page.txt"]
        r = run(argv, timeout=60, cwd=str(AIOQUIC))
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
        assert (out / "page.txt").read_bytes() == b"validated\n"
        events = "".join(f.read_text() for f in qlog.iterdir())
        assert '"packet_type": "retry"' in events, "aioquic's qlog shows the Retry it answered"
    finally:
        s.stop()


def test_ngtcp2_answers_our_retry(tmp_path):
    s = h3_server(tmp_path, 0, "--retry", "always")
    try:
        (tmp_path / "page.txt").write_bytes(b"validated\n")
        body, log = ngtcp2_resuming(tmp_path, s, "/page.txt")
        assert body == b"validated\n"
        assert "type=Retry" in log, "ngtcp2 logged the Retry it answered"
        assert "retry_source_connection_id" in log, "and checked the server's transport parameter"
    finally:
        s.stop()
