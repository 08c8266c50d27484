#!/usr/bin/env python3
"""Soak run: the daemon replays the bundled session in a loop for N minutes while this
script samples its resident memory, open file descriptors, threads, published pairs and
the per-interval latency (from the /metrics histogram); at the end it reports the growth.

    cargo build --release
    python3 bench/soak.py --minutes 30 [--speed 1.0] [--models models] [--out soak.json]

Growth compares the mean of the last quarter of the samples with the mean of the first
quarter after the warm-up (the first `--warmup-s` seconds are left out: allocators and
model sessions reach their working size then). Stdlib only.

To tell a leak from fragmentation it also samples the allocator's books from /metrics
(`heap_allocated_bytes`: handed out and not returned; `heap_free_held_bytes`: freed but kept
in malloc's arenas) and fits a straight line to each after the warm-up: a leak shows as
allocated bytes rising, fragmentation as RSS and held free bytes rising with allocated flat.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_sample(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss_kb, fds, threads


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def counter(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def total_latency_buckets(text):
    """Cumulative bucket counts of stage_latency_ms{stage="total"}: [(le, count)]."""
    out = []
    for line in text.splitlines():
        if line.startswith("spectrald_stage_latency_ms_bucket") and 'stage="total"' in line:
            le = re.search(r'le="([^"]+)"', line).group(1)
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(out)


def percentile(before, after, q):
    """Upper bucket bound holding quantile q of the observations between two scrapes."""
    diffs = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    n = diffs[-1][1] if diffs else 0
    if n <= 0:
        return None
    for le, count in diffs:
        if count >= q * n:
            return le
    return None


def slope_per_min(samples, key):
    """Least-squares slope of samples[key] against time, in units per minute."""
    xs = [s["t_s"] / 60 for s in samples]
    ys = [s[key] for s in samples]
    if len(xs) < 2:
        return None
    mx, my = mean(xs), mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else None


def mean(values):
    return sum(values) / len(values) if values else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--speed", type=float, default=1.0, help="replay pace (1 = recorded, 0 = as fast as possible)")
    ap.add_argument("--models", default=str(REPO / "models"))
    ap.add_argument("--every-s", type=float, default=10)
    ap.add_argument("--warmup-s", type=float, default=120)
    ap.add_argument("--binary", default=str(REPO / "target/release/spectrald"))
    ap.add_argument("--out", default="soak.json")
    args = ap.parse_args()

    port = free_port()
    work = tempfile.mkdtemp(prefix="spectrald-soak-")
    config = Path(work) / "config.toml"
    config.write_text(
        f'[models]\ndir = "{args.models}"\n\n[[cameras]]\nid = "soak"\n'
        f'source = {{ kind = "replay", path = "{REPO / "tests/fixtures/session-pexels"}", speed = {args.speed}, loop = true }}\n\n'
        f'[output]\njsonl = "{Path(work) / "out.jsonl"}"\n\n[http]\nlisten = "127.0.0.1:{port}"\n'
    )
    log = open(Path(work) / "stderr.log", "w")
    daemon = subprocess.Popen([args.binary, "run", "--config", str(config)], stderr=log, stdout=subprocess.DEVNULL)
    for _ in range(300):
        try:
            metrics(port)
            break
        except OSError:
            time.sleep(0.1)
    started = time.monotonic()
    samples = []
    previous = total_latency_buckets(metrics(port))
    # The JSONL file grows by design; it is rotated away here so disk use stays flat
    # (the daemon reopens it, like under logrotate).
    out = Path(work) / "out.jsonl"
    while time.monotonic() - started < args.minutes * 60:
        time.sleep(args.every_s)
        if daemon.poll() is not None:
            sys.exit(f"the daemon exited with {daemon.returncode}; log: {log.name}")
        text = metrics(port)
        rss_kb, fds, threads = proc_sample(daemon.pid)
        buckets = total_latency_buckets(text)
        sample = {
            "t_s": round(time.monotonic() - started, 1),
            "rss_mib": round(rss_kb / 1024, 2),
            "fds": fds,
            "threads": threads,
            "heap_allocated_mib": round(counter(text, "spectrald_heap_allocated_bytes") / 2**20, 3),
            "heap_free_held_mib": round(counter(text, "spectrald_heap_free_held_bytes") / 2**20, 3),
            "published": counter(text, "spectrald_pair_published_total"),
            "dropped": counter(text, "spectrald_frame_dropped_total"),
            "latency_p50_ms": percentile(previous, buckets, 0.5),
            "latency_p99_ms": percentile(previous, buckets, 0.99),
        }
        previous = buckets
        samples.append(sample)
        print(json.dumps(sample), flush=True)
        if out.exists() and out.stat().st_size > 256 << 20:
            out.rename(out.with_suffix(".old"))
            out.with_suffix(".old").unlink()

    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=60)
    steady = [s for s in samples if s["t_s"] >= args.warmup_s] or samples
    quarter = max(1, len(steady) // 4)
    first, last = steady[:quarter], steady[-quarter:]

    def growth(key):
        a, b = mean([s[key] for s in first]), mean([s[key] for s in last])
        return round(100 * (b - a) / a, 2) if a else None

    report = {
        "minutes": args.minutes,
        "speed": args.speed,
        "samples": len(samples),
        "published": samples[-1]["published"] if samples else 0,
        "dropped": samples[-1]["dropped"] if samples else 0,
        "rss_mib_first_last": [mean([s["rss_mib"] for s in first]), mean([s["rss_mib"] for s in last])],
        "rss_growth_pct": growth("rss_mib"),
        "fds_first_last": [mean([s["fds"] for s in first]), mean([s["fds"] for s in last])],
        "fd_growth_pct": growth("fds"),
        "threads_first_last": [mean([s["threads"] for s in first]), mean([s["threads"] for s in last])],
        # KiB per minute after the warm-up: which of the three grows says what the creep is.
        "trend_kib_per_min": {k: round(1024 * (slope_per_min(steady, k) or 0.0), 1)
                              for k in ("rss_mib", "heap_allocated_mib", "heap_free_held_mib")},
        "heap_allocated_mib_first_last": [mean([s["heap_allocated_mib"] for s in first]),
                                          mean([s["heap_allocated_mib"] for s in last])],
        "heap_free_held_mib_first_last": [mean([s["heap_free_held_mib"] for s in first]),
                                          mean([s["heap_free_held_mib"] for s in last])],
        "latency_p99_ms_first_last": [
            mean([s["latency_p99_ms"] for s in first if s["latency_p99_ms"] is not None]),
            mean([s["latency_p99_ms"] for s in last if s["latency_p99_ms"] is not None]),
        ],
        "exit_code": daemon.returncode,
        "samples_detail": samples,
    }
    Path(args.out).write_text(json.dumps(report, indent=1))
    summary = {k: v for k, v in report.items() if k != "samples_detail"}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
