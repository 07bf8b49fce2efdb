#!/usr/bin/env python3
"""mboxpopd against Dovecot and popa3d, over TCP on loopback, on the same machine.

All three servers are real and run side by side for the whole run, each on its own copy of the
same generated spool, and the servers are alternated round by round:

- mboxpopd: the release binary as a standalone daemon (`-d`), passwd-file users, running as
  `nobody` (the index cache of the daemon is in play);
- Dovecot (Debian's dovecot-pop3d), mbox with its index on disk, kept between sessions,
  `pop3_uidl_format = %m`;
- popa3d 1.0.3 (Debian package, unpacked with `apt-get download` + `dpkg -x`, as it conflicts
  with dovecot-pop3d), inetd style under `systemd-socket-activate --inetd`, system users
  through PAM, mailboxes in /var/mail.

Beside them runs the RETR floor (examples/retr_floor.rs), only for the RETR row: it answers each
RETR with a body of the message's size from memory in one write, so its server CPU per GB is
what loopback TCP and this client cost any server on this machine.

Metrics (medians over the rounds; CPU is the server's process tree, from /proc):
  first login on a fresh copy of the spool (PASS sent -> STAT answered), later login sessions
  (connect, USER, PASS, STAT, QUIT) p50 and server CPU per login, LIST+UIDL session p50, RETR of
  messages one at a time (MB/s, server CPU per GB sent), DELE last / middle / first + QUIT
  (QUIT sent -> +OK), peak RSS of the serving process during a first login, and short sessions/s
  with p99 at several concurrency levels (each client its own user and small mailbox).

Usage (root; `make bench` runs it with MIB=... MESSAGES=...):
  benches/bench.py [--mib 1024] [--messages 100000] [--rounds 2] [--retr-mib 256]
                   [--levels 2,8,50,500] [--users 500] [--json out.json]
Creates system users `popa3d`, `mbb0`.. (password "secret") and works under
/var/tmp/mboxpopd-bench. Machines are noisy: read the ratios, not the timings.
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = "/var/tmp/mboxpopd-bench"
PASSWORD = "secret"
PORTS = {"mboxpopd": 24111, "dovecot": 24110, "popa3d": 24112, "floor": 24113}
SERVERS = ["mboxpopd", "dovecot", "popa3d"]
# The servers and the RETR floor (examples/retr_floor.rs), which takes part in the RETR rows only.
ALL = SERVERS + ["floor"]
BIG = "mbb0"  # the user whose mailbox is the big spool
TICK = os.sysconf("SC_CLK_TCK")


def run(*argv, **kw):
    return subprocess.run(argv, check=True, **kw)


# ---------------------------------------------------------------- setup


def ensure_users(n):
    """System users for popa3d (PAM): popa3d itself and mbb0..mbb{n-1}."""
    have = {l.split(":")[0] for l in open("/etc/passwd")}
    if "popa3d" not in have:
        run("useradd", "-r", "-M", "-d", "/var/lib/popa3d", "-s", "/usr/sbin/nologin", "popa3d")
    os.makedirs("/var/lib/popa3d", exist_ok=True)
    new = [f"mbb{i}" for i in range(n) if f"mbb{i}" not in have]
    for u in new:
        run("useradd", "-M", "-N", "-g", "mail", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", u)
    if new:
        run("chpasswd", input="".join(f"{u}:{PASSWORD}\n" for u in new).encode())


def ensure_popa3d():
    binary = os.path.join(WORK, "popa3d/usr/sbin/popa3d")
    if not os.path.exists(binary):
        d = os.path.join(WORK, "popa3d")
        os.makedirs(d, exist_ok=True)
        subprocess.run(["apt-get", "download", "popa3d"], cwd=d, check=True)
        deb = [f for f in os.listdir(d) if f.endswith(".deb")][0]
        run("dpkg", "-x", os.path.join(d, deb), d)
    if not os.path.exists("/etc/pam.d/popa3d"):
        shutil.copy(os.path.join(WORK, "popa3d/etc/pam.d/popa3d"), "/etc/pam.d/popa3d")
    return binary


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def configs(users):
    names = [f"mbb{i}" for i in range(users)]
    for d in ["mbx", "dv", "dvidx", "dvhome", "dvrun", "dvstate"]:
        os.makedirs(os.path.join(WORK, d), exist_ok=True)
    shutil.chown(os.path.join(WORK, "dvidx"), "nobody", "nogroup")
    shutil.chown(os.path.join(WORK, "dvhome"), "nobody", "nogroup")
    for d in ["mbx", "dv"]:
        os.chmod(os.path.join(WORK, d), 0o1777)
    write(os.path.join(WORK, "passwd"), "".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in names), 0o640)
    shutil.chown(os.path.join(WORK, "passwd"), "root", "nogroup")
    # Dovecot's auth process runs as its own user.
    write(os.path.join(WORK, "dvpasswd"), "".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in names), 0o644)
    write(os.path.join(WORK, "mboxpopd.conf"), f"""listen = 127.0.0.1:{PORTS['mboxpopd']}
