# tests/unit: cmocka unit tests of single parts of the store, each a check
# program. tests/lib/pool_image.c reads and re-seals a raw pool image for the
# tests that look at (or damage) the on-disk format; tests/lib/pool_damage.c
# builds the damaged pools of the corruption tests and judges their recovery.
check_PROGRAMS += tests/unit/test_map
tests_unit_test_map_SOURCES = %reldir%/test_map.c
tests_unit_test_map_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_map_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_format
tests_unit_test_format_SOURCES = %reldir%/test_format.c \
	tests/lib/pool_image.h tests/lib/pool_image.c
tests_unit_test_format_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_format_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_corrupt
tests_unit_test_corrupt_SOURCES = %reldir%/test_corrupt.c \
	tests/lib/pool_image.h tests/lib/pool_image.c \
	tests/lib/pool_damage.h tests/lib/pool_damage.c
tests_unit_test_corrupt_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_corrupt_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_corrupt_crafted
tests_unit_test_corrupt_crafted_SOURCES = %reldir%/test_corrupt_crafted.c \
	tests/lib/pool_image.h tests/lib/pool_image.c \
	tests/lib/pool_damage.h tests/lib/pool_damage.c
tests_unit_test_corrupt_crafted_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_corrupt_crafted_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_snap
tests_unit_test_snap_SOURCES = %reldir%/test_snap.c
tests_unit_test_snap_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_snap_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_space
tests_unit_test_space_SOURCES = %reldir%/test_space.c
tests_unit_test_space_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_space_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_addr
tests_unit_test_addr_SOURCES = %reldir%/test_addr.c
tests_unit_test_addr_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_addr_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_clean
tests_unit_test_clean_SOURCES = %reldir%/test_clean.c
tests_unit_test_clean_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_clean_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_crash_clean
tests_unit_test_crash_clean_SOURCES = %reldir%/test_crash_clean.c
tests_unit_test_crash_clean_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_crash_clean_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_cache
tests_unit_test_cache_SOURCES = %reldir%/test_cache.c
tests_unit_test_cache_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_cache_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_dedup
tests_unit_test_dedup_SOURCES = %reldir%/test_dedup.c
tests_unit_test_dedup_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_dedup_LDADD = $(SL_TEST_LIBS)

check_PROGRAMS += tests/unit/test_ckpt
tests_unit_test_ckpt_SOURCES = %reldir%/test_ckpt.c
tests_unit_test_ckpt_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_ckpt_LDADD = $(SL_TEST_LIBS)
