#!/bin/bash
# tests/integration/iscsi-ops.sh: what an operator sees of the iSCSI target
# (tests/iscsi/iscsi-ops-test is the initiator side):
#   sessions   GET /sessions and `sluicectl sessions` list a logged-in
#              initiator (name, target, ISID, portal, LUNs, parameters,
#              I/O) and forget it after its logout
#   thin       a 256 MiB pool under a 512 MiB volume, filled over iSCSI:
#              the soft threshold unit attention (38/07) once per nexus
#              before DATA PROTECT 27/07, LOG SENSE page 0Ch, VPD B2h;
#              after UNMAP writes succeed again and the UA is re-armed
#              (the threshold is set in the config: thin_threshold_percent)
#   discovery  discovery CHAP set through PUT /discovery: without it None
#              is accepted and CHAP alone refused cleanly; with one-way and
#              then mutual CHAP, SendTargets needs the right secrets; null
#              turns it off again; GET never shows secrets; bad bodies 400;
#              the setting survives a restart
#
# Needs sluiced, sluicectl, curl and jq. Readiness is polled, never slept
# for; sluiced is always killed at the end (iscsi-lib.sh).
set -u
. "$(dirname "$0")/iscsi-lib.sh"

OPS=${OPS:-$top_builddir/tests/iscsi/iscsi-ops-test}
SLUICECTL=${SLUICECTL:-$top_builddir/sluicectl}
[ -x "$OPS" ] || { echo "$OPS is not built"; exit 99; }
need_prog curl
need_prog jq
lib_init

IQN=$IQN_PREFIX:ops
VOL=ops
HTTP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || exit 99
API=http://127.0.0.1:$HTTP_PORT/api/v1

# start DATA_DIR: sluiced on it; TOKEN set. Exits on failure.
start() {
	if ! daemon_start "$1" "$work/sluiced.log"; then
		not_ok "sluiced did not start"
		show "$work/sluiced.log"
		summary
		exit 1
	fi
	TOKEN=$(cat "$1/api-token")
}

get() {         # get PATH: body on stdout, 1 unless 200
	local code
	code=$(curl -s -o "$work/get.out" -w '%{http_code}' \
		-H "Authorization: Bearer $TOKEN" "$API$1")
	cat "$work/get.out"
	[ "$code" = 200 ]
}

ctl() { "$SLUICECTL" --url "http://127.0.0.1:$HTTP_PORT" --token "$TOKEN" "$@"; }

