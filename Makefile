# mboxpopd — build, test, demo and install.
#
#   make run      build and start a demo server on 127.0.0.1:1110 (see scripts/demo.sh)
#   make test     the test command CI runs (.ci/run)
#   make install  PREFIX=/usr/local DESTDIR= (staged installs for packaging)

CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/mboxpopd
SYSCONFDIR ?= /etc
INSTALL ?= install

BIN := target/release/mboxpopd

.PHONY: all build debug test lint run install uninstall clean man-check bench

all: build

build:
	$(CARGO) build --release --locked

# Used by `make run` and the tests: no release build needed to try it out.
debug:
	$(CARGO) build --locked

# The one test command (README, .ci/run): every test target, then the man pages.
test:
	$(CARGO) test --locked --all-targets --no-fail-fast
	@$(MAKE) --no-print-directory man-check

# Benchmark against Dovecot and popa3d over TCP on loopback (root; see BENCHMARKS.md).
# MIB/MESSAGES size the generated spool; the table in BENCHMARKS.md is MIB=1024 MESSAGES=100000.
MIB      ?= 128
MESSAGES ?= 12500
ROUNDS   ?= 2
bench:
	$(CARGO) build --release --locked --bin mboxpopd --example storage_bench
	MIB=$(MIB) MESSAGES=$(MESSAGES) ROUNDS=$(ROUNDS) python3 benches/bench.py

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# Renders both man pages with every groff warning turned into output; any output fails.
man-check:
	@command -v groff >/dev/null || { echo "SKIPPED man-check: groff not installed"; exit 0; }; \
	out=$$(groff -man -Tutf8 -ww -z man/mboxpopd.8 man/mboxpopd.conf.5 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "man pages OK"

run: debug
	./scripts/demo.sh target/debug/mboxpopd

# The release binary, built when missing. `install` does not rebuild: `make build` as
# yourself, then `sudo make install` (root may not have cargo in its PATH).
$(BIN):
	$(CARGO) build --release --locked

# Examples name the binary by its installed path, whatever PREFIX is.
EXAMPLE_SED = sed -e 's|/usr/local/sbin/mboxpopd|$(SBINDIR)/mboxpopd|g'

install: $(BIN)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(DOCDIR)/examples/systemd $(DESTDIR)$(DOCDIR)/examples/xinetd.d
	$(INSTALL) -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/mboxpopd
	$(INSTALL) -m 0644 man/mboxpopd.8 $(DESTDIR)$(MANDIR)/man8/mboxpopd.8
	$(INSTALL) -m 0644 man/mboxpopd.conf.5 $(DESTDIR)$(MANDIR)/man5/mboxpopd.conf.5
	$(INSTALL) -m 0644 README.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 0644 etc/mboxpopd.conf etc/passwd.example $(DESTDIR)$(DOCDIR)/examples/
	@set -e; for f in inetd.conf xinetd.d/pop3 systemd/mboxpopd.service systemd/mboxpopd.socket \
		systemd/mboxpopd@.service; do \
		$(EXAMPLE_SED) etc/$$f > $(DESTDIR)$(DOCDIR)/examples/$$f; \
		chmod 0644 $(DESTDIR)$(DOCDIR)/examples/$$f; \
		echo "installed $(DESTDIR)$(DOCDIR)/examples/$$f"; \
	done
	@# Never overwrite an admin's configuration.
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/mboxpopd.conf ]; then \
		$(INSTALL) -d $(DESTDIR)$(SYSCONFDIR) && \
		$(INSTALL) -m 0644 etc/mboxpopd.conf $(DESTDIR)$(SYSCONFDIR)/mboxpopd.conf && \
		echo "installed $(DESTDIR)$(SYSCONFDIR)/mboxpopd.conf"; \
	else \
		echo "kept existing $(DESTDIR)$(SYSCONFDIR)/mboxpopd.conf"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/mboxpopd $(DESTDIR)$(MANDIR)/man8/mboxpopd.8 \
		$(DESTDIR)$(MANDIR)/man5/mboxpopd.conf.5
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	$(CARGO) clean
	rm -rf run
