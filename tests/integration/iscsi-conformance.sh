#!/bin/bash
# tests/integration/iscsi-conformance.sh: libiscsi's conformance suite,
# iscsi-test-cu, against a real sluiced: one thin volume behind one target,
# reached through two portals (the second URL is the multipath path; IPv6
# when the host has it), with --dataloss and --allow-sanitize and two
# initiator names. Each family runs in its own iscsi-test-cu process (as
# the tgt baseline in the iSCSI anchors was measured), so one family's
# leftovers cannot fail another.
#
# Prints pass/fail/skip per family and in total. Fails only on the
# families this target covers (COVERED below, the whole suite minus the
# families of issue 5), where a test fails, or is skipped for a command
# that is not in ALLOWED_SKIPS (a command this target must implement).
# Families listed by the installed iscsi-test-cu but named in neither list
# run and are reported, without gating.
#
# Knobs: SLUICE_CONFORMANCE_FAMILIES="Read10 Unmap" runs only those;
# SLUICE_CONFORMANCE_TIMEOUT seconds per family (default 300);
# SLUICE_TEST_KEEP=1 keeps the logs (their directory is printed).
set -u
. "$(dirname "$0")/iscsi-lib.sh"

COVERED=(
	GetLBAStatus Inquiry Mandatory ModeSense6 NoMedia OrWrite
	Prefetch10 Prefetch16 PreventAllow
	Read6 Read10 Read12 Read16 ReadCapacity10 ReadCapacity16
	ReadDefectData10 ReadDefectData12 ReadOnly ReportSupportedOpcodes
	Sanitize StartStopUnit TestUnitReady Unmap
	Verify10 Verify12 Verify16 Write10 Write12 Write16 WriteAtomic16
	WriteSame10 WriteSame16 WriteVerify10 WriteVerify12 WriteVerify16
	iSCSIcmdsn iSCSIdatasn iSCSIResiduals iSCSITMF
	iSCSISendTargets iSCSINop iSCSICHAP ReportTargetPortGroups
	CompareAndWrite ExtendedCopy ReceiveCopyResults PopulateToken WriteUsingToken
	PrinReadKeys PrinServiceactionRange PrinReportCapabilities
	ProutRegister ProutReserve ProutClear ProutPreempt Reserve6 MultipathIO
)
# Families run and reported, not gating (none left: issue 5's persistent
# reservations, VAAI/ODX copies and atomic compare are covered above;
# PopulateToken and WriteUsingToken gate only where the installed
# iscsi-test-cu has them).
DEFERRED=(
)
# Commands this issue does not name: a test skipped because one of them is
# "not implemented" is fine; so is a skip for what a virtual disk is not
# (removable, write-protected at login). Any other skip in a covered
# family fails.
ALLOWED_SKIPS='ORWRITE|WRITE.?ATOMIC|WRITEATOMIC|PREVENT.?ALLOW|SANITIZE OVERWRITE|SANITIZE CRYPTO|not removable|not write-protected'

# Tests whose expectation the installed iscsi-test-cu (Debian libiscsi
# 1.19) gets wrong for this target; they run and are counted as failed,
# but do not gate unless SLUICE_CONFORMANCE_STRICT=1:
#  GetLBAStatus.UnmapSingle  asks GET LBA STATUS at LBA i+1 and wants the
#      first descriptor at i+LBPPB; SBC-3 5.5 wants it at the LBA asked
#      for, which only agree with 1 logical block per physical block
#      (the target reports LBPPBE 3: 4 KiB physical blocks).
#  iSCSIdatasn.iSCSIDataSnInvalid  its last case runs after a reconnect
#      whose login sets ImmediateData=Yes again, so the 2-block write goes
#      as immediate data and no Data-Out carries the DataSN it corrupts
#      (tgt fails it the same way).
KNOWN_TOOL_DEFECTS='GetLBAStatus.UnmapSingle iSCSIdatasn.iSCSIDataSnInvalid'

need_prog iscsi-test-cu
lib_init
TIMEOUT=${SLUICE_CONFORMANCE_TIMEOUT:-300}
IQN=$IQN_PREFIX:conformance
VOL=conf

in_list() {             # in_list WORD LIST...
	local w=$1 x
	shift
	for x in "$@"; do
		[ "$x" = "$w" ] && return 0
	done
	return 1
}

