#!/usr/bin/env python3
"""Side-by-side HTTP/3 benchmark: the same Bun.serve program on rust-quic (this
project's preload) and on Bun 1.4.5's native lsquic, driven by bench/h3load.

    python3 bench/run.py [--quick] [--rounds N]

Sides alternate within each round; the median of the rounds is reported with the
spread (min-max). Server CPU is read from /proc/<pid>/stat around each run.
Writes docs/BENCHMARKS.md and docs/benchmarks.png.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import select
import statistics
import textwrap
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUN = ROOT / "node_modules" / ".bin" / "bun"
H3LOAD = ROOT / "target" / "release" / "h3load"
CERT, KEY = ROOT / "build" / "certs" / "cert.pem", ROOT / "build" / "certs" / "key.pem"
TICK = os.sysconf("SC_CLK_TCK")
NAN = float("nan")
# Every run's raw results, kept before the report is written (--from-results rewrites it).
RESULTS = ROOT / "build" / "bench-results.json"


def start(side):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUN_")}
    argv = [str(BUN), "--no-install"]
    if side == "rust-quic":
        argv += ["--preload", str(ROOT / "src" / "js" / "preload.ts")]
    argv += [str(ROOT / "bench" / "server.ts"), str(CERT), str(KEY)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/tmp", env=env)
    out = b""
    deadline = time.time() + 20
    while time.time() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            out += os.read(proc.stdout.fileno(), 4096)
            m = re.search(rb"listening on (\d+)", out)
            if m:
                return proc, int(m.group(1))
    raise RuntimeError(f"{side} server did not start: {out.decode(errors='replace')}")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load(port, path, args):
    cmd = [str(H3LOAD), f"https://127.0.0.1:{port}{path}", "--insecure", "--json", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def idle_connections(proc, port, count, hold=3.0):
    """Server RSS growth per idle connection: `count` connections, one request each, then idle."""
    before = rss_mib(proc.pid)
    cmd = [str(H3LOAD), f"https://127.0.0.1:{port}/hi", "--insecure", "--json", "-c", str(count), "-n", str(count), "-t", "1", "--hold", str(hold)]
    h = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=raise_fd_limit)
    line = h.stderr.readline()
    m = re.match(r"holding (\d+)", line)
    time.sleep(hold / 2)
    during = rss_mib(proc.pid)
    out, _ = h.communicate(timeout=120)
    if not m or h.returncode != 0:
        return None
    held = int(m.group(1))
    res = json.loads(out.strip().splitlines()[-1])
    res["held"] = held
    res["kib_per_conn"] = (during - before) * 1024 / max(held, 1)
    res["rss_mib"] = during
    res["cpu_us_per_req"] = float("nan")
    return res


def lossy_downloads(port, count):
    """1 MiB downloads by ngtcp2's client, which drops 10% of what it sends and of what it receives."""
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(count):
            argv = ["gtlsclient", "--quiet", "--exit-on-all-streams-close", "--timeout=30s", "-r", "0.1", "-t", "0.1",
                    "--download", tmp, "127.0.0.1", str(port), f"https://127.0.0.1:{port}/1mb"]
            began = time.monotonic()
            r = subprocess.run(argv, capture_output=True, timeout=60)
            took = time.monotonic() - began
            got = Path(tmp, "1mb")
            if r.returncode != 0 or not got.exists() or got.stat().st_size != 1 << 20:
                return None
            got.unlink()
            seconds.append(took)
    seconds.sort()
    return {"requests": count, "rps": count / sum(seconds), "p50_us": statistics.median(seconds) * 1e6,
            "p99_us": seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))] * 1e6,
            "seconds": sum(seconds) / len(seconds), "cpu_us_per_req": float("nan"), "rss_mib": float("nan")}


def client_run(side, origin, mode):
    """The same fetch code as a client: with our preload, or Bun's own lsquic client."""
    argv = [str(BUN), "--no-install"]
    if side == "rust-quic":
        argv += ["--preload", str(ROOT / "src" / "js" / "preload.ts")]
    argv += [str(ROOT / "bench" / "client.ts"), origin, mode]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUN_")}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd="/tmp", env=env)
    if r.returncode != 0:
        print(side, mode, "client failed:", r.stderr[-500:], flush=True)
        return None
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["upload_mib_per_s"] = 0.0
    res["cpu_us_per_req"] = res["cpu_s"] * 1e6 / max(res["requests"], 1)
    res["rss_mib"] = float("nan")
    return res


