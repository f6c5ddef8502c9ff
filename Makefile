# sluice - non-recursive build. `make` builds the two daemons into build/;
# `make SANITIZE=1` (or `make asan`) builds the same tree with ASan + UBSan
# into build/asan/. Plugins are listed once, below; the registry the
# aggregator links is generated from that list.

PREFIX      ?= /usr/local
# Configs go where the daemons look by default (-c /etc/sluice/...) and the units
# point: /etc, not $(PREFIX)/etc, unless SYSCONFDIR says otherwise.
SYSCONFDIR  ?= /etc
SYSTEMD_UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR     ?= $(PREFIX)/lib/sysusers.d
DESTDIR     ?=
CC          ?= cc
PKGS        := yaml-0.1 libcurl rdkafka libzstd oniguruma zlib openssl libmaxminddb
PLUGINS     := out_file out_stdout filter_date filter_mutate filter_json filter_kv filter_drop out_kafka out_elasticsearch filter_grok filter_dissect filter_useragent \
               filter_geoip

ifeq ($(SANITIZE),1)
BUILD       := build/asan
SANFLAGS    := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT         := -O1 -g
else
BUILD       := build
SANFLAGS    :=
OPT         := -O2 -g
endif

PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS      += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
               -Wstrict-prototypes -Wmissing-prototypes -pthread $(OPT) $(SANFLAGS) \
               -Ilib/include $(PKG_CFLAGS) -MMD -MP
LDFLAGS     += -pthread $(SANFLAGS)
LDLIBS      += $(PKG_LIBS) -lm

OBJ         := $(BUILD)/obj
LIB_SRC     := $(wildcard lib/*.c)
SHIP_SRC    := $(wildcard shipper/*.c)
# The aggregator's core (instance, options, templates, conditions) is an archive
# of its own: a plugin's test links it and its one plugin, nothing else.
AGG_CORE_SRC := aggregator/instance.c aggregator/options.c aggregator/template.c \
                aggregator/condition.c aggregator/ftimer.c
AGG_SRC     := $(filter-out $(AGG_CORE_SRC),$(wildcard aggregator/*.c))
PLUGIN_SRC  := $(foreach p,$(PLUGINS),$(wildcard plugins/$(p)/*.c))
FUZZ_SRC    := $(wildcard tests/fuzz/*_fuzz.c)

LIB_OBJ     := $(LIB_SRC:%.c=$(OBJ)/%.o)
SHIP_OBJ    := $(SHIP_SRC:%.c=$(OBJ)/%.o)
AGG_CORE    := $(OBJ)/libsluice-agg.a
AGG_OBJ     := $(AGG_SRC:%.c=$(OBJ)/%.o) $(PLUGIN_SRC:%.c=$(OBJ)/%.o) $(OBJ)/gen/plugins.o \
               $(OBJ)/gen/grok_patterns.o $(OBJ)/gen/useragent_regexes.o
# Unit tests may link the daemons' modules too (everything but their main.c).
SHIP_MOD    := $(filter-out $(OBJ)/shipper/main.o,$(SHIP_OBJ))
AGG_MOD     := $(filter-out $(OBJ)/aggregator/main.o,$(AGG_OBJ))
# Unit tests live in one folder per module (tests/unit/lib, shipper, aggregator)
# and see only that module's headers.
UNIT_SRC    := $(wildcard tests/unit/lib/*_test.c tests/unit/shipper/*_test.c \
                          tests/unit/aggregator/*_test.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
PLUGIN_TEST_SRC := $(wildcard tests/plugin/*_test.c)
PLUGIN_TEST_BIN := $(PLUGIN_TEST_SRC:tests/plugin/%.c=$(BUILD)/tests/plugin/%)

SHIPPER     := $(BUILD)/sluice-shipper
AGGREGATOR  := $(BUILD)/sluice-aggregator

.PHONY: all asan deps setup demo test unit unit-bins datesweep e2e bench fuzz install clean format
all: $(SHIPPER) $(AGGREGATOR)

asan:
	$(MAKE) SANITIZE=1 all

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Rebuilt whole: an object whose source moved away must not linger in the archive.
$(OBJ)/libsluice.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(AGG_CORE): $(AGG_CORE_SRC:%.c=$(OBJ)/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(OBJ)/gen/plugins.c: Makefile
	@mkdir -p $(dir $@)
	@{ echo '/* generated from PLUGINS in the Makefile */'; \
	   echo '#include "sluice/plugin.h"'; \
	   $(foreach p,$(PLUGINS),echo 'extern const struct sl_plugin sl_plugin_$(p);';) \
	   echo 'const struct sl_plugin *const sl_plugins[] = {'; \
	   $(foreach p,$(PLUGINS),echo '    &sl_plugin_$(p),';) \
	   echo '    0,'; echo '};'; } > $@

