#!/usr/bin/env python3
"""RETR one at a time, several mboxpopd binaries (and the floor) alternated round by round.

For before/after comparisons of the RETR row of `bench.py` without the other servers:
each binary runs as a standalone daemon on its own port over the same spool, the client is
bench.py's, the order rotates every round, and the medians and every round's values are
printed. `--server-cpu` / `--client-cpu` pin them with sched_setaffinity (the daemon through
`taskset`), to separate what the scheduler's placement costs from what the server does.

Usage (root, after `make bench` has built the floor and generated the spool):
  benches/retr_ab.py [--rounds 8] [--mib 100] [--spool /var/tmp/mboxpopd-bench/master.mbox]
                     [--server-cpu N] [--client-cpu N] [--floor] BINARY...
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

WORK = "/var/tmp/mboxpopd-retr-ab"
FLOOR = os.path.join(bench.ROOT, "target/release/examples/retr_floor")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--mib", type=int, default=100, help="MiB fetched per binary and round")
    ap.add_argument("--spool", default=os.path.join(bench.WORK, "master.mbox"))
    ap.add_argument("--server-cpu", type=int)
    ap.add_argument("--client-cpu", type=int)
    ap.add_argument("--floor", action="store_true", help="also run examples/retr_floor")
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    if a.floor and not os.path.exists(FLOOR):
        sys.exit(f"{FLOOR} is missing: cargo build --release --example retr_floor")
    if a.client_cpu is not None:
        os.sched_setaffinity(0, {a.client_cpu})
    pin = ["taskset", "-c", str(a.server_cpu)] if a.server_cpu is not None else []
    os.makedirs(os.path.join(WORK, "mbx"), exist_ok=True)
    box = os.path.join(WORK, "mbx", "mbb0")
    shutil.copyfile(a.spool, box)
    shutil.chown(box, "nobody", "nogroup")
    bench.write(os.path.join(WORK, "passwd"), f"mbb0:{{PLAIN}}{bench.PASSWORD}\n", 0o640)
    shutil.chown(os.path.join(WORK, "passwd"), "root", "nogroup")
    procs, ports = {}, {}
    names = list(a.binaries) + (["floor"] if a.floor else [])
    try:
        for k, name in enumerate(names):
            port = 24600 + k
            ports[name] = port
            if name == "floor":
                procs[name] = subprocess.Popen(pin + [FLOOR, a.spool, str(port)])
                continue
            conf = os.path.join(WORK, f"{port}.conf")
            bench.write(conf, f"listen = 127.0.0.1:{port}\nauth = passwd-file\n"
                              f"passwd_file = {WORK}/passwd\nuser = nobody\ngroup = nogroup\n"
                              f"mailbox = {WORK}/mbx/%u\nplaintext_auth = always\n"
                              f"index_cache_dir = \n")
            procs[name] = subprocess.Popen(pin + [name, "-f", "-d", "-c", conf],
                                           env=dict(os.environ, RUST_LOG="error"))
        bench.PORTS.update(ports)
        for name in names:  # first login: index once, cached afterwards
            for _ in range(300):
                try:
                    p = bench.Pop(ports[name])
                    break
                except OSError:
                    time.sleep(0.1)
            p.login("mbb0")
            p.cmd("STAT")
            p.cmd("QUIT")
            p.close()
        res = {n: [] for n in names}
        for r in range(a.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                total, dt, c = bench.retr_run(name, procs[name].pid, "mbb0", a.mib << 20)
                res[name].append((total / dt / 1e6, c / (total / 1e9)))
    finally:
        for p in procs.values():
            p.terminate()
            p.wait()
    for name, v in res.items():
        print(f"{name}: {statistics.median(x[0] for x in v):.0f} MB/s, "
              f"{statistics.median(x[1] for x in v):.2f} s server CPU per GB; "
              f"per round {[round(x[1], 2) for x in v]}")


if __name__ == "__main__":
    main()