auth = passwd-file
passwd_file = {WORK}/passwd
user = nobody
group = nogroup
mailbox = {WORK}/mbx/%u
plaintext_auth = always
uidl_format = native
max_connections = 4000
max_connections_per_ip = 4000
""")
    write(os.path.join(WORK, "dovecot.conf"), f"""base_dir = {WORK}/dvrun
state_dir = {WORK}/dvstate
log_path = {WORK}/dovecot.log
info_log_path = {WORK}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
default_process_limit = 1000
default_client_limit = 4000
passdb {{
  driver = passwd-file
  args = {WORK}/dvpasswd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={WORK}/dvhome
}}
mail_location = mbox:{WORK}/dvhome/mail:INBOX={WORK}/dv/%u:INDEX={WORK}/dvidx/%u
pop3_uidl_format = %m
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {PORTS['dovecot']}
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
""")


def spool_path(server, user):
    if server == "mboxpopd":
        return os.path.join(WORK, "mbx", user)
    if server == "dovecot":
        return os.path.join(WORK, "dv", user)
    return os.path.join("/var/mail", user)


def place(server, user, src):
    """A fresh copy (new inode) of `src` as `user`'s mailbox; Dovecot's index is removed."""
    dst = spool_path(server, user)
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    # On disk before anything is timed: else the first fsync a commit makes (mboxpopd's
    # DELE last is a truncate and an fsync) also writes out this whole copy.
    fd = os.open(tmp, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    if server == "popa3d":
        shutil.chown(tmp, user, "mail")
    else:
        shutil.chown(tmp, "nobody", "nogroup")
    os.chmod(tmp, 0o660)
    os.rename(tmp, dst)
    if server == "dovecot":
        shutil.rmtree(os.path.join(WORK, "dvidx", user), ignore_errors=True)


def small_mbox(path):
    with open(path, "wb") as f:
        for i in range(10):
            f.write(b"From s%d@example.org Thu Nov 26 03:32:14 2026\n" % i)
            f.write(b"From: s%d@example.org\nTo: u@example.org\nSubject: small %d\n"
                    b"Message-ID: <%d.small@example.org>\n\n" % (i, i, i))
            f.write(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n" * 30)
            f.write(b"\n")


def big_mbox(path, messages, mib):
    stamp = path + ".params"
    want = f"{messages} {mib} v2"
    if os.path.exists(path) and os.path.exists(stamp) and open(stamp).read() == want:
        return
    gen = os.path.join(ROOT, "target/release/examples/storage_bench")
    run(gen, "--generate", path, str(messages), str(mib))
    write(stamp, want)


# ---------------------------------------------------------------- servers


def start_servers(popa3d, binary, master):
    procs = {}
    # Not a server: answers RETR from memory with the mailbox's sizes (examples/retr_floor.rs).
    floor = os.path.join(ROOT, "target/release/examples/retr_floor")
    if not os.path.exists(floor):
        sys.exit(f"{floor} is missing: `make bench` builds it "
                 "(or cargo build --release --example retr_floor)")
    procs["floor"] = subprocess.Popen([floor, master, str(PORTS["floor"])])
    env = dict(os.environ, RUST_LOG="warn")
    procs["mboxpopd"] = subprocess.Popen(
        [binary, "-f", "-d", "-c", os.path.join(WORK, "mboxpopd.conf")],
        env=env, stderr=open(os.path.join(WORK, "mboxpopd.log"), "ab"))
    procs["dovecot"] = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", os.path.join(WORK, "dovecot.conf")])
    procs["popa3d"] = subprocess.Popen(
        ["systemd-socket-activate", "-l", f"127.0.0.1:{PORTS['popa3d']}", "--inetd", "-a", popa3d],
        stderr=subprocess.DEVNULL)
    for s in ALL:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", PORTS[s]), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit(f"{s} did not start")
    return procs


def stop_servers(procs):
    for p in procs.values():
        p.terminate()
    for p in procs.values():
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def tree(pid):
    """pid and its live descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu(pid):
    """CPU seconds of the process tree, exited-and-reaped children included."""
    total = 0
    for p in tree(pid):
        try:
            st = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        total += sum(int(x) for x in f[11:15])
    return total / TICK