# The grok pattern library is compiled into the binary: no install path to find.
$(OBJ)/gen/grok_patterns.c: scripts/embed-patterns $(wildcard config/patterns/* config/patterns/*/*)
	@mkdir -p $(dir $@)
	scripts/embed-patterns config/patterns > $@

$(OBJ)/gen/grok_patterns.o: $(OBJ)/gen/grok_patterns.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/plugin/filter_grok_test: $(OBJ)/gen/grok_patterns.o

# So are uap-core's user-agent rules (config/useragent/regexes.yaml).
$(OBJ)/gen/useragent_regexes.c: scripts/embed-file config/useragent/regexes.yaml
	@mkdir -p $(dir $@)
	scripts/embed-file sl_useragent_builtin_regexes config/useragent/regexes.yaml > $@

$(OBJ)/gen/useragent_regexes.o: $(OBJ)/gen/useragent_regexes.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/plugin/filter_useragent_test: $(OBJ)/gen/useragent_regexes.o

$(OBJ)/gen/plugins.o: $(OBJ)/gen/plugins.c
	$(CC) $(CFLAGS) -Iaggregator/include -c -o $@ $<

# The boundary the build enforces: plugins see the public headers only
# (lib/include, aggregator/include), never the core's own.
$(OBJ)/aggregator/%.o: CFLAGS += -Iaggregator -Iaggregator/include
$(OBJ)/plugins/%.o: CFLAGS += -Iaggregator/include

$(SHIPPER): $(SHIP_OBJ) $(OBJ)/libsluice.a
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

$(AGGREGATOR): $(AGG_OBJ) $(AGG_CORE) $(OBJ)/libsluice.a
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

# tests/unit/lib/*_test.c link libsluice; tests/unit/shipper/* also the
# shipper's modules, tests/unit/aggregator/* the aggregator's (everything but
# their main.c). Each sees its module's headers and tests/unit/test.h.
TEST_CFLAGS  = $(CFLAGS) -Itests/unit
$(BUILD)/tests/lib/%_test: tests/unit/lib/%_test.c $(OBJ)/libsluice.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(LDLIBS)