def scenarios(quick):
    n = 20_000 if quick else 100_000
    return [
        ("static route /hi", "/hi", ["-c", "4", "-m", "16", "-n", str(n), "-t", "1"], "req"),
        ("fetch handler", "/fetch", ["-c", "4", "-m", "16", "-n", str(n), "-t", "1"], "req"),
        ("32 MB download", "/32mb", ["-c", "1", "-m", "1", "-n", "2" if quick else "8", "-t", "1"], "mib_down"),
        ("32 MB upload", "/upload", ["--method", "POST", "--body-size", str(32 << 20), "-c", "1", "-m", "1", "-n", "2" if quick else "6"], "mib_up"),
        ("handshakes (ECDSA P-256 certificate)", "/hi", ["--new-connection-per-request", "-c", "8", "-n", "400" if quick else "2000", "-t", "1"], "req"),
        ("1,000 idle connections", "/hi", ["1000"], "idle"),
        ("client: 2,000 small requests, 32 in flight", "small", [], "client_req"),
        ("client: 4 x 32 MB", "big", [], "client_mib"),
        ("client: 2 x 32 MB while the JS thread works 1 ms per chunk read", "busy", [], "client_mib"),
        ("both ends: 4 x 32 MB, our fetch to our server vs native to native", "big", [], "both_mib"),
        ("1 MB through 10% loss each way (ngtcp2 client -r 0.1 -t 0.1)", "/1mb", ["10" if quick else "20"], "lossy"),
    ]


