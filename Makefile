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

# Each wing of the tree builds as one static archive, and each binary links only the wings
# (and the libraries) it uses: keystrap never contains server code or its libraries, and
# keystrap-server never links libcryptsetup, libblkid or tss2-esys. A wing's include path is
# common/ and itself (and the wings below it), so reaching across is a compile error.
COMMON_PKGS := libcrypto libssl json-c tss2-mu
NODE_PKGS   := tss2-esys tss2-rc tss2-tctildr libcryptsetup blkid libssl
SERVER_PKGS := libevent_openssl libevent_core libsystemd sqlite3 libpq libssl
# SERVER=no: build (and install) only the node's side, without the server's libraries.
SERVER ?= yes

pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1))
pc_libs   = $(shell $(PKG_CONFIG) --libs $(1))
NODE_LIBS   = $(call pc_libs,$(NODE_PKGS) $(COMMON_PKGS))
SERVER_LIBS = $(call pc_libs,$(SERVER_PKGS) $(COMMON_PKGS))
ALL_PKGS    = $(COMMON_PKGS) $(NODE_PKGS) $(if $(filter yes,$(SERVER)),$(SERVER_PKGS))
ALL_LIBS    = $(call pc_libs,$(ALL_PKGS))

# -Werror is on (CI builds with it); a packager on a newer compiler can set WERROR=.
WERROR  ?= -Werror
WARN    := -Wall -Wextra $(WERROR) -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
HARDEN  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE -fstack-clash-protection
CFLAGS  ?= -O2 -g
# -ffile-prefix-map: the build's path never reaches the binary, so two clones build alike.
# -MMD -MP: each object's header dependencies (build/**/*.d), so a change rebuilds what uses it.
ALL_CFLAGS  = -std=gnu11 -D_GNU_SOURCE $(WARN) $(CPPFLAGS) $(CFLAGS) -ffile-prefix-map=$(CURDIR)=. -MMD -MP \
	-DKEYSTRAP_VERSION='"$(VERSION)"' $(call pc_cflags,$(ALL_PKGS))
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(LDFLAGS)
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SAN:= -fsanitize=fuzzer-no-link,address,undefined

# What each wing may include (DESIGN.md's layout table), by the source file's directory.
INC_common        := -Icommon
INC_node          := -Icommon -Inode
INC_node/cli      := -Icommon -Inode -Inode/cli
INC_server/verify := -Icommon -Iserver/verify
INC_server/store  := -Icommon -Iserver/store
INC_server        := -Icommon -Iserver/verify -Iserver/store -Iserver
INC_server/admin  := $(INC_server) -Iserver/admin
# Tests and benchmarks reach everything.
INC_ALL           := $(INC_server/admin) -Inode -Inode/cli -Itests/unit
inc = $(or $(INC_$(patsubst %/,%,$(dir $(1)))),$(INC_ALL))