$(BUILD)/tests/shipper/%_test: tests/unit/shipper/%_test.c $(SHIP_MOD) $(OBJ)/libsluice.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Ishipper $(LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(LDLIBS)

$(BUILD)/tests/aggregator/%_test: tests/unit/aggregator/%_test.c $(AGG_MOD) $(AGG_CORE) \
        $(OBJ)/libsluice.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Iaggregator -Iaggregator/include $(LDFLAGS) -o $@ \
	    $(filter %.c %.o %.a,$^) $(LDLIBS)

# tests/plugin/<plugin>_test.c links that plugin's objects (plugins/<plugin>/*.c)
# and the aggregator's core, which it drives the plugin through, as the pipeline does.
.SECONDEXPANSION:
$(BUILD)/tests/plugin/%_test: tests/plugin/%_test.c \
        $$(patsubst %.c,$(OBJ)/%.o,$$(wildcard plugins/$$*/*.c)) $(AGG_CORE) $(OBJ)/libsluice.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Iaggregator -Iaggregator/include -Iplugins/$* $(LDFLAGS) -o $@ \
	    $(filter %.c %.o %.a,$^) $(LDLIBS)

deps:
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends build-essential pkg-config \
	    libyaml-dev libcurl4-openssl-dev librdkafka-dev libzstd-dev libonig-dev zlib1g-dev \
	    libssl-dev libmaxminddb-dev python3 python3-pytest openssl procps curl faketime kcat strace
	python3 -m pip install -q pytest zstandard 2>/dev/null || true

# Unit tests run under ASan + UBSan; the end-to-end tests run the sanitized
# daemons too, so every test of the real binaries is also a memory check.
# The README's commands start from a bare machine: install what is missing first.
setup:
	@pkg-config --exists $(PKGS) 2>/dev/null && command -v python3 >/dev/null || $(MAKE) deps

demo: setup
	$(MAKE) all
	scripts/demo

test: setup
	$(MAKE) all
	$(MAKE) SANITIZE=1 all unit
	tests/deploy/setup
	@# Real Filebeat for tests/e2e/test_filebeat.py, built once into .cache/filebeat
	@# (minutes cold, a no-op after). If it cannot be built, those tests skip with the reason.
	tests/servers/filebeat build || echo "make test: Filebeat could not be built (see above); tests/e2e/test_filebeat.py will skip" >&2
	SLUICE_BUILD=$(CURDIR)/build/asan python3 -m pytest -q tests/e2e tests/deploy

unit-bins: $(UNIT_BIN) $(PLUGIN_TEST_BIN)

unit: $(UNIT_BIN) $(PLUGIN_TEST_BIN)
	@fail=0; for t in $(UNIT_BIN) $(PLUGIN_TEST_BIN); do ./$$t || fail=1; done; exit $$fail

# The tests again with the wall clock faked to new year's eve, just after, and a leap day.
datesweep: setup
	tests/datesweep

e2e: all
	SLUICE_BUILD=$(CURDIR)/$(BUILD) python3 -m pytest -q tests/e2e

fuzz:
	tests/fuzz/run

# Figures only, never a verdict. The output stage starts the real OpenSearch and
# Kafka (tests/servers); BENCH_OUTPUTS=0 skips it.
bench: all
	python3 tests/bench/bench.py
	@# The persisted queue against the memory queue, same run (docs/benchmarks.md).
	python3 tests/bench/pq_bench.py
	if [ "$${BENCH_OUTPUTS:-1}" != 0 ]; then \
	    python3 tests/bench/es_bench.py && python3 tests/bench/kafka_bench.py; fi

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSCONFDIR)/sluice/patterns
	install -m 755 $(SHIPPER) $(AGGREGATOR) $(DESTDIR)$(PREFIX)/bin/
	@# A config already there is the site's: kept, the new example goes beside it.
	for f in shipper.yml aggregator.yml; do \
	    t=$(DESTDIR)$(SYSCONFDIR)/sluice/$$f; \
	    if [ -e $$t ]; then t=$$t.example; fi; \
	    install -m 644 config/$$f $$t || exit 1; done
	@# One directory per field-naming mode (ecs-v1/, legacy/), as the grok filter embeds them.
	for d in config/patterns/*/; do \
	    m=$$(basename $$d); install -d $(DESTDIR)$(SYSCONFDIR)/sluice/patterns/$$m && \
	    install -m 644 $$d* $(DESTDIR)$(SYSCONFDIR)/sluice/patterns/$$m/ || exit 1; done
	install -d $(DESTDIR)$(SYSTEMD_UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	for u in sluice-shipper sluice-aggregator; do \
	    sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' -e 's|/etc/sluice/|$(SYSCONFDIR)/sluice/|g' \
	        deploy/systemd/$$u.service > $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u.service && \
	    chmod 644 $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u.service || exit 1; done
	install -m 644 deploy/systemd/sluice.sysusers $(DESTDIR)$(SYSUSERSDIR)/sluice.conf

clean:
	rm -rf build/obj build/asan build/tests build/sluice-shipper build/sluice-aggregator

-include $(shell find build -name '*.d' 2>/dev/null)
