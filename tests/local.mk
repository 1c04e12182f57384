# tests/: unit tests (cmocka), store model and crash tests, fuzz targets
# replayed on their corpora, benchmarks (built, not run by make check) and
# integration scripts that drive the real daemon.
noinst_LIBRARIES += libsl_testlib.a
libsl_testlib_a_SOURCES = \
	%reldir%/lib/testlib.h %reldir%/lib/testlib.c \
	%reldir%/lib/crash_backend.h %reldir%/lib/crash_backend.c

SL_TEST_LIBS = libsl_testlib.a $(SL_STORE_LIBS) $(CMOCKA_LIBS)

check_PROGRAMS += tests/unit/test_store_basic
tests_unit_test_store_basic_SOURCES = %reldir%/unit/test_store_basic.c
tests_unit_test_store_basic_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_store_basic_LDADD = $(SL_TEST_LIBS)

TESTS += $(check_PROGRAMS)

include tests/unit/local.mk
include tests/fuzz/local.mk
include tests/bench/local.mk

check_PROGRAMS += tests/unit/test_store_model
tests_unit_test_store_model_SOURCES = %reldir%/unit/test_store_model.c
tests_unit_test_store_model_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_store_model_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_crash
tests_unit_test_crash_SOURCES = %reldir%/unit/test_crash.c
tests_unit_test_crash_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_crash_LDADD = $(SL_TEST_LIBS)

TESTS += %reldir%/check-layering.sh
EXTRA_DIST += %reldir%/check-layering.sh

TESTS += %reldir%/integration/daemon-smoke.sh
EXTRA_DIST += %reldir%/integration/daemon-smoke.sh
include tests/integration/local.mk
include tests/iscsi.mk