def measure(proc, port, path, args):
    before = cpu_seconds(proc.pid)
    res = load(port, path, args)
    after = cpu_seconds(proc.pid)
    if res is None:
        return None
    res["cpu_s"] = after - before
    res["cpu_us_per_req"] = (after - before) * 1e6 / max(res["requests"], 1)
    res["rss_mib"] = rss_mib(proc.pid)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--only", help="run only the scenarios whose name contains this; print, do not write the report")
    ap.add_argument("--from-results", action="store_true", help=f"write the report from {RESULTS.relative_to(ROOT)} without running")
    a = ap.parse_args()
    rounds = a.rounds or (3 if a.quick else 5)
    sides = ["rust-quic", "native lsquic"]
    if a.from_results:
        saved = json.loads(RESULTS.read_text())
        results = {tuple(k.split("\t")): v for k, v in saved["results"].items()}
        return write_report(results, sides, saved["rounds"], saved["quick"])
    servers = {s: start(s) for s in sides}
    results = {}
    try:
        for name, path, args, kind in scenarios(a.quick):
            if a.only and a.only not in name:
                continue
            for r in range(rounds):
                order = sides if r % 2 == 0 else sides[::-1]
                for side in order:
                    proc, port = servers[side]
                    if kind == "idle":
                        # A fresh server each round: memory freed by an earlier round would be reused.
                        fresh, fresh_port = start(side)
                        try:
                            res = idle_connections(fresh, fresh_port, int(args[0]))
                        finally:
                            fresh.terminate()
                    elif kind.startswith("client"):
                        # Both clients against the same server (Bun's native one).
                        res = client_run(side, f"https://127.0.0.1:{servers['native lsquic'][1]}", path)
                    elif kind == "both_mib":
                        # Each client against its own side's server.
                        res = client_run(side, f"https://127.0.0.1:{port}", path)
                    elif kind == "lossy":
                        res = lossy_downloads(port, int(args[0]))
                    else:
                        res = measure(proc, port, path, args)
                    results.setdefault((name, side), []).append(res)
                    keys = ("rps", "p50_us", "p99_us", "mib_per_s", "upload_mib_per_s", "cpu_us_per_req", "errors", "kib_per_conn", "cpu_s")
                    print(name, side, "round", r, "->", None if res is None else {k: res[k] for k in keys if k in res}, flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
    if not a.only:
        RESULTS.parent.mkdir(exist_ok=True)
        saved = {"rounds": rounds, "quick": a.quick, "results": {"\t".join(k): v for k, v in results.items()}}
        RESULTS.write_text(json.dumps(saved, allow_nan=True))
        write_report(results, sides, rounds, a.quick)


def med(values):
    values = [v for v in values if v is not None]
    return (statistics.median(values), min(values), max(values)) if values else (float("nan"),) * 3


def write_report(results, sides, rounds, quick):
    rows = []
    chart = []
    for name, _path, _args, kind in scenarios(quick):
        cells = {}
        for side in sides:
            runs = [r for r in results.get((name, side), []) if r]
            cells[side] = {
                "rps": med([r.get("rps", NAN) for r in runs]),
                "p50": med([r.get("p50_us", NAN) for r in runs]),
                "p99": med([r.get("p99_us", NAN) for r in runs]),
                "cpu": med([r.get("cpu_us_per_req", NAN) for r in runs]),
                "mib": med([r.get("upload_mib_per_s" if kind == "mib_up" else "mib_per_s", NAN) for r in runs]),
                "rss": med([r.get("rss_mib", NAN) for r in runs]),
                "kib": med([r.get("kib_per_conn", NAN) for r in runs]),
                "ok": len(runs),
            }
            cells[side]["sec"] = med([r.get("seconds", NAN) for r in runs])
            if kind == "mib_down":
                # Server CPU per MiB moved (each request is 32 MiB): the download's cost per byte.
                cells[side]["cpu_mib"] = med([r["cpu_s"] * 1e3 / (r["requests"] * 32) for r in runs if r.get("requests")])
        ours, native = cells[sides[0]], cells[sides[1]]
        if kind in ("mib_down", "mib_up", "client_mib", "both_mib"):
            metric, unit, better = "mib", "MiB/s", "higher"
        elif kind == "idle":
            metric, unit, better = "kib", "server RSS KiB per idle connection", "lower"
        elif kind == "client_req":
            metric, unit, better = "rps", "requests/s", "higher"
        elif kind == "lossy":
            metric, unit, better = "sec", "mean seconds per download", "lower"
        else:
            metric, unit, better = "cpu", "server CPU µs/request", "lower"
        ratio = ours[metric][0] / native[metric][0] if native[metric][0] else float("nan")
        rows.append((name, ours, native, metric, unit, ratio, better))
        chart.append((name, ours[metric][0], native[metric][0], unit))
        if kind == "mib_down":
            per_byte = ours["cpu_mib"][0] / native["cpu_mib"][0] if native["cpu_mib"][0] else float("nan")
            rows.append((name + ": server CPU per byte", ours, native, "cpu_mib", "server CPU ms per MiB", per_byte, "lower"))
            chart.append((name + ": server CPU per byte", ours["cpu_mib"][0], native["cpu_mib"][0], "server CPU ms per MiB"))
    lines = [
        "# Benchmarks: rust-quic vs Bun 1.4.5's native lsquic (HTTP/3)",
        "",
        f"Generated by `python3 bench/run.py{' --quick' if quick else ''}` on {datetime.date.today().isoformat()}, "
        f"{platform.machine()}, {os.cpu_count()} cores, loopback. Same Bun.serve program (`bench/server.ts`) on both sides; "
        f"load from `bench/h3load` (Rust, quiche). {rounds} rounds, sides alternating; median with min-max spread.",
        "",
        "| scenario | metric | rust-quic | native lsquic | ratio (ours/native) | req/s ours / native | p50 µs ours / native | p99 µs ours / native |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    def fmt(t):
        digits = 2 if abs(t[0]) < 10 else 1
        return f"{t[0]:.{digits}f} ({t[1]:.{digits}f}-{t[2]:.{digits}f})"

    for name, ours, native, metric, unit, ratio, better in rows:
        lines.append(
            f"| {name} | {unit} ({better} is better) | {fmt(ours[metric])} | {fmt(native[metric])} | {ratio:.2f} | "
            f"{ours['rps'][0]:.0f} / {native['rps'][0]:.0f} | {ours['p50'][0]:.0f} / {native['p50'][0]:.0f} | {ours['p99'][0]:.0f} / {native['p99'][0]:.0f} |"
        )
    lines += ["", "Server RSS after each server scenario (MiB, median): " + ", ".join(
        f"{name}: {ours['rss'][0]:.0f} / {native['rss'][0]:.0f}" for name, ours, native, metric, *_ in rows if ours["rss"][0] == ours["rss"][0] and metric != "cpu_mib") + " (ours / native).",
        "",
        "Client rows run `bench/client.ts` (the same fetch code) with the preload (rust-quic) and without (Bun's lsquic",
        "client), both against the native lsquic server; their p50/p99 are per request as the client sees them.",
        "The both-ends row runs each client against its own side's server. The lossy row is wall time per 1 MiB",
        "download by ngtcp2's `gtlsclient`, which drops 10% of the datagrams it sends and 10% of those it receives",
        "(handshake included: a lost handshake flight costs a probe timeout, hence the spread).",
        ""]
    lines += ["![benchmarks](benchmarks.png)", ""]
    analysis = ROOT / "bench" / "analysis.md"
    if analysis.exists():
        lines += [analysis.read_text()]
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        cols = (len(chart) + 1) // 2
        fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 6.8))
        for ax, (name, o, n, unit) in zip(axes.flatten(), chart):
            ax.bar(["rust-quic", "lsquic"], [o, n], color=["#2b7bb9", "#999999"])
            ax.set_title("\n".join(textwrap.wrap(name, 26)), fontsize=9)
            ax.set_ylabel(unit, fontsize=8)
            ax.tick_params(labelsize=8)
        for ax in axes.flatten()[len(chart):]:
            ax.axis("off")  # an odd number of charts leaves one cell empty
        fig.tight_layout()
        fig.savefig(ROOT / "docs" / "benchmarks.png", dpi=110)
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)")
    print((ROOT / "docs" / "BENCHMARKS.md").read_text())


if __name__ == "__main__":
    main()
