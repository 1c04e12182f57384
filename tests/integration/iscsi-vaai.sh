#!/bin/bash
# tests/integration/iscsi-vaai.sh: the hypervisor offloads against a real
# sluiced, with tests/iscsi/vaai-test (libiscsi) as the initiator:
#  - ATS: 8 sessions race COMPARE AND WRITE on one block, round after
#    round; exactly one wins each round, the others get MISCOMPARE with the
#    offset of the first differing byte;
#  - EXTENDED COPY and ODX (POPULATE TOKEN, WRITE USING TOKEN) from a
#    volume behind one target to a volume behind another, verified byte
#    for byte, while the pool's used bytes (GET /pool over HTTP) stay put:
#    copies share the data until it is written;
#  - ROD tokens are bound to their data: revoked by a write over their
#    range, refused when forged, expire; the zero ROD token zeroes;
#  - a copy into a LU reserved (WRITE EXCLUSIVE) by another nexus is a
#    RESERVATION CONFLICT; the holder's goes;
#  - a snapshot LU (the snapshot made through the HTTP API) refuses COMPARE
#    AND WRITE, EXTENDED COPY and WRITE USING TOKEN into it, and is a
#    source like any other.
#
# Knobs: SLUICE_TEST_SEED (default: the clock; printed), SLUICE_VAAI_ROUNDS
# (ATS rounds, default 40).
set -u
. "$(dirname "$0")/iscsi-lib.sh"

VAAI=${VAAI_TEST:-$top_builddir/tests/iscsi/vaai-test}
SEED=${SLUICE_TEST_SEED:-$(date +%s)}
ROUNDS=${SLUICE_VAAI_ROUNDS:-40}
MIB=$((1 << 20))

need_prog curl
need_prog python3
lib_init
if [ ! -x "$VAAI" ]; then
	echo "$VAAI is not built; run make first"
	exit 99
fi
echo "seed $SEED (SLUICE_TEST_SEED=$SEED repeats this run)"

IQN_A=$IQN_PREFIX:vaai-a
IQN_B=$IQN_PREFIX:vaai-b
DATA=$work/data
LOG=$work/sluiced.log
pool_setup "$DATA" vol src $((256 << 20)) vol dst $((256 << 20)) \
	target "$(target_json "$IQN_A" src '["*"]' null)" \
	target "$(target_json "$IQN_B" dst '["*"]' null)" || { echo "pool setup failed"; exit 99; }


started=
for _ in 1 2 3; do      # another process may take the HTTP port first
	HTTP_PORT=$(free_port)
	if daemon_start "$DATA" "$LOG"; then
		started=1
		break
	fi
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
	grep -qi 'address already in use' "$LOG" || break
done
if [ -z "$started" ]; then
	not_ok "sluiced did not start"
	show "$LOG"
	summary
	exit 1
fi
TOKEN=$(cat "$DATA/api-token")
SRC=$(url "$IQN_A")
DST=$(url "$IQN_B")

used() {                # the pool's used bytes, from the HTTP API
	curl -s --max-time 10 -H "Authorization: Bearer $TOKEN" \
		"http://127.0.0.1:$HTTP_PORT/api/v1/pool" |
		sed -n 's/.*"used_bytes": *\([0-9]*\).*/\1/p'
}

run() {                 # run WHAT vaai-test ARGS...: ok when it exits 0
	local what=$1 rc
	shift
	"$VAAI" "$@" >"$work/out" 2>&1
	rc=$?
	sed 's/^/    /' "$work/out"
	if [ "$rc" = 0 ]; then
		ok "$what"
	else
		not_ok "$what (exit $rc)"
	fi
	return "$rc"
}

grew() {                # grew WHAT BEFORE AFTER MAX: used bytes grew by at most MAX
	local d=$(($3 - $2))
	if [ -n "$2" ] && [ -n "$3" ] && [ "$d" -le "$4" ]; then
		ok "$1: pool used bytes grew by $d (at most $4)"
	else
		not_ok "$1: pool used bytes went from '$2' to '$3' (at most $4 more allowed)"
	fi
}

run "ATS: 8 sessions, $ROUNDS rounds with one winner each, then rounds with a racing WRITE" ats "$SRC" 8 "$ROUNDS" 100000 "$SEED"
run "limits: VPD B0h and 8Fh say what the commands take" limits "$SRC" 110000

