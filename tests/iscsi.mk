# tests/iscsi.mk: tests of the iSCSI target (iscsi/). The scripts drive the
# real sluiced with libiscsi's tools, iscsi-test-cu and qemu-img; the
# programs here prepare pools for them.
# built by make (not a check program: tests/local.mk runs those as tests)
noinst_PROGRAMS += tests/iscsi/iscsi-setup
tests_iscsi_iscsi_setup_SOURCES = tests/iscsi/iscsi_setup.c
tests_iscsi_iscsi_setup_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS)
tests_iscsi_iscsi_setup_LDADD = $(JANSSON_LIBS) $(SL_STORE_LIBS)
# the initiator side of iscsi-robust.sh: libiscsi sessions and raw PDUs
noinst_PROGRAMS += tests/iscsi/iscsi-robust-test
tests_iscsi_iscsi_robust_test_SOURCES = tests/iscsi/robust_test.c
# -I- as for tests/bench/blender: sluice's iscsi/iscsi.h would hide libiscsi's
tests_iscsi_iscsi_robust_test_CPPFLAGS = $(LIBISCSI_CFLAGS) -I-
tests_iscsi_iscsi_robust_test_CFLAGS = $(AM_CFLAGS) -pthread
tests_iscsi_iscsi_robust_test_LDADD = $(LIBISCSI_LIBS) -lpthread

TESTS += \
	tests/integration/iscsi-conformance.sh \
	tests/integration/iscsi-qemu.sh \
	tests/integration/iscsi-robust.sh
EXTRA_DIST += \
	tests/integration/iscsi-lib.sh \
	tests/integration/iscsi-conformance.sh \
	tests/integration/iscsi-qemu.sh \
	tests/integration/iscsi-robust.sh
# iscsi-blender.sh: tests/bench/blender --verify through several sessions,
# odd sizes, a restart
TESTS += tests/integration/iscsi-blender.sh
EXTRA_DIST += tests/integration/iscsi-blender.sh
# iscsi-pr.sh: persistent reservations, RESERVE/RELEASE, ALUA and two
# paths, APTPL through kill -9 (tests/iscsi/pr_test.c is its initiator)
noinst_PROGRAMS += tests/iscsi/iscsi-pr-test
tests_iscsi_iscsi_pr_test_SOURCES = tests/iscsi/pr_test.c
tests_iscsi_iscsi_pr_test_CPPFLAGS = $(LIBISCSI_CFLAGS) -I-
tests_iscsi_iscsi_pr_test_LDADD = $(LIBISCSI_LIBS)
TESTS += tests/integration/iscsi-pr.sh
EXTRA_DIST += tests/integration/iscsi-pr.sh
# iscsi-vaai.sh: COMPARE AND WRITE races, EXTENDED COPY and ODX between
# volumes (tests/iscsi/vaai_test.c is its initiator; its "lat" mode and
# tests/bench/vaai-bench.sh give the benchmark's figures)
noinst_PROGRAMS += tests/iscsi/vaai-test
tests_iscsi_vaai_test_SOURCES = tests/iscsi/vaai_test.c
tests_iscsi_vaai_test_CPPFLAGS = $(LIBISCSI_CFLAGS) -I-
tests_iscsi_vaai_test_LDADD = $(LIBISCSI_LIBS)
TESTS += tests/integration/iscsi-vaai.sh
EXTRA_DIST += tests/integration/iscsi-vaai.sh
# the block ranges and token revocation of iscsi/sbc.c, case by case
check_PROGRAMS += tests/iscsi/test_range
tests_iscsi_test_range_SOURCES = tests/iscsi/test_range.c
tests_iscsi_test_range_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_iscsi_test_range_LDADD = $(SL_ISCSI_LIBS) $(CMOCKA_LIBS)
# iscsi-ops.sh: GET /sessions and sluicectl sessions, the thin pool's soft
# threshold and out-of-space answers, discovery CHAP
# (tests/iscsi/ops_test.c is its initiator)
noinst_PROGRAMS += tests/iscsi/iscsi-ops-test
tests_iscsi_iscsi_ops_test_SOURCES = tests/iscsi/ops_test.c
tests_iscsi_iscsi_ops_test_CPPFLAGS = $(LIBISCSI_CFLAGS) -I-
tests_iscsi_iscsi_ops_test_LDADD = $(LIBISCSI_LIBS)
TESTS += tests/integration/iscsi-ops.sh
EXTRA_DIST += tests/integration/iscsi-ops.sh
