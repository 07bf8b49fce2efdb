#!/usr/bin/env python3
"""Login sessions of mboxpopd in inetd mode (one process per connection, under
`systemd-socket-activate --inetd`) with and without the on-disk index cache, and of Dovecot
(index on disk), on the same generated big spool, alternating the three in every round.

    python3 benches/inetd_login.py [--rounds N] [--grow N]

Reuses benches/bench.py's spool generator (and its spool, when one of the same size is there),
its Dovecot configuration and its client, in /var/tmp/mboxpopd-icache-bench. Root is needed. MIB and MESSAGES size the spool as
for `make bench` (default 1024 MiB, 100,000 messages). Each mboxpopd variant has its own copy
of the spool (its own user), so no session waits for another's lock.

Rows: *unchanged*: a whole session (connect, USER, PASS, STAT, QUIT) on the unchanged spool;
*grown*: one such session right after one message was appended to every copy.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

# Its own directory: `make bench` may run meanwhile in bench.py's.
WORK = bench.WORK = "/var/tmp/mboxpopd-icache-bench"
PORTS = {"inetd-nocache": 24121, "inetd-cache": 24122, "dovecot": bench.PORTS["dovecot"]}
USERS = {"inetd-nocache": "mbb1", "inetd-cache": "mbb0", "dovecot": "mbb0"}
APPEND = (b"From new@example.org Thu Dec  3 11:00:00 2026\nFrom: new@example.org\n"
          b"Subject: appended\nMessage-ID: <%d.appended@example.org>\n\nhello\n\n")


def busy_jiffies():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait


def settle(limit=10.0):
    """Wait until the machine is idle (under 2 % busy over 100 ms): a server may still work
    after it answered QUIT (Dovecot updates its index files, a process exits), and that would
    be charged to whichever server is timed next."""
    end = time.monotonic() + limit
    hz = os.sysconf("SC_CLK_TCK") * os.cpu_count()
    while time.monotonic() < end:
        b = busy_jiffies()
        time.sleep(0.1)
        if busy_jiffies() - b <= 0.02 * 0.1 * hz:
            return


def session(port, user):
    settle()
    t = time.perf_counter()
    p = bench.Pop(port)
    p.cmd(f"USER {user}")
    p.cmd(f"PASS {bench.PASSWORD}")
    p.cmd("STAT")
    p.cmd("QUIT")
    p.s.close()
    return (time.perf_counter() - t) * 1000


def spool(name):
    return bench.spool_path("dovecot" if name == "dovecot" else "mboxpopd", USERS[name])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--grow", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(bench.ROOT, "target/release/mboxpopd"))
    a = ap.parse_args()
    mib = int(os.environ.get("MIB", "1024"))
    messages = int(os.environ.get("MESSAGES", "100000"))
    os.makedirs(WORK, exist_ok=True)
    bench.configs(2)
    big = os.path.join(WORK, "big.mbox")
    shared = "/var/tmp/mboxpopd-bench/master.mbox"
    if not os.path.exists(big) and os.path.exists(shared + ".params") \
            and open(shared + ".params").read() == f"{messages} {mib} v2":
        os.link(shared, big)
        shutil.copyfile(shared + ".params", big + ".params")
    bench.big_mbox(big, messages, mib)
    cache = os.path.join(WORK, "icache")
    shutil.rmtree(cache, ignore_errors=True)
    # The inetd processes drop to `user = nobody` at start: the cache belongs to nobody.
    os.mkdir(cache, 0o700)
    shutil.chown(cache, "nobody", "nogroup")
    base = open(os.path.join(WORK, "mboxpopd.conf")).read()
    for name, value in [("inetd-nocache", ""), ("inetd-cache", cache)]:
        bench.write(os.path.join(WORK, f"{name}.conf"), base + f"index_cache_dir = {value}\n")
    bench.place("mboxpopd", "mbb0", big)
    bench.place("mboxpopd", "mbb1", big)
    bench.place("dovecot", "mbb0", big)
    procs = [subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", os.path.join(WORK, "dovecot.conf")])]
    env = dict(os.environ, RUST_LOG="warn")
    for name in ["inetd-nocache", "inetd-cache"]:
        procs.append(subprocess.Popen(
            ["systemd-socket-activate", "-l", f"127.0.0.1:{PORTS[name]}", "--inetd", "-a",
             a.bin, "-i", "-c", os.path.join(WORK, f"{name}.conf")],
            env=env, stderr=open(os.path.join(WORK, f"{name}.log"), "ab")))
    try:
        for name in PORTS:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", PORTS[name]), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
        names = list(PORTS)
        first = {n: session(PORTS[n], USERS[n]) for n in names}
        print("first login (builds the indexes), ms:", {n: round(v, 1) for n, v in first.items()})
        times = {n: [] for n in names}
        for r in range(a.rounds):
            order = names[r % 3:] + names[:r % 3]
            for n in order:
                times[n].append(session(PORTS[n], USERS[n]))
        grown = {n: [] for n in names}
        for g in range(a.grow):
            time.sleep(0.05)
            for n in names:
                with open(spool(n), "ab") as f:
                    f.write(APPEND % g)
            time.sleep(0.05)  # past the racy-state window
            order = names[g % 3:] + names[:g % 3]
            for n in order:
                grown[n].append(session(PORTS[n], USERS[n]))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    print(f"{mib} MiB, {messages} messages, {a.rounds} rounds, {a.grow} appends; p50 ms:")
    med = {n: statistics.median(times[n]) for n in names}
    gmed = {n: statistics.median(grown[n]) for n in names}
    for n in names:
        print(f"  {n:14} unchanged {med[n]:8.1f}   grown {gmed[n]:8.1f}   "
              f"(all unchanged: {[round(x, 1) for x in times[n]]})")
    print(f"  cache / nocache: unchanged {med['inetd-cache'] / med['inetd-nocache']:.3f}, "
          f"grown {gmed['inetd-cache'] / gmed['inetd-nocache']:.3f}")
    print(f"  cache / Dovecot: unchanged {med['inetd-cache'] / med['dovecot']:.3f}, "
          f"grown {gmed['inetd-cache'] / gmed['dovecot']:.3f}")


if __name__ == "__main__":
    main()
