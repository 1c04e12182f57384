#!/bin/bash
# tests/integration/iscsi-pr.sh: reservations as a cluster uses them,
# against a real sluiced with two portals (tests/iscsi/pr_test.c):
#   failover  two nodes register, one reserves (WE-RO, EA-RO), defends with
#             PREEMPT, the other takes over with PREEMPT AND ABORT; the
#             loser's writes get RESERVATION CONFLICT after its unit
#             attention; CLEAR
#   relogin   the same ISID keeps the registration, a new one is a new
#             nexus; at most 256 registrations, none leaks
#   paths     one initiator through both portals: one NAA, two nexuses,
#             REPORT TARGET PORT GROUPS, REGISTER AND MOVE between them
#   spc2      RESERVE(6)/RELEASE(6), and with persistent reservations
#   abort     PREEMPT AND ABORT fences a write the loser has under way
#   aptpl     APTPL state on LUN 0 survives kill -9 and a restart; LUN 1's,
#             registered without APTPL, does not; once cleared, it stays
#             cleared through the next kill -9
set -u
. "$(dirname "$0")/iscsi-lib.sh"

PRTEST=${PRTEST:-$top_builddir/tests/iscsi/iscsi-pr-test}
[ -x "$PRTEST" ] || { echo "$PRTEST is not built; run make first"; exit 99; }
lib_init
IQN=$IQN_PREFIX:pr
DATA=$work/data
TARGET=$(printf '{"iqn":"%s","luns":[{"lun":0,"volume":"pr0"},{"lun":1,"volume":"pr1"}],"allow":["*"],"chap":null}' "$IQN")
pool_setup "$DATA" vol pr0 $((64 << 20)) vol pr1 $((64 << 20)) target "$TARGET" || exit 99

# scenario NAME ARGS...: one pr_test run; its checks are shown when it fails.
scenario() {
	local name=$1 out=$work/$1.out
	shift
	timeout 180 "$PRTEST" "$name" "$@" >"$out" 2>&1
	local rc=$?
	if [ "$rc" = 0 ]; then
		ok "$name: $(grep -c '^ok:' "$out") checks"
	else
		not_ok "$name: exit status $rc"
		grep -v '^ok:' "$out" | show /dev/stdin
		echo "    sluiced's log:"
		show "$LOG" 15
	fi
}

LOG=$work/first.log
if ! daemon_start "$DATA" "$LOG"; then
	not_ok "sluiced did not start"
	show "$LOG"
	summary
	exit 1
fi
URL1=$(url "$IQN")
URL2=$(url "$IQN" 0 "$HOST2" "$PORT2")
scenario failover "$URL1" "$URL2"
scenario relogin "$URL1"
scenario paths "$URL1" "$URL2"
scenario spc2 "$URL1"
scenario abort "$URL1" "$URL2"
daemon_stop "first run" "$LOG"  # a clean exit: under ASan, no leak either

LOG=$work/second.log
if ! daemon_start "$DATA" "$LOG"; then
	not_ok "sluiced did not start again"
	show "$LOG"
	summary
	exit 1
fi
scenario aptpl-set "$(url "$IQN")"
alive || { not_ok "sluiced died"; show "$LOG"; }

# crash_restart NAME SCENARIO: kill -9 (no checkpoint, no goodbye), start
# again on the same pool, run the scenario.
crash_restart() {
	{ kill -KILL "$pid"; wait "$pid"; } 2>/dev/null
	pid=
	LOG=$work/$1.log
	if daemon_start "$DATA" "$LOG"; then
		scenario "$2" "$(url "$IQN")"
	else
		not_ok "sluiced did not restart after kill -9"
		show "$LOG"
	fi
}
crash_restart restart aptpl-check
crash_restart restart2 aptpl-empty
[ -n "$pid" ] && daemon_stop "restart" "$LOG"
summary
