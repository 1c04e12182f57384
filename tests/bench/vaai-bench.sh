#!/bin/bash
# tests/bench/vaai-bench.sh: the figures of the hypervisor offloads, on a
# real sluiced over loopback, with tests/iscsi/vaai-test as the initiator.
# Prints, judges nothing (see tests/integration/iscsi-vaai.sh for that):
#  - COMPARE AND WRITE round trip against a 512-byte WRITE(16): same
#    session, QD1, p50 and mean over ITERATIONS of each;
#  - EXTENDED COPY of a 10 GiB volume into another, then ODX (one POPULATE
#    TOKEN + WRITE USING TOKEN) of the same: wall time and the pool's used
#    bytes before and after (GET /pool).
# The source is filled first with a sparse pattern: CHUNK blocks of
# seeded data every STRIDE blocks over the whole 10 GiB (default 64 KiB
# every 1 MiB: 640 MiB of data in 10240 extents, each of which the copy
# must carry).
#
#   top_builddir=BUILD tests/bench/vaai-bench.sh
# Knobs: VAAI_BENCH_GIB (10), VAAI_BENCH_STRIDE (2048 blocks),
# VAAI_BENCH_CHUNK (128 blocks), VAAI_BENCH_ITER (2000), VAAI_BENCH_VERIFY=1
# compares the whole copy byte for byte (20 GiB of reads).
set -u
. "$(cd "$(dirname "$0")/../integration" && pwd)/iscsi-lib.sh"

VAAI=${VAAI_TEST:-$top_builddir/tests/iscsi/vaai-test}
GIB=${VAAI_BENCH_GIB:-10}
STRIDE=${VAAI_BENCH_STRIDE:-2048}
CHUNK=${VAAI_BENCH_CHUNK:-128}
ITER=${VAAI_BENCH_ITER:-2000}
SEED=${SLUICE_TEST_SEED:-$(date +%s)}
BLOCKS=$((GIB << 21))

need_prog curl
need_prog python3
lib_init
[ -x "$VAAI" ] || { echo "$VAAI is not built"; exit 99; }
echo "seed $SEED; volumes of $GIB GiB; source: $CHUNK blocks every $STRIDE"

IQN=$IQN_PREFIX:vaai-bench
DATA=$work/data
LOG=$work/sluiced.log
tgt='{"iqn":"'$IQN'","luns":[{"lun":0,"volume":"src"},{"lun":1,"volume":"dst"},'
tgt=$tgt'{"lun":2,"volume":"lat"}],"allow":["*"],"chap":null}'
pool_setup "$DATA" vol src $((GIB << 30)) vol dst $((GIB << 30)) vol lat $((64 << 20)) \
	target "$tgt" || { echo "pool setup failed"; exit 99; }
HTTP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
daemon_start "$DATA" "$LOG" || { show "$LOG"; exit 99; }
TOKEN=$(cat "$DATA/api-token")

# "used device_written map" bytes: live data, all written to the device
# (data, log records, checkpoints), RAM of the volume maps
pool() {
	curl -s --max-time 10 -H "Authorization: Bearer $TOKEN" \
		"http://127.0.0.1:$HTTP_PORT/api/v1/pool" | python3 -c 'import json, sys
d = json.load(sys.stdin); c = d["counters"]
print(d["used_bytes"], c["device_write_bytes"], c["map_bytes"])'
}

growth() {              # growth WHAT "BEFORE" "AFTER"
	local b a
	read -r -a b <<<"$2"
	read -r -a a <<<"$3"
	echo "$1: pool used bytes +$((a[0] - b[0])), bytes written to the device" \
		"+$((a[1] - b[1])), map RAM +$((a[2] - b[2]))"
}

echo "== COMPARE AND WRITE vs WRITE, QD1"
"$VAAI" lat "$(url "$IQN" 2)" "$ITER" 0

echo "== fill the source"
t0=$(date +%s%N)
"$VAAI" fill "$(url "$IQN" 0)" 0 "$BLOCKS" "$SEED" "$STRIDE" "$CHUNK" || { show "$LOG"; exit 1; }
echo "fill took $((($(date +%s%N) - t0) / 1000000)) ms"

echo "== EXTENDED COPY $GIB GiB"
u0=$(pool)
"$VAAI" xcopy "$(url "$IQN" 0)" "$(url "$IQN" 1)" 0 0 "$BLOCKS" || { show "$LOG"; exit 1; }
u1=$(pool)
growth "EXTENDED COPY" "$u0" "$u1"

echo "== ODX (POPULATE TOKEN + WRITE USING TOKEN) $GIB GiB, into the copy"
"$VAAI" odx "$(url "$IQN" 0)" "$(url "$IQN" 1)" 0 0 "$BLOCKS" || { show "$LOG"; exit 1; }
u2=$(pool)
growth "ODX" "$u1" "$u2"

if [ -n "${VAAI_BENCH_VERIFY:-}" ]; then
	"$VAAI" cmp "$(url "$IQN" 0)" "$(url "$IQN" 1)" 0 0 "$BLOCKS"
fi
daemon_stop "bench" "$LOG" >/dev/null