def status(pid, key):
    try:
        for l in open(f"/proc/{pid}/status"):
            if l.startswith(key + ":"):
                return int(l.split()[1])
    except OSError:
        pass
    return 0


def comm(pid):
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def session_rss_kib(server, root_pid):
    """Peak RSS of the process serving the session (the daemon for mboxpopd)."""
    if server == "mboxpopd":
        return status(root_pid, "VmHWM")
    want = "pop3" if server == "dovecot" else "popa3d"
    return max([status(p, "VmHWM") for p in tree(root_pid) if comm(p) == want] or [0])


def write_bytes(pid):
    total = 0
    for p in tree(pid):
        try:
            for l in open(f"/proc/{p}/io"):
                if l.startswith("write_bytes:"):
                    total += int(l.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- client


class Pop:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.rbuf = bytearray(4 << 20)
        self.rview = memoryview(self.rbuf)
        self.line()

    def fill(self):
        # No delayed ACKs: a server that sends a response in several small writes would
        # otherwise wait for them under Nagle (40 ms a response), which measures the client.
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        data = self.s.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                l = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return l
            self.fill()

    def cmd(self, c):
        self.s.sendall(c.encode() + b"\r\n")
        r = self.line()
        if not r.startswith(b"+OK"):
            raise RuntimeError(f"{c.split()[0]} -> {r!r}")
        return r

    def multi(self, c):
        """Send a multi-line command; returns the octets of the response body."""
        self.s.sendall(c.encode() + b"\r\n")
        first = self.line()
        if not first.startswith(b"+OK"):
            raise RuntimeError(f"{c} -> {first!r}")
        start = 0
        while True:
            if self.buf[:3] == b".\r\n":
                del self.buf[:3]
                return 0
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                del self.buf[:i + 5]
                return i + 2
            start = max(0, len(self.buf) - 4)
            self.fill()

    def retr(self, n):
        """RETR n, read to its end; returns the octets of the response body.

        Built for throughput: nothing else is pending on the connection, so the response is
        complete exactly when the received bytes end with CRLF.CRLF (dot-stuffing keeps that
        sequence out of the body). Bytes are received into one preallocated buffer and only its
        tail is checked, so the client costs a few microseconds per response, not a copy and a
        search of every byte.
        """
        assert not self.buf, "RETR with bytes pending"
        self.s.send(b"RETR %d\r\n" % n)
        buf, view, pos = self.rbuf, self.rview, 0
        while True:
            if pos == len(buf):
                buf.extend(bytes(len(buf)))  # a message larger than the buffer
                self.rview = view = memoryview(buf)
            # As in fill(): no delayed ACKs, or a server that writes a response in pieces waits
            # 40 ms for each under Nagle.
            self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            k = self.s.recv_into(view[pos:])
            if not k:
                raise ConnectionError("closed")
            pos += k
            if pos >= 5 and buf[pos - 5:pos] == b"\r\n.\r\n":
                break
        if buf[:3] != b"+OK":
            raise RuntimeError(f"RETR {n} -> {bytes(buf[:min(pos, 80)])!r}")
        return pos - (buf.index(b"\r\n") + 2) - 3

    def login(self, user):
        self.cmd("USER " + user)
        self.cmd("PASS " + PASSWORD)

    def close(self):
        self.s.close()


def first_login(server, pid, user):
    if server == "mboxpopd":
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS of the daemon
    c0 = cpu(pid)
    p = Pop(PORTS[server])
    p.cmd("USER " + user)
    t = time.monotonic()
    p.cmd("PASS " + PASSWORD)
    n = int(p.cmd("STAT").split()[1])
    dt = time.monotonic() - t
    rss = session_rss_kib(server, pid)
    p.cmd("QUIT")
    p.close()
    time.sleep(0.05)
    return dt, n, rss, cpu(pid) - c0


def login_session(server, user, extra=()):
    t = time.monotonic()
    p = Pop(PORTS[server])
    p.login(user)
    p.cmd("STAT")
    for c in extra:
        p.multi(c)
    p.cmd("QUIT")
    p.close()
    return time.monotonic() - t


def retr_run(server, pid, user, limit):
    p = Pop(PORTS[server])
    p.login(user)
    n = int(p.cmd("STAT").split()[1])
    c0, t, total, i = cpu(pid), time.monotonic(), 0, 1
    while i <= n and total < limit:
        total += p.retr(i)
        i += 1
    dt = time.monotonic() - t
    c = cpu(pid) - c0
    p.cmd("QUIT")
    p.close()
    return total, dt, c


def dele(server, pid, user, which):
    p = Pop(PORTS[server])
    p.login(user)
    n = int(p.cmd("STAT").split()[1])
    k = {"first": 1, "middle": (n + 1) // 2, "last": n}[which]
    p.cmd(f"DELE {k}")
    # Nobody's earlier writes on the disk: popa3d and Dovecot do not fsync their commits, and
    # an ext4 fsync (mboxpopd's commit) also waits for whatever else the journal holds.
    os.sync()
    w0 = write_bytes(pid)
    t = time.monotonic()
    p.cmd("QUIT")
    dt = time.monotonic() - t
    p.close()
    time.sleep(0.05)
    return dt, write_bytes(pid) - w0


async def short_session(port, user, lat, errors):
    t = time.monotonic()
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
        async def cmd(c):
            if c:
                w.write(c.encode() + b"\r\n")
            # A connection the server never completed (SYN cookies after a queue overflow)
            # would wait forever: it counts as an error after 30 s.
            line = await asyncio.wait_for(r.readline(), 30)
            if not line.startswith(b"+OK"):
                raise RuntimeError(line)
        await cmd(None)
        for c in ["USER " + user, "PASS " + PASSWORD, "STAT", "QUIT"]:
            await cmd(c)
        w.close()
        lat.append(time.monotonic() - t)
    except Exception:
        errors.append(1)


async def concurrent(port, level, users, seconds):
    lat, errors = [], []
    stop = time.monotonic() + seconds

    async def worker(k):
        user = users[k % len(users)]
        while time.monotonic() < stop:
            await short_session(port, user, lat, errors)

    t = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(level)))
    elapsed = time.monotonic() - t
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    return len(lat) / elapsed, p99, len(errors)