# Wings: archive name → sources. keystrap = node/cli + node + common; keystrap-server =
# server/admin + server + server/store + server/verify + common (link order = layering).
WING_common := $(wildcard common/*.c)
WING_node   := $(wildcard node/*.c)
WING_server := $(wildcard server/*.c)
WING_store  := $(wildcard server/store/*.c)
WING_verify := $(wildcard server/verify/*.c)
CLI_SRC     := $(wildcard node/cli/*.c)
ADMIN_SRC   := $(wildcard server/admin/*.c)
UNIT_SRC    := $(wildcard tests/unit/test-*.c)
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz-*.c)
WINGS       := common node server store verify

# $(call archives,VARIANT,WING...): the archives of a build variant ("" plain, asan/, fuzz/).
archives = $(foreach w,$(2),$(BUILD)/$(1)lib$(w).a)
NODE_A   = $(call archives,$(1),node common)
SERVER_A = $(call archives,$(1),server store verify common)
# What tests link: every wing, node's before verify (both only need common).
TEST_A   = $(call archives,$(1),node server store verify common)
TEST_LIBS = $(call pc_libs,$(COMMON_PKGS) $(NODE_PKGS) $(SERVER_PKGS))

.PHONY: all deps check check-unit check-bats check-deb check-fuzz check-cleanup fuzz bench demo install clean shellcheck
all: $(BUILD)/keystrap

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(call inc,$<) $(HARDEN) -c $< -o $@

# Sanitizer build: what make check runs every bats test against, and what unit tests link.
$(BUILD)/asan/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(call inc,$<) -O1 $(SAN) -fPIE -c $< -o $@

# libFuzzer build of the wings the fuzz targets link.
$(BUILD)/fuzz/%.o: %.c
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 -D_GNU_SOURCE -g -O1 -MMD -MP $(FUZZ_SAN) $(call inc,$<) $(call pc_cflags,$(ALL_PKGS)) \
		-DKEYSTRAP_VERSION='"$(VERSION)"' -c $< -o $@

define wing_rules
$(BUILD)/lib$(1).a: $(patsubst %.c,$(BUILD)/%.o,$(WING_$(1)))
$(BUILD)/asan/lib$(1).a: $(patsubst %.c,$(BUILD)/asan/%.o,$(WING_$(1)))
$(BUILD)/fuzz/lib$(1).a: $(patsubst %.c,$(BUILD)/fuzz/%.o,$(WING_$(1)))
endef
$(foreach w,$(WINGS),$(eval $(call wing_rules,$(w))))
$(BUILD)/%.a:
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcsD $@ $^

$(BUILD)/keystrap: $(CLI_SRC:%.c=$(BUILD)/%.o) $(call NODE_A)
	$(CC) $(ALL_CFLAGS) $(HARDEN) $^ -o $@ $(ALL_LDFLAGS) $(NODE_LIBS)

$(BUILD)/asan/keystrap: $(CLI_SRC:%.c=$(BUILD)/asan/%.o) $(call NODE_A,asan/)
	$(CC) $(ALL_CFLAGS) $(SAN) $^ -o $@ -pie $(NODE_LIBS)

$(BUILD)/keystrap-server: $(ADMIN_SRC:%.c=$(BUILD)/%.o) $(call SERVER_A)
	$(CC) $(ALL_CFLAGS) $(HARDEN) $^ -o $@ $(ALL_LDFLAGS) $(SERVER_LIBS)

$(BUILD)/asan/keystrap-server: $(ADMIN_SRC:%.c=$(BUILD)/asan/%.o) $(call SERVER_A,asan/)
	$(CC) $(ALL_CFLAGS) $(SAN) $^ -o $@ -pie $(SERVER_LIBS)

ifeq ($(SERVER),yes)
all: $(BUILD)/keystrap-server
endif

# Unit tests and the test helpers in tests/lib link the sanitizer archives.
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/asan/unit/%)
$(BUILD)/asan/unit/%: tests/unit/%.c $(call TEST_A,asan/)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(INC_ALL) -O1 $(SAN) $< $(call TEST_A,asan/) -o $@ $(TEST_LIBS)

$(BUILD)/asan/%: tests/lib/%.c $(call TEST_A,asan/)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(INC_ALL) -O1 $(SAN) $< $(call TEST_A,asan/) -o $@ $(TEST_LIBS)

# The plain build of the attestation core's checker, for its bench subcommand.
$(BUILD)/attest-check: tests/lib/attest-check.c $(call TEST_A)
	$(CC) $(ALL_CFLAGS) $(INC_ALL) $(HARDEN) $< $(call TEST_A) -o $@ $(ALL_LDFLAGS) $(TEST_LIBS)

# libFuzzer targets link the fuzz build of the wings: pure parsers, no TPM, no disk.
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(call TEST_A,fuzz/)
	$(CLANG) -std=gnu11 -D_GNU_SOURCE -g -O1 -MMD -MP -fsanitize=fuzzer,address,undefined $(INC_ALL) \
		$(call pc_cflags,$(ALL_PKGS)) $< $(call TEST_A,fuzz/) -o $@ $(TEST_LIBS)

# Not below build/vm and build/vm-bench: guest trees, where dracut's modules.d is a directory.
-include $(shell find $(BUILD) \( -path $(BUILD)/vm -o -path $(BUILD)/vm-bench \) -prune -o -type f -name '*.d' -print 2>/dev/null)

deps:
	@bash tools/install-deps.sh

check: deps
	@bash tests/run-all.sh

check-unit: $(UNIT_BIN)
	@bash tests/unit/run.sh $(UNIT_BIN)

# The bats files in BATS_JOBS shards at once (default 2), as one TAP stream (tests/bats/run.sh).
check-bats: $(BUILD)/keystrap $(BUILD)/asan/keystrap
	@KEYSTRAP=$(abspath $(BUILD)/asan/keystrap) bash tests/bats/run.sh

# The source rules no compiler enforces (tools/check-cleanup.sh) and the layout's boundaries
# (tools/check-layout.sh); TAP like the suites.
check-cleanup: $(BUILD)/keystrap $(if $(filter yes,$(SERVER)),$(BUILD)/keystrap-server)
	@bash tools/check-cleanup.sh
	@bash tools/check-bats-asserts.sh
	@bash tools/check-layout.sh $(BUILD)

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
	shellcheck -x tools/*.sh tests/*.sh tests/unit/*.sh tests/fuzz/*.sh tests/bats/run.sh tests/lib/*.bash bench/*.sh tests/deb/run.sh completion/keystrap.bash
	shellcheck -x -s bash dist/mkinitcpio/install/*
	shellcheck -s sh dist/mkinitcpio/hooks/* vm/guest/mkinitcpio-init vm/guest/mkinitcpio-net vm/guest/udhcpc.script
	shellcheck -x vm/*.sh dist/dracut/59keystrap/module-setup.sh
	shellcheck -s sh dist/units/keystrap-generator vm/guest/agent vm/guest/consumer vm/guest/install

# Man pages carry the release they describe: VERSION, and the date of the last commit (or
# SOURCE_DATE_EPOCH, as dpkg sets it), so two builds of one tree install the same pages.
MAN_DATE := $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)} +%Y-%m-%d)
MAN_OUT  := $(patsubst man/%,$(BUILD)/man/%,$(wildcard man/*.[0-9]))
SERVER_MAN := $(filter $(BUILD)/man/keystrap-server%,$(MAN_OUT))
NODE_MAN := $(filter-out $(SERVER_MAN),$(MAN_OUT))
$(BUILD)/man/%: man/% Makefile
	@mkdir -p $(@D)
	sed -E '1s/^(\.TH [^ ]+ [0-9]) "[^"]*" "keystrap [^"]*"/\1 "$(MAN_DATE)" "keystrap $(VERSION)"/' $< >$@

# Units that run the installed binaries name them under SBINDIR: dist/units/NAME.in with @SBINDIR@.
# They depend on SBINDIR's value too (a stamp rewritten when it changes), or an install with
# another SBINDIR would ship the units an earlier one made.
$(BUILD)/units/%: dist/units/%.in $(BUILD)/units/sbindir
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' $< >$@

$(BUILD)/units/sbindir: FORCE
	@mkdir -p $(@D)
	@echo '$(SBINDIR)' | cmp -s - $@ || echo '$(SBINDIR)' >$@
.PHONY: FORCE

RUNTIME_UNITS := $(BUILD)/units/keystrap-renew.service dist/units/keystrap-renew.timer \
	$(BUILD)/units/keystrap-verify.service dist/units/keystrap-verify.timer

install: $(BUILD)/keystrap $(NODE_MAN) $(RUNTIME_UNITS)
	install -Dm755 $(BUILD)/keystrap $(DESTDIR)$(SBINDIR)/keystrap
	install -Dm644 completion/keystrap.bash $(DESTDIR)$(COMPLETIONDIR)/keystrap
	for m in $(NODE_MAN); do s=$${m##*.}; install -Dm644 $$m $(DESTDIR)$(MANDIR)/man$$s/$$(basename $$m); done
	install -Dm644 dist/keystrap.conf.example $(DESTDIR)$(PREFIX)/share/doc/keystrap/keystrap.conf.example
	# Runtime units (after switch_root): credential renewal and drift check; enable the timers.
	for u in $(RUNTIME_UNITS); do install -Dm644 $$u $(DESTDIR)$(UNITDIR)/$${u##*/}; done

