# keystrap-server (server/) and what `keystrap attest` links: included by the Makefile.
SERVER_PKGS := libevent_openssl libevent_core libsystemd sqlite3 libpq libssl
SERVER_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(SERVER_PKGS))
SERVER_LIBS   = $(shell $(PKG_CONFIG) --libs $(SERVER_PKGS))
# keystrap attest speaks HTTPS through libcurl (OpenSSL flavour); libssl for its TLS verify callback.
PKGS += libcurl libssl

SERVER_SRC := $(wildcard server/*.c)
SERVER_HDRS := $(wildcard server/*.h)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)
ASAN_SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/asan/%.o)

$(SERVER_OBJ): $(BUILD)/server/%.o: server/%.c $(HDRS) $(SERVER_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(HARDEN) -Iserver $(SERVER_CFLAGS) -c $< -o $@

$(ASAN_SERVER_OBJ): $(BUILD)/asan/server/%.o: server/%.c $(HDRS) $(SERVER_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -fPIE -Iserver $(SERVER_CFLAGS) -c $< -o $@

$(BUILD)/keystrap-server: $(SERVER_OBJ) $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) $(HARDEN) $^ -o $@ $(ALL_LDFLAGS) $(PKG_LIBS) $(SERVER_LIBS)

$(BUILD)/asan/keystrap-server: $(ASAN_SERVER_OBJ) $(ASAN_LIB_OBJ)
	$(CC) $(ALL_CFLAGS) $(SAN) $^ -o $@ -pie $(PKG_LIBS) $(SERVER_LIBS)

all: $(BUILD)/keystrap-server
check-bats: $(BUILD)/asan/keystrap-server

# A deliberately misbehaving node for tests/bats/server.bats (replays, wrong proofs, mixed TPMs).
$(BUILD)/asan/attest-peer: tests/lib/attest-peer.c $(ASAN_LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) $< $(ASAN_LIB_OBJ) -o $@ $(PKG_LIBS)

check-bats: $(BUILD)/asan/attest-peer

# fuzz-policy and fuzz-policy-signatures: the policy parser and the stored signatures' check
# live with the server; their fuzzers link that one file with lib/.
$(BUILD)/fuzz/fuzz-policy: tests/fuzz/fuzz-policy.c server/policy.c server/policy.h $(LIB_SRC) $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ilib -Iserver $(PKG_CFLAGS) \
		$< server/policy.c $(LIB_SRC) -o $@ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz-policy-signatures: tests/fuzz/fuzz-policy-signatures.c server/operator.c server/operator.h \
		$(LIB_SRC) $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ilib -Iserver $(PKG_CFLAGS) \
		$< server/operator.c $(LIB_SRC) -o $@ $(PKG_LIBS)

# The keyring half of keystrap handoff with made-up credentials, for tests/bats/keyring.bats.
$(BUILD)/asan/keyring-put: tests/lib/keyring-put.c $(ASAN_LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) $< $(ASAN_LIB_OBJ) -o $@ $(PKG_LIBS)

check-bats: $(BUILD)/asan/keyring-put

# make bench-server: the load generator (software TPMs, libcurl) against one server; not a test.
$(BUILD)/bench/server-load: bench/server-load.c $(LIB_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(HARDEN) $< $(LIB_OBJ) -o $@ $(ALL_LDFLAGS) $(PKG_LIBS)

bench-server: deps $(BUILD)/keystrap-server $(BUILD)/bench/server-load
	@BUILD=$(BUILD) bash bench/server.sh
.PHONY: bench-server

# tests/unit/test-ratelimit.c includes server/ratelimit.c (pure code) to test it on its own.
$(BUILD)/asan/unit/test-ratelimit: server/ratelimit.c server/ratelimit.h

# tests/unit/test-ekcache.c includes server/pki.c (and lib/) to test the EK certificate memory on its own.
$(BUILD)/asan/unit/test-ekcache: server/pki.c server/pki.h
