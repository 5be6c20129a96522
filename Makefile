# rollcall: `make` builds build/rollcall; `make run`, `make test`, `make asan`,
# `make bench`, `make clean`. run and test install missing Debian packages first.

BUILD   ?= build
CC      ?= cc
SANITIZE ?=
PKGS    := libmicrohttpd libcjson libcurl
CFLAGS  ?= -O2 -g
# What every build needs, kept out of CFLAGS so that `make CFLAGS=...` (as
# `make asan` does) cannot drop the warnings or the sanitizers.
ALL_CFLAGS := $(CFLAGS) -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror $(SANITIZE) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lmicrohttpd -lcjson -lcurl) -lm
TEST_CFLAGS := $(shell pkg-config --cflags cmocka 2>/dev/null)
TEST_LIBS   := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

LIB_SRC := $(wildcard store/*.c) $(filter-out server/main.c,$(wildcard server/*.c)) $(wildcard handlers/*.c) \
           $(wildcard cluster/*.c)
UI_FILES := $(sort $(wildcard handlers/ui/*))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/ui_assets.o
# librollcall and rollcallctl (client/): nothing of the server.
CLIENT_OBJ := $(BUILD)/obj/client/rollcall.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)
STORE_OBJ := $(filter $(BUILD)/obj/store/%,$(LIB_OBJ))

.PHONY: all run test unit e2e asan bench bench-cluster soak cluster cluster-test fuzz deps clean install deb

all: $(BUILD)/rollcall $(BUILD)/rollcallctl $(BUILD)/librollcall.a

$(BUILD)/obj/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The dashboard's files, built into the binary.
$(BUILD)/gen/ui_assets.c: $(UI_FILES) scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh $(UI_FILES) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/ui_assets.o: $(BUILD)/gen/ui_assets.c handlers/ui_assets.h
	$(CC) $(ALL_CFLAGS) -Ihandlers -c $< -o $@

# The binary exports MHD_queue_response, so that libmicrohttpd's own error
# answers come to server/daemon.c's (api.md's JSON instead of HTML).
$(BUILD)/rollcall: $(BUILD)/obj/server/main.o $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -Wl,--export-dynamic-symbol=MHD_queue_response -o $@ $^ $(LDLIBS)

$(BUILD)/librollcall.a: $(CLIENT_OBJ)
	ar rcs $@ $^

$(BUILD)/rollcallctl: $(BUILD)/obj/client/rollcallctl.o $(CLIENT_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) -pthread

$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJ) $(CLIENT_OBJ) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -o $@ $< $(LIB_OBJ) $(CLIENT_OBJ) $(LDLIBS) $(TEST_LIBS) -pthread $(UNIT_LDFLAGS)

# test_oom fails our own allocations one by one.
$(BUILD)/unit/test_oom: UNIT_LDFLAGS = -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
$(BUILD)/unit/test_httpc: UNIT_LDFLAGS = -pthread -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
$(BUILD)/unit/test_mail: UNIT_LDFLAGS = -pthread
$(BUILD)/unit/test_etcd: UNIT_LDFLAGS = -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc

deps:
	@sh scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	exec $(BUILD)/rollcall --listen 127.0.0.1:7070

# Every unit binary runs, even after one fails; the target fails if any did.
unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do $$t || fail=1; done; exit $$fail

e2e: $(BUILD)/rollcall
	python3 tests/e2e/run_e2e.py $(BUILD)/rollcall

test: deps
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory e2e
	python3 tests/cluster/run_cluster.py $(BUILD)/rollcall
	sh tests/browser/run.sh $(BUILD)/rollcall

# The whole suite again under AddressSanitizer and UndefinedBehaviorSanitizer.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
		SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all" all unit e2e
	python3 tests/cluster/run_cluster.py build/asan/rollcall

bench: deps
	@$(MAKE) --no-print-directory all
	sh tests/bench/run.sh $(BUILD)/rollcall

# The cluster benchmark (tests/bench/cluster.sh): a 3-member etcd and 3 nodes
# on this machine; GET and heartbeat on a node against a single node,
# registrations against etcd's own rate for their transaction, messages and
# calls from node to node, how long a killed node's names outlive it, and
# the pause in writes when the etcd leader is killed. About 3 minutes with
# BENCH_SECONDS=10 (the default).
bench-cluster: deps
	@sh scripts/install-deps.sh wrk
	@$(MAKE) --no-print-directory all
	sh tests/bench/cluster.sh $(BUILD)/rollcall

# libFuzzer over the router and the handlers (tests/fuzz/README): every
# object built again by clang with the fuzzer and the sanitizers into
# build/fuzz/obj; runs FUZZ_SECONDS on a copy of tests/fuzz/corpus and fails
# when it finds a crash (the input lands in build/fuzz/artifacts/).
FUZZ_DIR     := build/fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1 \
	-fno-omit-frame-pointer -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJ     := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/ui_assets.o

$(FUZZ_DIR)/obj/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/obj/ui_assets.o: $(BUILD)/gen/ui_assets.c handlers/ui_assets.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Ihandlers -c $< -o $@

$(FUZZ_DIR)/fuzz_router: tests/fuzz/fuzz_router.c $(FUZZ_OBJ) $(wildcard */*.h)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_OBJ) $(LDLIBS)