# keystrap-server, its hardened service (ExecStart follows SBINDIR) and the user it runs as.
install-server: $(BUILD)/keystrap-server $(BUILD)/units/keystrap-server.service $(BUILD)/units/keystrap-server-probe.service \
		$(SERVER_MAN)
	install -Dm755 $(BUILD)/keystrap-server $(DESTDIR)$(SBINDIR)/keystrap-server
	install -Dm644 completion/keystrap.bash $(DESTDIR)$(COMPLETIONDIR)/keystrap
	ln -sf keystrap $(DESTDIR)$(COMPLETIONDIR)/keystrap-server
	for m in $(SERVER_MAN); do s=$${m##*.}; install -Dm644 $$m $(DESTDIR)$(MANDIR)/man$$s/$$(basename $$m); done
	install -Dm644 $(BUILD)/units/keystrap-server.service $(DESTDIR)$(UNITDIR)/keystrap-server.service
	# Synthetic provisioning (keystrap-server probe) every minute: enabled by the operator once a probe is enrolled.
	install -Dm644 $(BUILD)/units/keystrap-server-probe.service $(DESTDIR)$(UNITDIR)/keystrap-server-probe.service
	install -Dm644 dist/units/keystrap-server-probe.timer $(DESTDIR)$(UNITDIR)/keystrap-server-probe.timer
	install -Dm644 dist/units/keystrap-server.sysusers $(DESTDIR)$(SYSUSERSDIR)/keystrap-server.conf
	install -Dm644 dist/keystrap-server.json.example $(DESTDIR)$(PREFIX)/share/doc/keystrap/keystrap-server.json.example
	# Monitoring (docs/operator-guide.md): Prometheus alert rules, a Grafana dashboard.
	install -Dm644 dist/prometheus/keystrap.rules.yml $(DESTDIR)$(PREFIX)/share/keystrap/prometheus/keystrap.rules.yml
	install -Dm644 dist/grafana/keystrap.json $(DESTDIR)$(PREFIX)/share/keystrap/grafana/keystrap.json
	install -dm750 $(DESTDIR)$(SYSCONFDIR)/keystrap-server

ifeq ($(SERVER),yes)
install: install-server
endif
.PHONY: install-server

clean:
	rm -rf $(BUILD)

$(BUILD)/sd-token-open: tests/lib/sd-token-open.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(WARN) -O1 $< -o $@ $(shell $(PKG_CONFIG) --cflags --libs libcryptsetup)

check-bats: $(BUILD)/sd-token-open

# Test helpers, each built from tests/lib/NAME.c by the rule above: the attestation core against
# a real swtpm (attest-crypto.bats), the HTTPS client on its own (https.bats), a misbehaving node
# (server.bats), the keyring half of handoff (keyring.bats), the two halves of an attested
# keyslot (attested.bats).
check-bats: $(BUILD)/asan/attest-check $(BUILD)/asan/https-post $(BUILD)/asan/attest-peer $(BUILD)/asan/keyring-put \
	$(BUILD)/asan/disk-share
# storm.bats: the simulated fleet. The other bench programs are built too, so that one the
# library's changes broke fails make check, not the next make bench-server.
check-bats: $(BUILD)/bench/server-load $(BUILD)/bench/log-cost $(BUILD)/bench/crypto-floor
# reseal.bats: node/reseal.c on an image, in an attested boot's order; unlock's flow with it.
check-bats: $(BUILD)/asan/reseal-run $(BUILD)/asan/unlock-run
ifeq ($(SERVER),yes)
check-bats: $(BUILD)/asan/keystrap-server $(BUILD)/ssl-new-fault.so $(BUILD)/fdatasync-fault.so
endif

# server-http.bats: an SSL_new that fails on demand, preloaded into a server.
$(BUILD)/ssl-new-fault.so: tests/lib/ssl-new-fault.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) -O1 -fPIC -shared $(call pc_cflags,libssl) $< -o $@ -ldl

