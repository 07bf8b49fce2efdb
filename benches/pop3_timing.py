#!/usr/bin/env python3
"""Time a POP3 server's maildrop work from the client side, for BENCHMARKS.md.

  pop3_timing.py HOST PORT USER PASSWORD login          # PASS..STAT reply (index at login)
  pop3_timing.py HOST PORT USER PASSWORD dele N         # DELE N, then time QUIT -> +OK

Plain POP3 over loopback; prints seconds. Used against mboxpopd and Dovecot alike.
"""
import socket
import sys
import time


def main():
    host, port, user, password, mode = sys.argv[1:6]
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")

    def cmd(line):
        s.sendall(line.encode() + b"\r\n")
        reply = f.readline()
        if not reply.startswith(b"+OK"):
            sys.exit("%s -> %r" % (line.split()[0], reply))
        return reply

    if not f.readline().startswith(b"+OK"):
        sys.exit("no greeting")
    cmd("USER " + user)
    # Some servers (Dovecot) answer PASS before opening the maildrop: time PASS through STAT.
    t = time.monotonic()
    cmd("PASS " + password)
    stat = cmd("STAT").split()
    login = time.monotonic() - t
    if mode == "login":
        print("login %.3f s, %s messages, %s octets" % (login, stat[1].decode(), stat[2].decode()))
        cmd("QUIT")
    else:
        cmd("DELE " + sys.argv[6])
        t = time.monotonic()
        cmd("QUIT")
        print("quit-with-dele %.3f s (login %.3f s)" % (time.monotonic() - t, login))


main()
