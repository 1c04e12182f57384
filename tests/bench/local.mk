# tests/bench: benchmarks. Built by `make` (noinst: never installed) but not
# run by `make check`: they print figures and judge nothing, and they need
# minutes and real disk. run-store-bench.sh runs store-bench next to fio
# baselines and prints the comparison table.
noinst_PROGRAMS += tests/bench/store-bench
tests_bench_store_bench_SOURCES = %reldir%/store-bench.c
tests_bench_store_bench_LDADD = libsl_testlib.a $(SL_STORE_LIBS) -lm
EXTRA_DIST += %reldir%/run-store-bench.sh
EXTRA_DIST += %reldir%/mgmt-bench.sh
