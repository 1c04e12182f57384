# tests/fuzz: fuzz targets, each with a seed corpus in %reldir%/<target>.in/.
#
# Without --enable-fuzzer a target is linked with fuzz_main.c into a check
# program that replays its seed corpus (and the empty input), so every
# corpus entry is a regression test of `make check`, with gcc too. With
# --enable-fuzzer (CC=clang) it is a libFuzzer binary, and `make fuzz-run`
# fuzzes each target for FUZZ_SECONDS (default 60) from a copy of its seed
# corpus in the build tree (<target>.corpus/, kept between runs); findings
# are written next to it as crash-*, leak-*, timeout-* or oom-* files.
FUZZ_SECONDS = 60
FUZZ_TARGETS = tests/fuzz/fuzz_pool_open$(EXEEXT) tests/fuzz/fuzz_iscsi$(EXEEXT) \
	tests/fuzz/fuzz_mgmt$(EXEEXT)
FUZZ_RUN_FLAGS = -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1
EXTRA_DIST += %reldir%/fuzz_pool_open.in

tests_fuzz_fuzz_pool_open_SOURCES = %reldir%/fuzz_pool_open.c \
	tests/lib/pool_image.h tests/lib/pool_image.c
tests_fuzz_fuzz_pool_open_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/%reldir%/fuzz_pool_open.in"'
tests_fuzz_fuzz_pool_open_LDADD = libsl_testlib.a $(SL_STORE_LIBS)
if FUZZER
noinst_PROGRAMS += tests/fuzz/fuzz_pool_open
tests_fuzz_fuzz_pool_open_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
else
check_PROGRAMS += tests/fuzz/fuzz_pool_open
tests_fuzz_fuzz_pool_open_SOURCES += %reldir%/fuzz_main.c
endif

# Unconditional, so that setup.sh finds it; without the fuzzer it replays
# the seed corpora instead. UBSan findings stop the run like crashes do.
fuzz-run: $(FUZZ_TARGETS)
	@set -e; \
	UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}; \
	export UBSAN_OPTIONS; \
	for t in $(FUZZ_TARGETS); do \
	  t=$${t%$(EXEEXT)}; \
	  if test -z '$(FUZZ_CFLAGS)'; then \
	    echo "fuzz-run: no --enable-fuzzer: replaying $(srcdir)/$$t.in"; \
	    $$t $(srcdir)/$$t.in; \
	    continue; \
	  fi; \
	  mkdir -p $$t.corpus; \
	  cp $(srcdir)/$$t.in/* $$t.corpus/; \
	  echo "fuzz-run: $$t for $(FUZZ_SECONDS) s on $$t.corpus"; \
	  $$t $(FUZZ_RUN_FLAGS) -artifact_prefix=$$(dirname $$t)/ $$t.corpus; \
	done
.PHONY: fuzz-run

# The iSCSI target's network parsers, fed over loopback TCP (fuzz_iscsi.c).
EXTRA_DIST += %reldir%/fuzz_iscsi.in
EXTRA_DIST += %reldir%/make_iscsi_seeds.py     # writes most of fuzz_iscsi.in
tests_fuzz_fuzz_iscsi_SOURCES = %reldir%/fuzz_iscsi.c
tests_fuzz_fuzz_iscsi_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/%reldir%/fuzz_iscsi.in"'
tests_fuzz_fuzz_iscsi_LDADD = libsl_testlib.a $(SL_ISCSI_LIBS)
if FUZZER
noinst_PROGRAMS += tests/fuzz/fuzz_iscsi
tests_fuzz_fuzz_iscsi_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
else
check_PROGRAMS += tests/fuzz/fuzz_iscsi
tests_fuzz_fuzz_iscsi_SOURCES += %reldir%/fuzz_main.c
endif

# The HTTP API's parsers and handlers, fed over loopback TCP (fuzz_mgmt.c).
EXTRA_DIST += %reldir%/fuzz_mgmt.in
tests_fuzz_fuzz_mgmt_SOURCES = %reldir%/fuzz_mgmt.c
tests_fuzz_fuzz_mgmt_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS='"$(abs_top_srcdir)/%reldir%/fuzz_mgmt.in"'
tests_fuzz_fuzz_mgmt_LDADD = libsl_testlib.a $(SL_MGMT_LIBS) $(SL_ISCSI_LIBS)
if FUZZER
noinst_PROGRAMS += tests/fuzz/fuzz_mgmt
tests_fuzz_fuzz_mgmt_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
else
check_PROGRAMS += tests/fuzz/fuzz_mgmt
tests_fuzz_fuzz_mgmt_SOURCES += %reldir%/fuzz_main.c
endif
