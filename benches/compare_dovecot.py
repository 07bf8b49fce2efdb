#!/usr/bin/env python3
"""Compare mboxpopd with Dovecot's POP3 on the same machine, in the same run.

Both servers run one session each over pipes (mboxpopd in inetd mode `-i`, Dovecot's pop3
binary pre-authenticated, as `doveadm`'s and inetd setups run it), on a fresh copy of the same
generated mbox, as the same unprivileged user. Dovecot keeps no index between trials
(INDEX=MEMORY), so both parse the mbox at login, as mboxpopd always does.

For every scenario the script reports the median wall time and the peak RSS of the server
process (from wait4), and the ratio mboxpopd / Dovecot. Machines are noisy: read the ratios,
not the timings.

Usage: benches/compare_dovecot.py [--messages N] [--body-kib K] [--trials T] [--binary PATH]
Needs: root (to run both servers as the `mbench` user), Debian's dovecot-pop3d and time.
"""

import argparse
import os
import pwd
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

DOVECOT_POP3 = "/usr/lib/dovecot/pop3"
BENCH_USER = "mbench"


def generate_mbox(path, messages, body_kib, seed=1):
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "mail", "spool", "pop3", "From", ".dot", "x" * 40]
    with open(path, "wb") as f:
        for i in range(messages):
            f.write(b"From sender%d@example.org Thu Nov 26 03:32:%02d 2026\n" % (i, i % 60))
            f.write(b"Received: from relay.example.org by mx.example.org; Thu, 26 Nov 2026 03:32:14 +0000\n")
            f.write(b"From: Sender %d <sender%d@example.org>\n" % (i, i))
            f.write(b"To: user@example.org\n")
            f.write(b"Subject: benchmark message %d\n" % i)
            f.write(b"Message-ID: <%d.bench@example.org>\n" % i)
            f.write(b"Date: Thu, 26 Nov 2026 03:32:14 +0000\n\n")
            target = rng.randint(body_kib * 512, body_kib * 1536)
            written = 0
            while written < target:
                line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
                if line.startswith("From"):
                    line = ">" + line
                data = line.encode() + b"\n"
                f.write(data)
                written += len(data)
            f.write(b"\n")