# ---------------------------------------------------------------- main


def med(v):
    return statistics.median(v) if v else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=int(os.environ.get("MIB", 1024)))
    ap.add_argument("--messages", type=int, default=int(os.environ.get("MESSAGES", 100000)))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 2)))
    ap.add_argument("--retr-mib", type=int, default=int(os.environ.get("RETR_MIB", 256)))
    ap.add_argument("--retr-rounds", type=int, default=int(os.environ.get("RETR_ROUNDS", 0)),
                    help="extra rounds of the RETR row only, servers alternated (its ratios "
                         "move with the machine's load; more rounds, steadier medians)")
    ap.add_argument("--logins", type=int, default=5)
    ap.add_argument("--levels", default=os.environ.get("LEVELS", "2,8,50,500"))
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--json", default=os.path.join(WORK, "results.json"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/mboxpopd"),
                    help="the mboxpopd binary (e.g. an older build, for before/after)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="a subset to measure")
    a = ap.parse_args()
    measured = [s for s in SERVERS if s in a.servers.split(",")]
    if os.geteuid() != 0:
        sys.exit("run as root")
    levels = [int(x) for x in a.levels.split(",") if x]
    users = max([a.users] + levels) + 1  # mbb0 holds the big spool
    os.makedirs(WORK, exist_ok=True)
    ensure_users(users)
    popa3d = ensure_popa3d()
    configs(users)
    master = os.path.join(WORK, "master.mbox")
    big_mbox(master, a.messages, a.mib)
    small = os.path.join(WORK, "small.mbox")
    small_mbox(small)
    names = [f"mbb{i}" for i in range(users)]
    for s in SERVERS:
        for u in names[1:]:
            place(s, u, small)
    procs = start_servers(popa3d, a.bin, master)
    pids = {s: procs[s].pid for s in ALL}
    res = {s: {} for s in ALL}

    def add(s, k, v):
        res[s].setdefault(k, []).append(v)

    def retr_row(s):
        total, dt, c = retr_run(s, pids[s], BIG, a.retr_mib << 20)
        add(s, "retr_mb_s", total / dt / 1e6)
        add(s, "retr_cpu_s_per_gb", c / (total / 1e9))

    turns = measured + ["floor"]

    try:
        for r in range(a.rounds):
            order = turns[r % len(turns):] + turns[:r % len(turns)]
            for s in order:
                pid = pids[s]
                if s == "floor":
                    retr_row(s)
                    continue
                place(s, BIG, master)
                time.sleep(0.05)
                dt, n, rss, c = first_login(s, pid, BIG)
                add(s, "first_login_s", dt)
                add(s, "first_login_cpu_s", c)
                add(s, "peak_rss_kib", rss)
                add(s, "messages", n)
                c0 = cpu(pid)
                lat = [login_session(s, BIG) for _ in range(a.logins)]
                add(s, "login_cpu_s", (cpu(pid) - c0) / a.logins)
                res[s].setdefault("login_s", []).extend(lat)
                res[s].setdefault("list_uidl_s", []).extend(
                    login_session(s, BIG, ("LIST", "UIDL")) for _ in range(3))
                retr_row(s)
                for which in ["last", "middle", "first"]:
                    dt, wb = dele(s, pid, BIG, which)
                    # The session after a commit (clients that keep mail for N days delete
                    # the oldest every time): does the server have to read the file again?
                    add(s, f"login_after_dele_{which}_s", login_session(s, BIG))
                    add(s, f"dele_{which}_s", dt)
                    # /proc/PID/io of the daemon; the others commit in a process that is gone
                    # by the time QUIT is answered, so their bytes are not measurable this way.
                    if s == "mboxpopd":
                        add(s, f"dele_{which}_write_bytes", wb)
                print(f"round {r + 1} {s}: " + ", ".join(
                    f"{k}={v[-1]:.4g}" for k, v in res[s].items()), flush=True)
        for r in range(a.retr_rounds):
            order = turns[r % len(turns):] + turns[:r % len(turns)]
            for s in order:
                retr_row(s)
            print(f"RETR round {r + 1}: " + ", ".join(
                f"{s} {res[s]['retr_mb_s'][-1]:.0f} MB/s {res[s]['retr_cpu_s_per_gb'][-1]:.2f} s/GB"
                for s in order), flush=True)
        for level in levels:
            for s in measured:
                rate, p99, err = asyncio.run(concurrent(PORTS[s], level, names[1:], a.seconds))
                add(s, f"c{level}_sessions_s", rate)
                add(s, f"c{level}_p99_s", p99)
                add(s, f"c{level}_errors", err)
                print(f"{s} {level} clients: {rate:.0f} sessions/s, p99 {p99 * 1000:.0f} ms, {err} errors",
                      flush=True)
    finally:
        stop_servers(procs)
    summary = {s: {k: med(v) for k, v in res[s].items()} for s in ALL}
    with open(a.json, "w") as f:
        json.dump({"args": vars(a), "raw": res, "median": summary}, f, indent=1)
    report(summary, a)


