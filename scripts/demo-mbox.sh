#!/bin/sh
# Writes the demo mbox (mboxo, LF line ends) to stdout.
cat <<'MBOX'
From alice@example.org Thu Nov 26 09:00:00 2026
Return-Path: <alice@example.org>
From: Alice <alice@example.org>
To: demo@localhost
Subject: Welcome to mboxpopd
Date: Thu, 26 Nov 2026 09:00:00 +0000
Message-ID: <welcome.1@example.org>

Hello demo,

this message lives in a plain mbox file. mboxpopd serves it over POP3
with CRLF line ends, and the size LIST reports is exactly what a client receives.

From bob@example.org Thu Nov 26 09:05:00 2026
From: Bob <bob@example.org>
To: demo@localhost
Subject: A line with a single dot
Date: Thu, 26 Nov 2026 09:05:00 +0000
Message-ID: <dot.2@example.org>

The next line is a lone dot; on the wire it is sent as "..":
.
and this line starts with a dot too:
.. two dots become three.

From carol@example.org Thu Nov 26 09:10:00 2026
From: Carol <carol@example.org>
To: demo@localhost
Subject: Quoted From line
Date: Thu, 26 Nov 2026 09:10:00 +0000
Message-ID: <from.3@example.org>

An MDA quoted the next body line so that it does not start a new message:
>From the desk of Carol: mbox is older than POP3 itself.
It stays one message.

From dave@example.org Thu Nov 26 09:15:00 2026
From: Dave <dave@example.org>
To: demo@localhost
Subject: Delete me
Date: Thu, 26 Nov 2026 09:15:00 +0000
Message-ID: <delete.4@example.org>

Try DELE 4 and QUIT, then look at run/mail/demo: the file keeps
messages 1-3 byte for byte, rewritten in place.

MBOX
