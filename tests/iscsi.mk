# tests/iscsi.mk: tests of the iSCSI target (iscsi/). The scripts drive the
# real sluiced with libiscsi's tools, iscsi-test-cu and qemu-img; the
# programs here prepare pools for them.
# built by make (not a check program: tests/local.mk runs those as tests)
noinst_PROGRAMS += tests/iscsi/iscsi-setup
tests_iscsi_iscsi_setup_SOURCES = tests/iscsi/iscsi_setup.c
tests_iscsi_iscsi_setup_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS)
tests_iscsi_iscsi_setup_LDADD = $(JANSSON_LIBS) $(SL_STORE_LIBS)

TESTS += \
	tests/integration/iscsi-conformance.sh \
	tests/integration/iscsi-qemu.sh
EXTRA_DIST += \
	tests/integration/iscsi-lib.sh \
	tests/integration/iscsi-conformance.sh \
	tests/integration/iscsi-qemu.sh
