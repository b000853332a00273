# keystrap — see README.md.  `make`, `make check`, `make install DESTDIR=… PREFIX=…`
VERSION    := 0.1.0
PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
COMPLETIONDIR ?= $(or $(shell $(PKG_CONFIG) --variable=completionsdir bash-completion 2>/dev/null),$(PREFIX)/share/bash-completion/completions)
# systemd's own directories for units and sysusers.d, as its pkg-config file names them.
UNITDIR    ?= $(or $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null),/usr/lib/systemd/system)
SYSUSERSDIR?= $(or $(shell $(PKG_CONFIG) --variable=sysusersdir systemd 2>/dev/null),/usr/lib/sysusers.d)
BUILD      ?= build
CC         ?= cc
CLANG      ?= clang
PKG_CONFIG ?= pkg-config
FUZZ_SECONDS ?= 15

PKGS := tss2-esys tss2-mu tss2-rc tss2-tctildr libcryptsetup blkid json-c libssl libcrypto
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS   = $(shell $(PKG_CONFIG) --libs $(PKGS))

# -Werror is on (CI builds with it); a packager on a newer compiler can set WERROR=.
WERROR  ?= -Werror
WARN    := -Wall -Wextra $(WERROR) -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
HARDEN  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE -fstack-clash-protection
CFLAGS  ?= -O2 -g
# -ffile-prefix-map: the build's path never reaches the binary, so two clones build alike.
ALL_CFLAGS  = -std=gnu11 -D_GNU_SOURCE $(WARN) $(CPPFLAGS) $(CFLAGS) -ffile-prefix-map=$(CURDIR)=. -Ilib -DKEYSTRAP_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(LDFLAGS)
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRC  := $(wildcard lib/*.c)
HOOK_SRC := $(wildcard hook/*.c)
UNIT_SRC := $(wildcard tests/unit/test-*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz-*.c)
HDRS     := $(wildcard lib/*.h hook/*.h tests/unit/*.h)

LIB_OBJ      := $(LIB_SRC:%.c=$(BUILD)/%.o)
HOOK_OBJ     := $(HOOK_SRC:%.c=$(BUILD)/%.o)
ASAN_LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/asan/%.o)
ASAN_HOOK_OBJ:= $(HOOK_SRC:%.c=$(BUILD)/asan/%.o)
UNIT_BIN     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/asan/unit/%)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

.PHONY: all deps check check-unit check-bats check-deb check-fuzz check-cleanup fuzz bench demo install clean shellcheck
all: $(BUILD)/keystrap

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(HARDEN) -c $< -o $@

$(BUILD)/keystrap: $(HOOK_OBJ) $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) $(HARDEN) $^ -o $@ $(ALL_LDFLAGS) $(PKG_LIBS)

# Sanitizer build: what make check runs every bats test against.
$(BUILD)/asan/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -fPIE -c $< -o $@

$(BUILD)/asan/keystrap: $(ASAN_HOOK_OBJ) $(ASAN_LIB_OBJ)
	$(CC) $(ALL_CFLAGS) $(SAN) $^ -o $@ -pie $(PKG_LIBS)

$(BUILD)/asan/unit/%: tests/unit/%.c $(ASAN_LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -Itests/unit $< $(ASAN_LIB_OBJ) -o $@ $(PKG_LIBS)

# libFuzzer targets reuse the pure parsers only: no TPM, no disk.
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ilib $(PKG_CFLAGS) \
		$< $(LIB_SRC) -o $@ $(PKG_LIBS)

deps:
	@bash tools/install-deps.sh

check: deps
	@bash tests/run-all.sh

check-unit: $(UNIT_BIN)
	@bash tests/unit/run.sh $(UNIT_BIN)

check-bats: $(BUILD)/keystrap $(BUILD)/asan/keystrap
	@KEYSTRAP=$(abspath $(BUILD)/asan/keystrap) bats --tap tests/bats

# The source rules no compiler enforces (tools/check-cleanup.sh); TAP like the suites.
check-cleanup:
	@bash tools/check-cleanup.sh

# The Debian packages: built twice in two paths (bit-identical), lintian, installed and run in a
# fresh Debian 12 root.
check-deb:
	@bash tests/deb/run.sh

check-fuzz: $(FUZZ_BIN)
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

fuzz: FUZZ_SECONDS = 300
fuzz: check-fuzz

# Benchmark instrumentation: a TCTI that counts the TPM commands passing through it.
$(BUILD)/bench/libtss2-tcti-count.so.0: bench/tcti-count.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIC \
		$(shell $(PKG_CONFIG) --cflags tss2-tctildr) -shared -Wl,-soname,$(@F) -Wl,-z,relro,-z,now \
		$< -o $@ $(shell $(PKG_CONFIG) --libs tss2-tctildr)

bench: deps $(BUILD)/keystrap $(BUILD)/bench/libtss2-tcti-count.so.0
	@BUILD=$(BUILD) bash bench/unlock.sh

# What the initramfs carries for keystrap against systemd-cryptsetup's TPM path (figures).
bench-closure: $(BUILD)/keystrap
	@BUILD=$(BUILD) bash bench/closure.sh

demo: deps $(BUILD)/keystrap
	@bash tools/demo.sh

shellcheck:
	shellcheck -x tools/*.sh tests/*.sh tests/unit/*.sh tests/fuzz/*.sh tests/lib/*.bash bench/*.sh tests/deb/run.sh completion/keystrap.bash
	shellcheck -x -s bash mkinitcpio/install/*
	shellcheck -s sh mkinitcpio/hooks/* vm/guest/mkinitcpio-init vm/guest/mkinitcpio-net vm/guest/udhcpc.script
	shellcheck -x vm/*.sh dracut/59keystrap/module-setup.sh
	shellcheck -s sh units/keystrap-generator vm/guest/agent vm/guest/consumer vm/guest/install

# Man pages carry the release they describe: VERSION, and the date of the last commit (or
# SOURCE_DATE_EPOCH, as dpkg sets it), so two builds of one tree install the same pages.
MAN_DATE := $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)} +%Y-%m-%d)
MAN_OUT  := $(patsubst man/%,$(BUILD)/man/%,$(wildcard man/*.[0-9]))
$(BUILD)/man/%: man/% Makefile
	@mkdir -p $(@D)
	sed -E '1s/^(\.TH [^ ]+ [0-9]) "[^"]*" "keystrap [^"]*"/\1 "$(MAN_DATE)" "keystrap $(VERSION)"/' $< >$@

install: $(BUILD)/keystrap $(MAN_OUT)
	install -Dm755 $(BUILD)/keystrap $(DESTDIR)$(SBINDIR)/keystrap
	install -Dm644 completion/keystrap.bash $(DESTDIR)$(COMPLETIONDIR)/keystrap
	ln -sf keystrap $(DESTDIR)$(COMPLETIONDIR)/keystrap-server
	for m in $(MAN_OUT); do s=$${m##*.}; install -Dm644 $$m $(DESTDIR)$(MANDIR)/man$$s/$$(basename $$m); done
	install -Dm644 keystrap.conf.example $(DESTDIR)$(PREFIX)/share/doc/keystrap/keystrap.conf.example
	# Runtime units (after switch_root): credential renewal and drift check; enable the timers.
	for u in keystrap-renew.service keystrap-renew.timer keystrap-verify.service keystrap-verify.timer; do \
		install -Dm644 units/$$u $(DESTDIR)/usr/lib/systemd/system/$$u; done

# keystrap-server, its hardened service (ExecStart follows SBINDIR) and the user it runs as.
install-server: $(BUILD)/keystrap-server $(BUILD)/keystrap-server.service
	install -Dm755 $(BUILD)/keystrap-server $(DESTDIR)$(SBINDIR)/keystrap-server
	install -Dm644 $(BUILD)/keystrap-server.service $(DESTDIR)$(UNITDIR)/keystrap-server.service
	install -Dm644 units/keystrap-server.sysusers $(DESTDIR)$(SYSUSERSDIR)/keystrap-server.conf
	install -Dm644 keystrap-server.json.example $(DESTDIR)$(PREFIX)/share/doc/keystrap/keystrap-server.json.example
	install -dm750 $(DESTDIR)$(SYSCONFDIR)/keystrap-server

$(BUILD)/keystrap-server.service: units/keystrap-server.service.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' $< >$@

install: install-server
.PHONY: install-server

clean:
	rm -rf $(BUILD)

$(BUILD)/sd-token-open: tests/lib/sd-token-open.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(WARN) -O1 $< -o $@ $(shell $(PKG_CONFIG) --cflags --libs libcryptsetup)

check-bats: $(BUILD)/sd-token-open

# The attestation core (EK, AK, MakeCredential, ActivateCredential, quote) against a real swtpm:
# sanitizer build for tests/bats/attest-crypto.bats, plain build for its bench subcommand.
$(BUILD)/asan/attest-check: tests/lib/attest-check.c $(ASAN_LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) $< $(ASAN_LIB_OBJ) -o $@ $(PKG_LIBS)

$(BUILD)/attest-check: tests/lib/attest-check.c $(LIB_OBJ) $(HDRS)
	$(CC) $(ALL_CFLAGS) $(HARDEN) $< $(LIB_OBJ) -o $@ $(ALL_LDFLAGS) $(PKG_LIBS)

check-bats: $(BUILD)/asan/attest-check

# keystrap's HTTPS client on its own, against canned and misbehaving servers (tests/bats/https.bats).
$(BUILD)/asan/https-post: tests/lib/https-post.c $(ASAN_LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) $< $(ASAN_LIB_OBJ) -o $@ $(PKG_LIBS)

check-bats: $(BUILD)/asan/https-post

# The dracut module and its initrd units. dracut only looks in /usr/lib/dracut/modules.d and
# the module takes the units from /usr/lib/systemd, so these paths ignore PREFIX.
install-dracut: install-units
	install -Dm755 dracut/59keystrap/module-setup.sh $(DESTDIR)/usr/lib/dracut/modules.d/59keystrap/module-setup.sh

# The initrd units and generator both initramfs tools take from /usr/lib/systemd.
install-units:
	install -Dm644 units/keystrap-unlock@.service $(DESTDIR)/usr/lib/systemd/system/keystrap-unlock@.service
	install -Dm644 units/keystrap-lock.service $(DESTDIR)/usr/lib/systemd/system/keystrap-lock.service
	install -Dm644 units/keystrap-enter-initrd.service $(DESTDIR)/usr/lib/systemd/system/keystrap-enter-initrd.service
	install -Dm755 units/keystrap-generator $(DESTDIR)/usr/lib/systemd/system-generators/keystrap-generator
	install -Dm644 units/keystrap-handoff.service $(DESTDIR)/usr/lib/systemd/system/keystrap-handoff.service
	install -Dm644 units/keystrap-leave-initrd.service $(DESTDIR)/usr/lib/systemd/system/keystrap-leave-initrd.service
	install -Dm644 units/99-keystrap-dhcp.network $(DESTDIR)/usr/lib/systemd/network/99-keystrap-dhcp.network

# The mkinitcpio hooks (busybox: keystrap; systemd: sd-keystrap, which needs the units above).
# mkinitcpio looks in /usr/lib/initcpio, whatever PREFIX is.
install-mkinitcpio: install-units
	install -Dm644 mkinitcpio/install/keystrap $(DESTDIR)/usr/lib/initcpio/install/keystrap
	install -Dm644 mkinitcpio/install/sd-keystrap $(DESTDIR)/usr/lib/initcpio/install/sd-keystrap
	install -Dm644 mkinitcpio/hooks/keystrap $(DESTDIR)/usr/lib/initcpio/hooks/keystrap

.PHONY: install-mkinitcpio install-units

# QEMU + swtpm + OVMF: a Debian guest boots through a dracut initramfs with keystrap (vm/).
VM_ENV = VM_DIR=$(abspath $(BUILD)/vm) KEYSTRAP_BIN=$(abspath $(BUILD)/keystrap) \
	KEYSTRAP_SERVER_BIN=$(abspath $(BUILD)/keystrap-server)

vm-check: deps $(BUILD)/keystrap $(BUILD)/keystrap-server
	@$(VM_ENV) bash vm/check.sh

demo-vm: deps $(BUILD)/keystrap $(BUILD)/keystrap-server
	@$(VM_ENV) bash vm/demo.sh

bench-vm: deps $(BUILD)/keystrap
	@$(VM_ENV) bash vm/bench.sh

vm-clean:
	rm -rf $(BUILD)/vm $(BUILD)/vm-bench

.PHONY: install-dracut vm-check demo-vm bench-vm vm-clean

# keystrap-server and keystrap attest (issue 5).
include server/server.mk
