#!/bin/bash
# tests/integration/iscsi-blender.sh: many VMs' interleaved I/O through
# several sessions, checked block by block (tests/bench/blender --verify:
# every block written carries its LBA, a generation and the seed; every
# read, and a read-back of all blocks written at the end, must return
# exactly the last acknowledged write).
#
#   1. 4 KiB blocks, 8 VMs over 3 sessions, half random half sequential,
#      30 % reads;
#   2. odd sizes at unaligned offsets (512 B to 12 KiB, any block), mostly
#      random, 40 % reads, over 2 sessions; its blocks are then read back
#      after sluiced has been stopped (SIGTERM) and started again;
#   3. the check can fail: blocks overwritten behind its back are reported
#      as mismatches and blender exits 1.
#
# Knobs: SLUICE_BLENDER_SEED (printed; default random), SLUICE_BLENDER_SECS
# per run (default 3).
set -u
. "$(dirname "$0")/iscsi-lib.sh"

BLENDER=${BLENDER:-$top_builddir/tests/bench/blender}
[ -x "$BLENDER" ] || { echo "$BLENDER is not built; run make first"; exit 99; }
lib_init
IQN=$IQN_PREFIX:blender
SEED=${SLUICE_BLENDER_SEED:-$((RANDOM * 32768 + RANDOM))}
SECS=${SLUICE_BLENDER_SECS:-3}
DATA=$work/data
STATE=$work/blender.state
echo "seed $SEED (SLUICE_BLENDER_SEED=$SEED repeats it)"

pool_setup "$DATA" vol blend $((256 << 20)) \
	target "$(target_json "$IQN" blend '["*"]' null)" || exit 99

# blend WHAT OUT ARGS...: one blender run; ok when it exits 0 with no
# error and no mismatch and has checked blocks.
blend() {
	local what=$1 out=$2
	shift 2
	timeout 120 "$BLENDER" --initiator "$INIT1" --seed "$SEED" "$@" "$(url "$IQN")" \
		>"$out" 2>&1
	local rc=$?
	if [ "$rc" = 0 ] && ! grep -q 'result:.* errors=[1-9]' "$out" &&
		! grep -q 'result:.* mismatches=[1-9]' "$out" &&
		grep -q 'result: phase=readback .* checked=[1-9]' "$out"; then
		ok "$what: $(sed -n 's/^readback: verify: //p' "$out")"
	else
		not_ok "$what: blender exit status $rc"
		show "$out"
	fi
}

LOG=$work/first.log
if ! daemon_start "$DATA" "$LOG"; then
	not_ok "sluiced did not start"
	show "$LOG"
	summary
	exit 1
fi
blend "4 KiB, 8 VMs, 3 sessions, mix:50, 30 % reads" "$work/b1.out" \
	--time "$SECS" --vms 8 --qd 16 --sessions 3 --pattern mix:50 --read-pct 30 --verify
blend "512 B-12 KiB unaligned, 5 VMs, 2 sessions, mix:80, 40 % reads" "$work/b2.out" \
	--time "$SECS" --vms 5 --qd 12 --sessions 2 --bs 512-12k --unaligned \
	--pattern mix:80 --read-pct 40 --verify --state "$STATE"
daemon_stop "first run" "$LOG"

LOG=$work/restart.log
if daemon_start "$DATA" "$LOG"; then
	blend "after a restart, the unaligned run's blocks" "$work/b3.out" \
		--sessions 2 --verify --state "$STATE" --readback-only
	# overwrite a little of it without stamps the state knows: the check
	# must see it
	timeout 60 "$BLENDER" --seed $((SEED + 1)) --time 0 --ops 2000 --vms 1 --qd 8 --span 64M \
		"$(url "$IQN")" >"$work/b4.out" 2>&1
	timeout 120 "$BLENDER" --verify --state "$STATE" --readback-only "$(url "$IQN")" \
		>"$work/b5.out" 2>&1
	rc=$?
	if [ "$rc" = 1 ] && grep -q 'result: phase=readback .* mismatches=[1-9]' "$work/b5.out"; then
		ok "overwritten blocks are reported: $(sed -n 's/^readback: verify: //p' "$work/b5.out")"
	else
		not_ok "overwritten blocks went unseen (exit status $rc)"
		show "$work/b4.out"
		show "$work/b5.out"
	fi
	daemon_stop "restart" "$LOG"
else
	not_ok "sluiced did not restart"
	show "$LOG"
fi
summary
