# tests/bench: benchmarks. Built by `make` (noinst: never installed) but not
# run by `make check`: they print figures and judge nothing, and they need
# minutes and real disk. run-store-bench.sh runs store-bench next to fio
# baselines and prints the comparison table.
noinst_PROGRAMS += tests/bench/store-bench
tests_bench_store_bench_SOURCES = %reldir%/store-bench.c
tests_bench_store_bench_LDADD = libsl_testlib.a $(SL_STORE_LIBS) -lm
EXTRA_DIST += %reldir%/run-store-bench.sh
EXTRA_DIST += %reldir%/mgmt-bench.sh
# the VM I/O blender: an iSCSI load generator on libiscsi (blender-vs-tgt.sh
# runs it against sluiced and tgtd side by side)
noinst_PROGRAMS += tests/bench/blender
tests_bench_blender_SOURCES = %reldir%/blender.c
# -I- after automake's -I$(srcdir): sluice's own iscsi/iscsi.h would hide
# libiscsi's <iscsi/iscsi.h>; blender includes no sluice header
tests_bench_blender_CPPFLAGS = $(LIBISCSI_CFLAGS) -I-
tests_bench_blender_LDADD = $(LIBISCSI_LIBS)
EXTRA_DIST += %reldir%/blender-vs-tgt.sh
EXTRA_DIST += %reldir%/vaai-bench.sh
