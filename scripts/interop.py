#!/usr/bin/env python3
"""Runs the interop suite and regenerates docs/interop.md from its results.

    python3 scripts/interop.py          # needs `make native` and `scripts/setup.sh --peers`
"""
import datetime
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JUNIT = ROOT / "build" / "interop.xml"

# test name -> (peer, our role, scenario)
CASES = {
    "test_aioquic_client_gets_page": ("aioquic 1.7.2 http3_client.py", "server", "GET a page"),
    "test_aioquic_client_downloads_1mb": ("aioquic 1.7.2 http3_client.py", "server", "GET 1 MB, byte-exact"),
    "test_aioquic_client_posts_echo": ("aioquic 1.7.2 http3_client.py", "server", "POST 100 kB to /echo"),
    "test_ngtcp2_client_downloads_1mb": ("ngtcp2 gtlsclient (Debian)", "server", "GET 1 MB, byte-exact"),
    "test_ngtcp2_client_posts_echo": ("ngtcp2 gtlsclient (Debian)", "server", "300 kB request body to /echo"),
    "test_chromium_loads_page_and_1mb_over_http3": ("Chromium (headless, forced QUIC)", "server", "page + 1 MB fetch (SHA-256 checked in page JS)"),
    "test_bun_native_client_downloads_1mb": ("Bun 1.4.5 native fetch (lsquic)", "server", "GET 1 MB, byte-exact"),
    "test_bun_native_client_posts_echo": ("Bun 1.4.5 native fetch (lsquic)", "server", "POST 300 kB to /echo"),
    "test_aioquic_client_against_bun_serve_h3": ("aioquic 1.7.2 http3_client.py", "Bun.serve h3 (runtime)", "GET 1 MB + POST 50 kB echo"),
    "test_ngtcp2_client_against_bun_serve_h3": ("ngtcp2 gtlsclient (Debian)", "Bun.serve h3 (runtime)", "GET 1 MB, byte-exact"),
    "test_chromium_against_bun_serve_h3": ("Chromium (headless, forced QUIC)", "Bun.serve h3 (runtime)", "page + 1 MB fetch"),
    "test_dead_udp_port_fails_fast": ("(no server: closed UDP port)", "client", "fails at once with ECONNREFUSED (ICMP)"),
    "test_our_client_gets_aioquic_page": ("aioquic 1.7.2 http3_server.py", "client", "GET a page"),
    "test_our_client_downloads_1mb_from_aioquic": ("aioquic 1.7.2 http3_server.py", "client", "GET 1 MB"),
    "test_our_client_posts_to_aioquic_echo": ("aioquic 1.7.2 http3_server.py", "client", "POST 300 kB to /echo"),
    "test_our_client_downloads_1mb_from_ngtcp2": ("ngtcp2 gtlsserver (Debian)", "client", "GET 1 MB, byte-exact"),
    "test_our_client_downloads_1mb_from_bun_native": ("Bun 1.4.5 native Bun.serve (lsquic)", "client", "GET 1 MB, byte-exact"),
    "test_our_client_posts_to_bun_native_echo": ("Bun 1.4.5 native Bun.serve (lsquic)", "client", "POST 300 kB to /echo"),
}


def main() -> int:
    JUNIT.parent.mkdir(parents=True, exist_ok=True)
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={JUNIT}",
                          str(ROOT / "tests" / "interop")])
    results = {}
    for case in ET.parse(JUNIT).getroot().iter("testcase"):
        name = case.get("name").split("[")[0]
        if case.find("failure") is not None or case.find("error") is not None:
            results[name] = "FAIL"
        elif case.find("skipped") is not None:
            results[name] = "skipped"
        else:
            results[name] = "pass"
    lines = [
        "# Interop",
        "",
        "rust-quic (through the C programs `h3-server` and `h3-client`, which use only `quic.h`) against",
        "HTTP/3 stacks no one here wrote. Regenerate with `python3 scripts/interop.py`",
        "(after `scripts/setup.sh --peers` and `make native`).",
        "",
        f"Last run: {datetime.date.today().isoformat()} on {platform.system()} {platform.machine()}, loopback.",
        "",
        "| peer | rust-quic role | scenario | result |",
        "| --- | --- | --- | --- |",
    ]
    for test, (peer, role, scenario) in CASES.items():
        lines.append(f"| {peer} | {role} | {scenario} | {results.get(test, 'not run')} |")
    unknown = sorted(set(results) - set(CASES))
    for test in unknown:
        lines.append(f"| ? | ? | {test} | {results[test]} |")
    lines += [
        "",
        "WebTransport and HTTP datagrams run in the bun suite (`test/js/bun/quic/webtransport.test.ts`, part of",
        "the README's test command): Chromium headless against Bun.serve's webtransport handlers (100 datagrams,",
        "streams opened by either side, close codes both ways) and our WebTransport client against aioquic's",
        "`http3_server.py` `/wt` echo. QUIC DATAGRAM (Bun.quic) against aioquic: `test/js/bun/quic/quic-socket.test.ts`.",
    ]
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "interop.md").write_text("\n".join(lines) + "\n")
    print(f"wrote docs/interop.md ({sum(v == 'pass' for v in results.values())}/{len(results)} pass)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