# server.bats: an fdatasync that fails on demand, preloaded into a server.
$(BUILD)/fdatasync-fault.so: tests/lib/fdatasync-fault.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) -O1 -fPIC -shared $< -o $@ -ldl

# make bench-server: the load generator (software TPMs) against one server; not a test. It keeps
# many TLS connections alive at once through libcurl's multi interface: the only thing built
# here that links libcurl (keystrap speaks common/https.c).
BENCH_PKGS := libcurl
$(BUILD)/bench/server-load: bench/server-load.c bench/crypto-floor.c bench/crypto-floor.h $(call TEST_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(call pc_cflags,$(BENCH_PKGS)) $(INC_ALL) $(HARDEN) $(filter %.c,$^) $(call TEST_A) -o $@ $(ALL_LDFLAGS) \
		$(TEST_LIBS) $(call pc_libs,$(BENCH_PKGS))

# The audit log's and envelope encryption's steps on their own, through the store's code.
$(BUILD)/bench/log-cost: bench/log-cost.c $(call TEST_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(INC_ALL) $(HARDEN) $< $(call TEST_A) -o $@ $(ALL_LDFLAGS) $(TEST_LIBS)

# The same crypto floor on its own, without a server.
$(BUILD)/bench/crypto-floor: bench/crypto-floor-main.c bench/crypto-floor.c bench/crypto-floor.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(HARDEN) -Icommon $(filter %.c,$^) -o $@ $(ALL_LDFLAGS) -lcrypto

bench-server: deps $(BUILD)/keystrap $(BUILD)/keystrap-server $(BUILD)/bench/server-load $(BUILD)/bench/crypto-floor $(BUILD)/bench/log-cost
	@BUILD=$(BUILD) bash bench/server.sh
.PHONY: bench-server

# make bench-crl: a CRL of 10,000 revoked certificates (size, regeneration) against openssl ca -gencrl.
bench-crl: $(BUILD)/keystrap-server
	@BUILD=$(BUILD) bash bench/crl.sh
.PHONY: bench-crl

# make bench-dashboard: each dashboard page at 10,000 nodes and 1,000,000 audit records, against /healthz.
bench-dashboard: $(BUILD)/keystrap-server
	@BUILD=$(BUILD) bash bench/dashboard.sh
.PHONY: bench-dashboard

# make bench-hwkeys: a node certificate's CA signature with the key in a file, on SoftHSM2 and
# in an swtpm, through keyref (server/store/keyref.h), in one run.
$(BUILD)/bench/keyref-sign: bench/keyref-sign.c $(call SERVER_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(INC_ALL) $(HARDEN) $< $(call SERVER_A) -o $@ $(ALL_LDFLAGS) $(SERVER_LIBS)

bench-hwkeys: deps $(BUILD)/bench/keyref-sign
	@BUILD=$(BUILD) bash bench/hwkeys.sh
.PHONY: bench-hwkeys

# The dracut module and its initrd units. dracut only looks in /usr/lib/dracut/modules.d and
# the module takes the units from /usr/lib/systemd, so these paths ignore PREFIX, UNITDIR and
# SBINDIR: the initrd units run the image's keystrap, which both tools always put at
# /usr/sbin/keystrap there (mkinitcpio's /usr/sbin is /usr/bin), wherever the host's is.
install-dracut: install-units
	install -Dm755 dist/dracut/59keystrap/module-setup.sh $(DESTDIR)/usr/lib/dracut/modules.d/59keystrap/module-setup.sh

# The initrd units and generator both initramfs tools take from /usr/lib/systemd.
install-units:
	install -Dm644 dist/units/keystrap-unlock@.service $(DESTDIR)/usr/lib/systemd/system/keystrap-unlock@.service
	install -Dm644 dist/units/keystrap-lock.service $(DESTDIR)/usr/lib/systemd/system/keystrap-lock.service
	install -Dm644 dist/units/keystrap-enter-initrd.service $(DESTDIR)/usr/lib/systemd/system/keystrap-enter-initrd.service
	install -Dm755 dist/units/keystrap-generator $(DESTDIR)/usr/lib/systemd/system-generators/keystrap-generator
	install -Dm644 dist/units/keystrap-handoff.service $(DESTDIR)/usr/lib/systemd/system/keystrap-handoff.service
	install -Dm644 dist/units/keystrap-leave-initrd.service $(DESTDIR)/usr/lib/systemd/system/keystrap-leave-initrd.service
	install -Dm644 dist/units/99-keystrap-dhcp.network $(DESTDIR)/usr/lib/systemd/network/99-keystrap-dhcp.network

# The mkinitcpio hooks (busybox: keystrap; systemd: sd-keystrap, which needs the units above).
# mkinitcpio looks in /usr/lib/initcpio, whatever PREFIX is.
install-mkinitcpio: install-units
	install -Dm644 dist/mkinitcpio/install/keystrap $(DESTDIR)/usr/lib/initcpio/install/keystrap
	install -Dm644 dist/mkinitcpio/install/sd-keystrap $(DESTDIR)/usr/lib/initcpio/install/sd-keystrap
	install -Dm644 dist/mkinitcpio/hooks/keystrap $(DESTDIR)/usr/lib/initcpio/hooks/keystrap

.PHONY: install-mkinitcpio install-units

# QEMU + swtpm + OVMF: a Debian guest boots through a dracut initramfs with keystrap (vm/).
VM_ENV = VM_DIR=$(abspath $(BUILD)/vm) KEYSTRAP_BIN=$(abspath $(BUILD)/keystrap) \
	KEYSTRAP_SERVER_BIN=$(abspath $(BUILD)/keystrap-server)

vm-check: deps $(BUILD)/keystrap $(BUILD)/keystrap-server
	@$(VM_ENV) bash vm/check.sh

# The guest artifacts alone (cached under build/vm; vm-check builds what is missing): what
# tests/run-all.sh starts early, beside the host suites.
vm-build: $(BUILD)/keystrap $(BUILD)/keystrap-server
	@$(VM_ENV) bash vm/build.sh

demo-vm: deps $(BUILD)/keystrap $(BUILD)/keystrap-server
	@$(VM_ENV) bash vm/demo.sh

bench-vm: deps $(BUILD)/keystrap
	@$(VM_ENV) bash vm/bench.sh

vm-clean:
	rm -rf $(BUILD)/vm $(BUILD)/vm-bench

.PHONY: install-dracut vm-check vm-build demo-vm bench-vm vm-clean