fuzz: deps
	@sh scripts/install-deps.sh clang libclang-rt-14-dev
	@$(MAKE) --no-print-directory $(FUZZ_DIR)/fuzz_router
	rm -rf $(FUZZ_DIR)/corpus && mkdir -p $(FUZZ_DIR)/artifacts
	cp -R tests/fuzz/corpus $(FUZZ_DIR)/corpus
	$(FUZZ_DIR)/fuzz_router -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
		-dict=tests/fuzz/rollcall.dict -artifact_prefix=$(FUZZ_DIR)/artifacts/ $(FUZZ_DIR)/corpus

# A bounded soak: SOAK_SECONDS (default 60) of hundreds of sessions at once,
# then checks of the registry, messages, stats, memory and shutdown.
SOAK_SECONDS ?= 60

soak: deps
	@$(MAKE) --no-print-directory all
	python3 tests/soak/soak.py $(BUILD)/rollcall --seconds $(SOAK_SECONDS)

# A local cluster to try things on: 3 etcd members and 3 nodes on loopback
# ports; prints their URLs and dashboards; Ctrl-C stops them all and removes
# the etcd data (scripts/cluster.sh).
cluster: deps
	@$(MAKE) --no-print-directory all
	sh scripts/cluster.sh $(BUILD)/rollcall

# The cluster tests (tests/cluster/): real etcd members and rollcall nodes
# on loopback ports, about 3 minutes.
cluster-test: deps
	@$(MAKE) --no-print-directory all
	python3 tests/cluster/run_cluster.py $(BUILD)/rollcall

# make install [PREFIX=/usr/local] [DESTDIR=]: the server, rollcallctl,
# librollcall (static) with its header and pkg-config file, the man pages,
# and the systemd unit with its flags file (the unit runs as the user
# rollcall: create it with `useradd --system rollcall`).
PREFIX  ?= /usr/local
VERSION := 0.16
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)/etc/default
	install -m 755 $(BUILD)/rollcall $(BUILD)/rollcallctl $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/librollcall.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 client/rollcall.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' packaging/rollcall.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/rollcall.pc
	install -m 644 man/rollcall.1 man/rollcallctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	sed -e 's|/usr/bin/rollcall|$(PREFIX)/bin/rollcall|' packaging/rollcall.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/rollcall.service
	test -e $(DESTDIR)/etc/default/rollcall || install -m 644 packaging/rollcall.default $(DESTDIR)/etc/default/rollcall

# make deb: build/rollcall_<version>_<arch>.deb with dpkg-deb, from make
# install into build/deb (binaries stripped, docs as Debian wants them).
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB      := $(BUILD)/rollcall_$(VERSION)_$(DEB_ARCH).deb
deb: all
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/DEBIAN $(BUILD)/deb/usr/share/doc/rollcall $(BUILD)/deb/lib/systemd/system
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(BUILD)/deb PREFIX=/usr
	mv $(BUILD)/deb/usr/lib/systemd/system/rollcall.service $(BUILD)/deb/lib/systemd/system/
	rm -r $(BUILD)/deb/usr/lib/systemd
	strip --remove-section=.comment --remove-section=.note $(BUILD)/deb/usr/bin/rollcall $(BUILD)/deb/usr/bin/rollcallctl
	strip --strip-debug $(BUILD)/deb/usr/lib/librollcall.a
	gzip -9n $(BUILD)/deb/usr/share/man/man1/*.1
	install -m 644 packaging/debian/copyright $(BUILD)/deb/usr/share/doc/rollcall/copyright
	sed 's|@VERSION@|$(VERSION)|' packaging/debian/changelog | gzip -9n > $(BUILD)/deb/usr/share/doc/rollcall/changelog.gz
	install -m 755 packaging/debian/postinst $(BUILD)/deb/DEBIAN/postinst
	echo /etc/default/rollcall > $(BUILD)/deb/DEBIAN/conffiles
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
		-e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(BUILD)/deb | cut -f1)|" packaging/debian/control.in \
		> $(BUILD)/deb/DEBIAN/control
	dpkg-deb --root-owner-group -Zxz --build $(BUILD)/deb $(DEB)

clean:
	rm -rf build
