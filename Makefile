# mboxpopd — build, test, demo and install.
#
#   make run      build and start a demo server on 127.0.0.1:1110 (see scripts/demo.sh)
#   make test     the test command CI runs (.ci/run)
#   make install  PREFIX=/usr/local DESTDIR= (staged installs for packaging)
#   make fuzz     every fuzz target for FUZZ_SECONDS each (nightly + cargo-fuzz; see docs/security.md)

CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/mboxpopd
SYSCONFDIR ?= /etc
INSTALL ?= install

BIN := target/release/mboxpopd

.PHONY: all build debug test lint run install uninstall clean man-check fuzz fuzz-build fuzz-check bench bench-idle

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
	$(CARGO) build --release --locked --bin mboxpopd --example storage_bench --example retr_floor
	MIB=$(MIB) MESSAGES=$(MESSAGES) ROUNDS=$(ROUNDS) python3 benches/bench.py

# Hold 10,000 idle connections against the release daemon (root; see BENCHMARKS.md).
IDLE ?= 10000
bench-idle:
	$(CARGO) build --release --locked --bin mboxpopd
	python3 benches/idle.py --connections $(IDLE)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# Renders both man pages with every groff warning turned into output; any output fails.
man-check:
	@command -v groff >/dev/null || { echo "SKIPPED man-check: groff not installed"; exit 0; }; \
	out=$$(groff -man -Tutf8 -ww -z man/mboxpopd.8 man/mboxpopd.conf.5 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "man pages OK"

# Fuzzing (not part of `test`): libFuzzer targets in fuzz/, built with nightly and cargo-fuzz.
# Seeds in fuzz/corpus/<target> are read-only; what a run finds goes to fuzz/target/corpus.
# A crash stops `make fuzz` with an error; the input is saved under fuzz/artifacts/<target>/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= command sasl line_reader index index_cache encode config passwd_file
FUZZ_CARGO   ?= cargo +nightly

fuzz-check:
	@$(FUZZ_CARGO) fuzz --version >/dev/null 2>&1 || { \
		echo "cargo-fuzz (and the nightly toolchain) are needed: cargo install cargo-fuzz"; \
		exit 1; }

fuzz-build: fuzz-check
	$(FUZZ_CARGO) fuzz build

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
		mkdir -p fuzz/target/corpus/$$t; \
		$(FUZZ_CARGO) fuzz run $$t $(CURDIR)/fuzz/target/corpus/$$t $(CURDIR)/fuzz/corpus/$$t \
			-- -max_total_time=$(FUZZ_SECONDS) || { echo "FAILED: fuzz target $$t"; exit 1; }; \
	done; echo "fuzz: all targets ran $(FUZZ_SECONDS)s without a failure"

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
		$(DESTDIR)$(DOCDIR)/examples/systemd $(DESTDIR)$(DOCDIR)/examples/xinetd.d \
		$(DESTDIR)$(DOCDIR)/examples/fail2ban/filter.d $(DESTDIR)$(DOCDIR)/examples/fail2ban/jail.d
	$(INSTALL) -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/mboxpopd
	$(INSTALL) -m 0644 man/mboxpopd.8 $(DESTDIR)$(MANDIR)/man8/mboxpopd.8
	$(INSTALL) -m 0644 man/mboxpopd.conf.5 $(DESTDIR)$(MANDIR)/man5/mboxpopd.conf.5
	$(INSTALL) -m 0644 README.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 0644 etc/mboxpopd.conf etc/passwd.example $(DESTDIR)$(DOCDIR)/examples/
	$(INSTALL) -m 0644 etc/fail2ban/filter.d/mboxpopd.conf $(DESTDIR)$(DOCDIR)/examples/fail2ban/filter.d/
	$(INSTALL) -m 0644 etc/fail2ban/jail.d/mboxpopd.conf $(DESTDIR)$(DOCDIR)/examples/fail2ban/jail.d/
	@set -e; for f in inetd.conf xinetd.d/pop3 systemd/mboxpopd.service systemd/mboxpopd.socket \
		systemd/mboxpopd@.service; do \
		$(EXAMPLE_SED) etc/$$f > $(DESTDIR)$(DOCDIR)/examples/$$f; \
		chmod 0644 $(DESTDIR)$(DOCDIR)/examples/$$f; \
		echo "installed $(DESTDIR)$(DOCDIR)/examples/$$f"; \
	done
	$(INSTALL) -d $(DESTDIR)$(DOCDIR)/examples/pam.d
	$(INSTALL) -m 0644 etc/pam.d/mboxpopd $(DESTDIR)$(DOCDIR)/examples/pam.d/mboxpopd
	@# Never overwrite an admin's configuration (nor a PAM service copied from popa3d).
	@set -e; for f in mboxpopd.conf pam.d/mboxpopd; do \
		if [ ! -e $(DESTDIR)$(SYSCONFDIR)/$$f ]; then \
			$(INSTALL) -d $$(dirname $(DESTDIR)$(SYSCONFDIR)/$$f); \
			$(INSTALL) -m 0644 etc/$$f $(DESTDIR)$(SYSCONFDIR)/$$f; \
			echo "installed $(DESTDIR)$(SYSCONFDIR)/$$f"; \
		else \
			echo "kept existing $(DESTDIR)$(SYSCONFDIR)/$$f"; \
		fi; \
	done

uninstall:
	@# /etc/mboxpopd.conf and /etc/pam.d/mboxpopd stay: they may hold the admin's changes.
	rm -f $(DESTDIR)$(SBINDIR)/mboxpopd $(DESTDIR)$(MANDIR)/man8/mboxpopd.8 \
		$(DESTDIR)$(MANDIR)/man5/mboxpopd.conf.5
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	$(CARGO) clean
	rm -rf run