class Session:
    def __init__(self, argv, env):
        # ru_maxrss from wait4 would include the RSS this Python process had when it forked;
        # GNU time's fork and setpriv's exec keep the server's own peak apart.
        self.rss_file = tempfile.NamedTemporaryFile(prefix="rss-", delete=False).name
        pw = pwd.getpwnam(BENCH_USER)
        argv = ["/usr/bin/time", "-f", "%M", "-o", self.rss_file, "setpriv",
                "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups", "--"] + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, bufsize=0)
        self.buf = b""

    def _readline(self):
        while b"\n" not in self.buf:
            chunk = self.proc.stdout.read(65536)
            if not chunk:
                raise RuntimeError("server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def command(self, line, multiline=False):
        self.proc.stdin.write(line.encode() + b"\r\n")
        status = self._readline()
        if not status.startswith(b"+OK"):
            raise RuntimeError("%s -> %r" % (line, status))
        if not multiline:
            return status, b""
        body = []
        while True:
            l = self._readline()
            if l == b".\r\n":
                return status, b"".join(body)
            body.append(l)

    def finish(self):
        self.proc.stdin.close()
        self.proc.stdout.read()
        self.proc.wait()
        with open(self.rss_file) as f:
            rss = int(f.read().split()[-1])  # KiB
        os.unlink(self.rss_file)
        return rss


def scenario(kind, messages):
    """The client side of one scenario: a list of (command, multiline)."""
    if kind == "login+stat":
        return [("STAT", False), ("UIDL", True), ("LIST", True)]
    if kind == "retr-all":
        return [("LIST", True)] + [("RETR %d" % i, True) for i in range(1, messages + 1)]
    if kind == "top-all":
        return [("TOP %d 0" % i, True) for i in range(1, messages + 1)]
    if kind.startswith("dele-"):
        n = {"dele-first": 1, "dele-middle": messages // 2, "dele-last": messages}[kind]
        return [("STAT", False), ("DELE %d" % n, False)]
    raise ValueError(kind)


def run_trial(server, kind, work, mbox_template, messages, binary):
    mbox = os.path.join(work, "bench")
    shutil.copyfile(mbox_template, mbox)
    os.chown(mbox, pwd.getpwnam(BENCH_USER).pw_uid, -1)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "USER": BENCH_USER, "HOME": work}
    if server == "dovecot":
        argv = [DOVECOT_POP3, "-c", os.path.join(work, "dovecot.conf")]
        login = []
    else:
        argv = [binary, "-i", "-c", os.path.join(work, "mboxpopd.conf")]
        login = [("USER bench", False), ("PASS bench", False)]
    start = time.perf_counter()
    s = Session(argv, env)
    if server == "mboxpopd":
        s._readline()  # greeting; Dovecot's pre-authenticated pop3 sends none
    for line, multi in login + scenario(kind, messages):
        s.command(line, multi)
    s.command("QUIT")
    rss = s.finish()
    return time.perf_counter() - start, rss


def write_configs(work, binary):
    with open(os.path.join(work, "dovecot.conf"), "w") as f:
        f.write(
            "base_dir = %(w)s/dovecot-run\nlog_path = %(w)s/dovecot.log\nprotocols = pop3\nssl = no\n"
            "mail_location = mbox:%(w)s/mail:INBOX=%(w)s/bench:INDEX=MEMORY\n" % {"w": work}
        )
    with open(os.path.join(work, "passwd"), "w") as f:
        f.write("bench:{PLAIN}bench\n")
    with open(os.path.join(work, "mboxpopd.conf"), "w") as f:
        f.write(
            "auth = passwd-file\npasswd_file = %(w)s/passwd\nmailbox = %(w)s/%%u\n"
            "plaintext_auth = always\nauth_failure_delay = 0\nspool_group = \n" % {"w": work}
        )
    os.makedirs(os.path.join(work, "mail"), exist_ok=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--body-kib", type=int, default=8)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "mboxpopd"))
    ap.add_argument("--scenarios", default="login+stat,top-all,retr-all,dele-first,dele-middle,dele-last")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: both servers run as the unprivileged user %s" % BENCH_USER)
    try:
        pwd.getpwnam(BENCH_USER)
    except KeyError:
        subprocess.check_call(["useradd", "-M", "-s", "/usr/sbin/nologin", BENCH_USER])
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="mboxpopd-bench-")
    os.chmod(work, 0o755)
    write_configs(work, binary)
    subprocess.check_call(["chown", "-R", BENCH_USER, work])
    template = os.path.join(work, "template.mbox")
    generate_mbox(template, args.messages, args.body_kib)
    size_mib = os.path.getsize(template) / 2**20
    print("mbox: %d messages, %.1f MiB; %d trials per cell; %s" % (args.messages, size_mib, args.trials, time.strftime("%Y-%m-%d")))
    print("%-12s %12s %12s %8s %12s %12s %8s" % ("scenario", "mboxpopd s", "dovecot s", "ratio", "mboxpopd KiB", "dovecot KiB", "ratio"))
    for kind in args.scenarios.split(","):
        results = {"mboxpopd": [], "dovecot": []}
        for _ in range(args.trials):
            # Alternate the servers so drift in machine load hits both alike.
            for server in ("mboxpopd", "dovecot"):
                results[server].append(run_trial(server, kind, work, template, args.messages, binary))
        med = {k: statistics.median(t for t, _ in v) for k, v in results.items()}
        rss = {k: max(r for _, r in v) for k, v in results.items()}
        print("%-12s %12.3f %12.3f %8.2f %12d %12d %8.2f" % (
            kind, med["mboxpopd"], med["dovecot"], med["mboxpopd"] / med["dovecot"],
            rss["mboxpopd"], rss["dovecot"], rss["mboxpopd"] / max(rss["dovecot"], 1)))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