def report(m, a):
    rows = [
        ("first login on the fresh file, ms", "first_login_s", 1000, "lower"),
        ("later login session (USER, PASS, STAT, QUIT), p50 ms", "login_s", 1000, "lower"),
        ("server CPU per later login, ms", "login_cpu_s", 1000, "lower"),
        ("LIST+UIDL session, p50 ms", "list_uidl_s", 1000, "lower"),
        ("login session right after a DELE first commit, ms", "login_after_dele_first_s", 1000, "lower"),
        ("RETR one at a time, MB/s", "retr_mb_s", 1, "higher"),
        ("server CPU per GB sent, s", "retr_cpu_s_per_gb", 1, "lower"),
        ("DELE last + QUIT: commit ms", "dele_last_s", 1000, "lower"),
        ("DELE middle + QUIT: commit ms", "dele_middle_s", 1000, "lower"),
        ("DELE first + QUIT: commit ms", "dele_first_s", 1000, "lower"),
        ("DELE middle: bytes written, MB (mboxpopd only)", "dele_middle_write_bytes", 1e-6, "lower"),
        ("DELE first: bytes written, MB (mboxpopd only)", "dele_first_write_bytes", 1e-6, "lower"),
        ("peak RSS during a first login, MB", "peak_rss_kib", 1.024e-3, "lower"),
    ]
    for level in [int(x) for x in a.levels.split(",") if x]:
        rows.append((f"sessions/s, {level} concurrent clients", f"c{level}_sessions_s", 1, "higher"))
        rows.append((f"session p99 at {level} clients, ms", f"c{level}_p99_s", 1000, "lower"))
    print(f"\n{a.messages} messages, {a.mib} MiB, {a.rounds} rounds\n")
    print("| metric | mboxpopd | Dovecot | popa3d | mboxpopd vs Dovecot | mboxpopd vs popa3d |")
    print("|---|---|---|---|---|---|")
    for label, key, scale, better in rows:
        v = [m[s].get(key, float("nan")) * scale for s in SERVERS]

        def ratio(o):
            if not o or o != o or v[0] != v[0]:
                return "–"
            x = v[0] / o
            return f"{x:.2f}×"

        print(f"| {label} | {v[0]:.4g} | {v[1]:.4g} | {v[2]:.4g} | {ratio(v[1])} | {ratio(v[2])} |")
    print("\nRatios are mboxpopd / other (time, CPU, bytes, RSS: below 1 is better; MB/s and sessions/s: above 1 is better).")
    f, me = m["floor"], m["mboxpopd"]
    if "retr_mb_s" in f:
        print(f"\nRETR floor (examples/retr_floor.rs: no file, no encoder, one write per RETR): "
              f"{f['retr_mb_s']:.4g} MB/s, {f['retr_cpu_s_per_gb']:.3g} s server CPU per GB sent; "
              f"mboxpopd at {me.get('retr_mb_s', float('nan')) / f['retr_mb_s']:.2f}× its MB/s and "
              f"{me.get('retr_cpu_s_per_gb', float('nan')) / f['retr_cpu_s_per_gb']:.2f}× its CPU per GB.")


if __name__ == "__main__":
    main()