# 32 MiB of data in the source, then copies of it to the other target's volume
BLOCKS=65536
run "fill the source" fill "$SRC" 0 $BLOCKS "$SEED" $BLOCKS $BLOCKS
u0=$(used)
grew "fill" 0 "$u0" $((64 * MIB))
[ "${u0:-0}" -ge $((32 * MIB)) ] && ok "fill: 32 MiB written take space ($u0)" ||
	not_ok "fill: used bytes $u0 after writing 32 MiB"

run "EXTENDED COPY of 32 MiB across targets" xcopy "$SRC" "$DST" 0 0 $BLOCKS
run "EXTENDED COPY: the copy is byte for byte the source" cmp "$SRC" "$DST" 0 0 $BLOCKS
u1=$(used)
grew "EXTENDED COPY" "$u0" "$u1" $MIB

# blocks that are not 4 KiB aligned, at either end, copy exactly too
run "EXTENDED COPY, unaligned (LBA 5 -> 250003, 1001 blocks)" xcopy "$SRC" "$DST" 5 250003 1001
run "EXTENDED COPY, unaligned: byte for byte" cmp "$SRC" "$DST" 5 250003 1001
for lba in 250002 251004; do   # still zeros, as never written block 400000
	run "EXTENDED COPY, unaligned: block $lba beside it is untouched" \
		cmp "$DST" "$DST" $lba 400000 1
done
run "ODX: POPULATE TOKEN + WRITE USING TOKEN of 32 MiB" odx "$SRC" "$DST" 0 131072 $BLOCKS
run "ODX: the copy is byte for byte the source" cmp "$SRC" "$DST" 0 131072 $BLOCKS
u2=$(used)
grew "ODX" "$u1" "$u2" $MIB

# writing a copy takes space for what is written, and only the copy changes
run "write 1 MiB over the EXTENDED COPY's first MiB" fill "$DST" 0 2048 $((SEED + 1)) 2048 2048
u3=$(used)
if [ -n "$u3" ] && [ -n "$u2" ] && [ $((u3 - u2)) -ge $((MIB / 2)) ]; then
	ok "the written copy takes space: $((u3 - u2)) bytes"
else
	not_ok "used bytes '$u2' -> '$u3' after writing 1 MiB of a copy"
fi
run "the rest of the copy is still the source" cmp "$SRC" "$DST" 2048 2048 $((BLOCKS - 2048))
run "the source is untouched (its ODX copy still matches)" cmp "$SRC" "$DST" 0 131072 $BLOCKS

run "ROD tokens: bound to their data, not forgeable, expire; zero token" \
	odxneg "$SRC" "$DST" 200000 200000
run "EXTENDED COPY into a reserved LU: only the holder's goes" \
	reserved "$SRC" "$DST" 210000 210000

# a snapshot LU: a source, never a destination. The snapshot is made
# through the API; the API maps only volumes, so the target naming
# "src@s1" goes into the pool, the way iscsi-setup writes every target
# here, while sluiced is stopped.
IQN_S=$IQN_PREFIX:vaai-snap
code=$(curl -s -o "$work/api.out" -w '%{http_code}' --max-time 10 -X POST \
	-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	--data '{"name":"s1"}' "http://127.0.0.1:$HTTP_PORT/api/v1/volumes/src/snapshots")
if [ "${code:0:1}" = 2 ] && daemon_stop "restart for the snapshot LU" "$LOG" &&
   pool_setup "$DATA" target "$(target_json "$IQN_S" src@s1 '["*"]' null)" &&
   daemon_start "$DATA" "$LOG"; then
	SNAP=$(url "$IQN_S")
	DST=$(url "$IQN_B")
	run "snapshot LU: writes of every kind refused, copies out of it work" \
		readonly "$SNAP" "$DST" 0 300000
	run "the copy out of the snapshot is the snapshot" cmp "$SNAP" "$DST" 0 300000 2048
else
	not_ok "could not serve a snapshot LU (snapshot: HTTP $code $(cat "$work/api.out"))"
	show "$LOG"
fi

alive && daemon_stop "vaai run" "$LOG"
summary