# wait_line FILE PATTERN PID: until FILE has a line matching PATTERN.
wait_line() {
	local i
	for ((i = 0; i < TENTHS; i++)); do
		grep -q "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# ---- sessions ----------------------------------------------------------

sessions_test() {
	local hpid s n i
	get /sessions >"$work/s0.json" && [ "$(jq '.sessions | length' "$work/s0.json")" = 0 ] &&
		ok "sessions: none before any login" ||
		not_ok "sessions: none before any login: $(cat "$work/s0.json")"

	mkfifo "$work/hold.in"
	"$OPS" hold "$(url "$IQN")" "$INIT1" <"$work/hold.in" >"$work/hold.out" 2>&1 &
	hpid=$!
	exec 3>"$work/hold.in"
	if ! wait_line "$work/hold.out" '^ready' "$hpid"; then
		not_ok "sessions: the initiator logged in"
		show "$work/hold.out"
		exec 3>&-
		wait "$hpid"
		return
	fi
	get /sessions >"$work/s1.json"
	s=$(jq -c --arg i "$INIT1" '[.sessions[] | select(.initiator == $i)]' "$work/s1.json")
	n=$(jq length <<<"$s")
	[ "$n" = 1 ] && ok "sessions: the logged-in initiator is listed once" ||
		not_ok "sessions: $INIT1 listed $n times: $(cat "$work/s1.json")"
	jq -e --arg t "$IQN" --arg v "$VOL" --arg p "127.0.0.1:$PORT1" '.[0] |
		.type == "normal" and .target == $t and (.isid | test("^[0-9a-f]{12}$")) and
		.tsih > 0 and .portal_group == 1 and
		.connections[0].portal == $p and
		(.connections[0].initiator_address | startswith("127.0.0.1:")) and
		.luns == [{"lun": 0, "volume": $v}] and
		.parameters.HeaderDigest == "None" and
		(.parameters.MaxRecvDataSegmentLength.target > 0) and
		(.parameters.MaxBurstLength > 0) and (.parameters.FirstBurstLength > 0) and
		(.parameters.ImmediateData | IN("Yes", "No")) and
		(.parameters.InitialR2T | IN("Yes", "No")) and
		(.login_time | test("^20[0-9-]{8}T[0-9:]{8}Z$")) and
		.commands_in_flight == 0 and
		.io.write_bytes >= 4096 and .io.read_bytes >= 4096 and .io.commands >= 2' \
		<<<"$s" >/dev/null &&
		ok "sessions: target, ISID, portal, LUNs, parameters, login time and I/O" ||
		not_ok "sessions: fields of $s"
	if ctl sessions >"$work/ctl.out" 2>&1 && grep -q "$IQN .*$INIT1 .*0=$VOL" "$work/ctl.out"; then
		ok "sessions: sluicectl sessions shows it"
	else
		not_ok "sessions: sluicectl sessions"
		show "$work/ctl.out"
	fi
	exec 3>&-                               # EOF: the initiator logs out
	wait "$hpid"
	[ $? = 0 ] && ok "sessions: the initiator's I/O and logout" ||
		{ not_ok "sessions: the initiator's I/O and logout"; show "$work/hold.out"; }
	for ((i = 0; i < TENTHS; i++)); do
		get /sessions >"$work/s2.json" || break
		[ "$(jq --arg i "$INIT1" '[.sessions[] | select(.initiator == $i)] | length' \
			"$work/s2.json")" = 0 ] && break
		sleep 0.1
	done
	[ "$(jq --arg i "$INIT1" '[.sessions[] | select(.initiator == $i)] | length' \
		"$work/s2.json")" = 0 ] && ok "sessions: gone after logout" ||
		not_ok "sessions: still listed after logout: $(cat "$work/s2.json")"
}

pool_setup "$work/data" vol "$VOL" $((64 << 20)) \
	target "$(target_json "$IQN" "$VOL" '["*"]' null)" || exit 99
start "$work/data"
sessions_test

# ---- MODE SELECT of the write cache --------------------------------------------

if "$OPS" wce "$(url "$IQN")" "$INIT1" "$INIT2" >"$work/wce.out" 2>&1; then
	ok "MODE SELECT of WCE: the selecting session sees it at once, the other gets 2A/01"
else
	not_ok "MODE SELECT of WCE"
	show "$work/wce.out"
fi

# ---- discovery CHAP --------------------------------------------------------

put_discovery() {       # put_discovery JSON: the status code
	curl -s -o "$work/put.out" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' --data "$1" "$API/discovery"
}

# disc WHAT WANT [USER SECRET [TUSER TSECRET]]: a discovery session whose
# exit status must be WANT (0 logged in and saw targets, 2 login refused)
disc() {
	local what=$1 want=$2 rc
	shift 2
	"$OPS" disc "127.0.0.1:$PORT1" "$INIT2" "$@" >"$work/disc.out" 2>&1
	rc=$?
	if [ "$rc" = "$want" ]; then
		ok "discovery: $what"
	else
		not_ok "discovery: $what (exit $rc, want $want)"
		show "$work/disc.out"
	fi
}

discovery_test() {
	get /discovery >"$work/d.json" && [ "$(jq -c . "$work/d.json")" = '{"chap":null}' ] &&
		ok "discovery: GET /discovery: no CHAP at first" ||
		not_ok "discovery: GET /discovery: $(cat "$work/d.json")"
	disc "no CHAP set: AuthMethod=None logs in, SendTargets answers" 0
	"$OPS" disc-chap-only 127.0.0.1 "$PORT1" >"$work/raw.out" 2>&1 &&
		ok "discovery: no CHAP set: CHAP offered alone gets a login reject" ||
		{ not_ok "discovery: CHAP offered alone"; show "$work/raw.out"; }

	[ "$(put_discovery '{"chap":{"user":"disc","secret":"short"}}')" = 400 ] &&
	[ "$(put_discovery '{"chap":{"user":"disc","secret":"disc-secret-12","x":1}}')" = 400 ] &&
	[ "$(put_discovery '{}')" = 400 ] &&
	[ "$(put_discovery '{"chap":{"user":"disc","secret":"disc-secret-12","mutual_user":"t"}}')" = 400 ] &&
		ok "discovery: bad bodies are 400" || not_ok "discovery: bad bodies: $(cat "$work/put.out")"
	get /discovery >"$work/d.json"
	[ "$(jq -c . "$work/d.json")" = '{"chap":null}' ] &&
		ok "discovery: a refused PUT changed nothing" ||
		not_ok "discovery: a refused PUT changed $(cat "$work/d.json")"

	if ctl discovery set --chap-user disc --chap-secret disc-secret-12 >"$work/ctl.out" 2>&1 &&
	   ctl discovery show >"$work/ctl.out" 2>&1 &&
	   grep -q '^discovery chap: one-way (user disc)$' "$work/ctl.out" &&
	   ! grep -q disc-secret "$work/ctl.out"; then
		ok "discovery: sluicectl discovery set one-way CHAP, show (no secret shown)"
	else
		not_ok "discovery: sluicectl discovery set/show"
		show "$work/ctl.out"
	fi
	disc "one-way CHAP: the right secret logs in" 0 disc disc-secret-12
	disc "one-way CHAP: a wrong secret is refused" 2 disc wrong-secret-12
	disc "one-way CHAP: no CHAP is refused" 2
	ctl sessions >"$work/ctl.out" 2>&1 && ! grep -q "(discovery)" "$work/ctl.out" &&
		ok "discovery: no discovery session left behind" ||
		{ not_ok "discovery: sessions after discovery"; show "$work/ctl.out"; }

	[ "$(put_discovery '{"chap":{"user":"disc","secret":"disc-secret-12","mutual_user":"array","mutual_secret":"array-secret-34"}}')" = 200 ] &&
		ok "discovery: PUT mutual CHAP" || not_ok "discovery: PUT mutual CHAP: $(cat "$work/put.out")"
	get /discovery >"$work/d.json"
	[ "$(jq -c . "$work/d.json")" = '{"chap":{"user":"disc","mutual_user":"array"}}' ] &&
		ok "discovery: GET shows the user names only" ||
		not_ok "discovery: GET /discovery: $(cat "$work/d.json")"
	disc "mutual CHAP: the right secrets log in" 0 disc disc-secret-12 array array-secret-34
	disc "mutual CHAP: the target's wrong secret is refused by the initiator" 2 \
		disc disc-secret-12 array wrong-secret-99

}

# discovery_restart_test: the setting lives in the pool: a restart keeps it
discovery_restart_test() {
	get /discovery >"$work/d.json"
	[ "$(jq -c . "$work/d.json")" = '{"chap":{"user":"disc","mutual_user":"array"}}' ] &&
		ok "discovery: mutual CHAP kept through a restart" ||
		not_ok "discovery: after a restart: $(cat "$work/d.json")"
	disc "after a restart: no CHAP is still refused" 2
	disc "after a restart: the right secrets log in" 0 disc disc-secret-12 array array-secret-34
	[ "$(put_discovery '{"chap":null}')" = 200 ] &&
		ok "discovery: PUT null turns CHAP off" || not_ok "discovery: PUT null: $(cat "$work/put.out")"
	disc "CHAP off again: None logs in" 0
}
discovery_test
daemon_stop "sessions and discovery" "$work/sluiced.log"
start "$work/data"
discovery_restart_test
daemon_stop "discovery after a restart" "$work/sluiced.log"

# ---- thin provisioning ---------------------------------------------------

THIN_PCT=15
printf '{"pool_size": 268435456, "segment_size": 1048576, "thin_threshold_percent": %d}\n' \
	"$THIN_PCT" >"$work/sluiced.json"
mkdir -p "$work/thin"
"$ISCSI_SETUP" "$work/thin/pool" $((256 << 20)) vol thin $((512 << 20)) \
	target "$(target_json "$IQN_PREFIX:thin" thin '["*"]' null)" || exit 99
start "$work/thin"
if "$OPS" thin "$(url "$IQN_PREFIX:thin")" "$THIN_PCT" >"$work/thin.out" 2>&1; then
	ok "thin: soft threshold, out of space and back ($(grep -c '^ok' "$work/thin.out") checks)"
else
	not_ok "thin: soft threshold, out of space and back"
fi
show "$work/thin.out" 30
alive && ok "thin: sluiced still serves" || not_ok "thin: sluiced died"
daemon_stop "thin" "$work/sluiced.log"

summary
