#!/usr/bin/env python3
"""Hold N idle connections open against the mboxpopd daemon and measure what they cost.

Starts the release daemon (standalone, passwd-file users, running as `nobody`) on 127.0.0.1 with
`max_connections` above N, opens N connections that read the greeting and then say nothing
(spread over 127.0.0.0/8 source addresses, at most `max_connections_per_ip` per address, as
many clients would be), and reports:

- whether all N were held (every greeting read, every socket still open at the end);
- the daemon's threads, descriptors and RSS with them held, and RSS per idle connection;
- the open file limit the daemon logged at start-up;
- short honest sessions (greeting, USER, PASS, STAT, QUIT) before, while and after the connections are
  held, alternating so that the ratio "held / none" is from the same run.

Usage (root): benches/idle.py [--connections 10000] [--bin target/release/mboxpopd]
Works under /var/tmp/mboxpopd-idle. Read the ratios, not the timings.
"""

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = "/var/tmp/mboxpopd-idle"
PORT = 24300
PER_IP = 10


def status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def session(src="127.0.0.1"):
    """One honest short session; seconds from the greeting to QUIT's reply (the client's own
    bind(2) of an ephemeral port slows down with 10,000 ports in use, so connect is left out)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=30, source_address=(src, 0))
    t0 = time.perf_counter()
    f = s.makefile("rwb")
    for cmd in (None, b"USER idle", b"PASS secret", b"STAT", b"QUIT"):
        if cmd:
            f.write(cmd + b"\r\n")
            f.flush()
        line = f.readline()
        if not line.startswith(b"+OK"):
            sys.exit(f"session failed at {cmd!r}: {line!r}")
    dt = time.perf_counter() - t0
    s.close()
    return dt


def sessions(n, src):
    return [session(src) for _ in range(n)]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/mboxpopd"))
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    n = args.connections

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < n + 100:
        sys.exit(f"this client needs {n + 100} descriptors, the hard limit is {hard}")

    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(WORK, "mail"))
    with open(os.path.join(WORK, "passwd"), "w") as f:
        f.write("idle:{PLAIN}secret\n")
    shutil.chown(os.path.join(WORK, "passwd"), "root", "nogroup")
    os.chmod(os.path.join(WORK, "passwd"), 0o640)
    with open(os.path.join(WORK, "mail", "idle"), "w") as f:
        for i in range(10):
            f.write(f"From a@b Thu Dec  3 10:00:00 2026\nSubject: {i}\n\nbody {i}\n\n")
    shutil.chown(os.path.join(WORK, "mail", "idle"), "nobody", "nogroup")
    shutil.chown(os.path.join(WORK, "mail"), "nobody", "nogroup")
    with open(os.path.join(WORK, "mboxpopd.conf"), "w") as f:
        f.write(f"""listen = 127.0.0.1:{PORT}
auth = passwd-file
passwd_file = {WORK}/passwd
user = nobody
group = nogroup
mailbox = {WORK}/mail/%u
plaintext_auth = always
max_connections = {n + 100}
max_connections_per_ip = {PER_IP}
login_timeout = 10m
""")
    log = os.path.join(WORK, "mboxpopd.log")
    daemon = subprocess.Popen([args.bin, "-f", "-d", "-c", os.path.join(WORK, "mboxpopd.conf")],
                              env=dict(os.environ, RUST_LOG="info"), stderr=open(log, "wb"))
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("mboxpopd did not start")
        time.sleep(0.5)
        pid = daemon.pid
        limit_line = next((l.strip() for l in open(log) if "open file limit" in l), "(no limit line)")

        base_rss = status(pid, "VmRSS")
        quiet = []
        held_samples = []
        # Interleave: a block of sessions with nothing held, then open the idle connections,
        # a block while they are held, then close them and one more block with nothing held.
        quiet += sessions(args.samples, "127.0.0.1")

        t0 = time.perf_counter()
        idle = []
        for i in range(n):
            a = i // PER_IP
            src = f"127.{1 + a // 65025}.{1 + a // 255 % 255}.{1 + a % 255}"
            s = socket.create_connection(("127.0.0.1", PORT), timeout=30, source_address=(src, 0))
            greeting = s.recv(512)
            if not greeting.startswith(b"+OK"):
                sys.exit(f"connection {i} got {greeting!r}")
            idle.append(s)
        open_s = time.perf_counter() - t0
        time.sleep(1)
        threads = status(pid, "Threads")
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        held_rss = status(pid, "VmRSS")
        for _ in range(3):
            held_samples += sessions(args.samples // 3, "127.0.0.2")
            time.sleep(0.2)
        # Every idle socket must still be open: a recv that would block means open and silent.
        alive = 0
        for s in idle:
            s.setblocking(False)
            try:
                data = s.recv(1)
                if data == b"":
                    continue  # closed by the server
                alive += 1
            except BlockingIOError:
                alive += 1
        for s in idle:
            s.close()
        time.sleep(2)
        quiet += sessions(args.samples, "127.0.0.1")
        after_threads = status(pid, "Threads")

        print(f"daemon: {limit_line.split(']')[-1].strip()}")
        print(f"idle connections opened: {n} in {open_s:.1f} s; still open at the end: {alive}")
        print(f"daemon threads held: {threads}, descriptors: {fds}, after close threads: {after_threads}")
        print(f"daemon RSS: {base_rss / 1024:.1f} MiB before, {held_rss / 1024:.1f} MiB held, "
              f"{(held_rss - base_rss) / n:.1f} KiB per idle connection")
        q50, q99 = statistics.median(quiet) * 1e3, pct(quiet, 0.99) * 1e3
        h50, h99 = statistics.median(held_samples) * 1e3, pct(held_samples, 0.99) * 1e3
        print(f"honest session, nothing held: p50 {q50:.2f} ms, p99 {q99:.2f} ms")
        print(f"honest session, {n} held:     p50 {h50:.2f} ms, p99 {h99:.2f} ms "
              f"(ratio held/none p50 {h50 / q50:.2f}, p99 {h99 / q99:.2f})")
        if alive != n:
            sys.exit(f"only {alive} of {n} idle connections were held")
    finally:
        daemon.terminate()
        daemon.wait()


if __name__ == "__main__":
    main()
