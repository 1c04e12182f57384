#!/bin/bash
# tests/integration/iscsi-qemu.sh: a VM image deployed the way a pipeline
# does it: qemu-img convert of a qcow2 image (several data patterns, holes
# between them) straight onto a sluiced LUN through qemu's iSCSI driver,
# then qemu-img compare through the first portal, through the second one,
# and again after sluiced has been stopped (SIGTERM) and started on the
# same pool.
set -u
. "$(dirname "$0")/iscsi-lib.sh"

need_prog qemu-img
need_prog qemu-io
if ! qemu-img --help 2>/dev/null | grep -qw iscsi; then
	echo "qemu-img has no iSCSI driver (install qemu-block-extra): skipping"
	exit 77
fi
lib_init
IQN=$IQN_PREFIX:qemu
VOL=image
SIZE=$((64 << 20))
IMG=$work/image.qcow2

# A sparse qcow2 image with patterns at the start, across a 1 MiB line,
# at the end, and a hole: what convert must copy and what it must not.
qemu-img create -q -f qcow2 "$IMG" "$SIZE" || exit 99
qemu-io -f qcow2 -c "write -P 0x5a 0 1M" -c "write -P 0xa5 3584k 1M" \
	-c "write -P 0x11 $((SIZE - 65536)) 64k" -c "write -P 0x77 17k 3k" \
	"$IMG" >/dev/null || exit 99

DATA=$work/data
pool_setup "$DATA" vol "$VOL" "$SIZE" \
	target "$(target_json "$IQN" "$VOL" '["*"]' null)" || exit 99

compare() {             # compare WHAT URL
	if timeout 120 qemu-img compare -f qcow2 -F raw "$IMG" "$2" >"$work/cmp.log" 2>&1; then
		ok "$1: qemu-img compare finds the LUN identical to the image"
	else
		not_ok "$1: qemu-img compare"
		show "$work/cmp.log"
	fi
}

LOG=$work/first.log
if ! daemon_start "$DATA" "$LOG"; then
	not_ok "sluiced did not start"
	show "$LOG"
	summary
	exit 1
fi
if timeout 120 qemu-img convert -n -f qcow2 -O raw "$IMG" "$(url "$IQN")" >"$work/conv.log" 2>&1; then
	ok "qemu-img convert onto the LUN"
else
	not_ok "qemu-img convert onto the LUN"
	show "$work/conv.log"
fi
compare "portal 1" "$(url "$IQN")"
compare "portal 2" "$(url "$IQN" 0 "$HOST2" "$PORT2")"
daemon_stop "first run" "$LOG"

LOG=$work/restart.log
if daemon_start "$DATA" "$LOG"; then
	compare "after a restart" "$(url "$IQN")"
	daemon_stop "restart" "$LOG"
else
	not_ok "sluiced did not restart"
	show "$LOG"
fi
summary