# parse_family LOG: "passed failed skipped" and the skip reasons in
# $work/reasons. A test's result is the first "passed"/"FAILED" after its
# "Test: NAME ..." line; a [SKIPPED] before it makes it a skip.
parse_family() {
	awk -v reasons="$work/reasons" '
	function finish(res) {
		if (res == "FAILED") f++
		else if (sk) s++
		else p++
		intest = 0
	}
	/^  Test: / { intest = 1; sk = 0; sub(/^  Test: [^ ]* \.\.\./, "") }
	intest {
		# what follows "passed" on its line belongs to the next step
		end = match($0, /(^|[ \t])passed/) ? RSTART : length($0) + 1
		head = substr($0, 1, end - 1)
		if (head ~ /\[SKIPPED\]/) {
			sk = 1
			r = head; sub(/.*\[SKIPPED\] */, "", r); print r >> reasons
		}
		if (end <= length($0)) { finish("passed"); next }
		if ($0 ~ /FAILED$|^FAILED/) { finish("FAILED"); next }
	}
	END { printf "%d %d %d\n", p, f, s }
	' "$1"
}

DATA=$work/data
pool_setup "$DATA" vol "$VOL" $((256 << 20)) \
	target "$(target_json "$IQN" "$VOL" '["*"]' null)" || { echo "pool setup failed"; exit 99; }
LOG=$work/sluiced.log
if ! daemon_start "$DATA" "$LOG"; then
	not_ok "sluiced did not start"
	show "$LOG"
	summary
	exit 1
fi
URL1=$(url "$IQN")
URL2=$(url "$IQN" 0 "$HOST2" "$PORT2")
echo "target $IQN at $URL1 and $URL2"

mapfile -t ALL_FAMILIES < <(iscsi-test-cu -l 2>/dev/null | sed -n 's/^ALL\.\([A-Za-z0-9]*\)$/\1/p')
if [ -n "${SLUICE_CONFORMANCE_FAMILIES:-}" ]; then
	read -r -a ALL_FAMILIES <<<"$SLUICE_CONFORMANCE_FAMILIES"
fi

tp=0 tf=0 ts=0 gate_fail=0
printf '%-26s %6s %6s %6s  %s\n' family passed failed skipped class
for fam in "${ALL_FAMILIES[@]}"; do
	flog=$work/$fam.log
	: >"$work/reasons"
	timeout "$TIMEOUT" iscsi-test-cu -d -S -v -i "$INIT1" -I "$INIT2" \
		--test="ALL.$fam" "$URL1" "$URL2" >"$flog" 2>&1
	rc=$?
	read -r p f s <<<"$(parse_family "$flog")"
	class=other
	in_list "$fam" "${COVERED[@]}" && class=covered
	in_list "$fam" "${DEFERRED[@]}" && class=deferred
	bad_skips=$(grep -Ev "$ALLOWED_SKIPS" "$work/reasons" | sort -u)
	note=
	[ "$rc" = 124 ] && { note=" TIMEOUT"; f=$((f + 1)); }
	if [ "$class" = covered ] && [ -n "$bad_skips" ]; then
		note="$note forbidden skips: $(echo "$bad_skips" | tr '\n' ';')"
	fi
	if ! alive; then
		note="$note sluiced DIED"
		f=$((f + 1))
	fi
	printf '%-26s %6d %6d %6d  %s%s\n' "$fam" "$p" "$f" "$s" "$class" "$note"
	tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
	failed_tests=$(sed -n "s/^  Test: \([^ ]*\) \.\.\..*/\1/p" "$flog" | while read -r tn; do
		sed -n "/^  Test: $tn \.\.\./,/^  Test: /p" "$flog" | grep -q 'FAILED' &&
			echo "$fam.$tn"; done)
	gating=$f
	for tn in $failed_tests; do
		if [ -z "${SLUICE_CONFORMANCE_STRICT:-}" ] && in_list "$tn" $KNOWN_TOOL_DEFECTS; then
			echo "    known test-tool defect (not gating): $tn"
			gating=$((gating - 1))
		fi
	done
	if [ "$class" = covered ] && { [ "$gating" -gt 0 ] || [ -n "$bad_skips" ]; }; then
		gate_fail=1
		grep -E 'FAILED|\[FAILED\]' "$flog" | sort -u | head -n 8 | sed 's/^/    | /'
	fi
	if ! alive; then
		show "$LOG"
		break
	fi
done
printf '%-26s %6d %6d %6d\n' TOTAL "$tp" "$tf" "$ts"
if [ "$gate_fail" = 0 ]; then
	ok "iscsi-test-cu: covered families: no failure (but known test-tool defects) and no forbidden skip"
else
	not_ok "iscsi-test-cu: failures in covered families (above)"
fi
alive && daemon_stop "conformance run" "$LOG"
if [ -n "${SLUICE_TEST_KEEP:-}" ]; then
	cp -r "$work" "$work.kept" && echo "logs kept in $work.kept"
fi
summary
