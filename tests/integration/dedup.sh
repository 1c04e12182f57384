#!/bin/bash
# tests/integration/dedup.sh: inline dedup as an administrator turns it on:
# the config key "dedup", GET /pool's "dedup" object, and what it saves.
# Three volumes import the same 16 MiB image over HTTP: with dedup on the
# pool stores it once (used_bytes), each volume has it all shared (no
# unique bytes) and reads it back exactly; a restart without the key keeps
# it on (the pool holds the setting) and the data; "dedup": false turns it
# off and a fourth import is stored again; a non-boolean value is refused.
#
# Needs sluiced in $top_builddir (make check exports it), curl and jq.
# Readiness is polled, never slept for; the daemon listens on free loopback
# ports and is always killed at the end. SLUICE_TEST_TIMEOUT seconds per
# wait (default 60).
set -u

top_builddir=${top_builddir:-.}
SLUICED=${SLUICED:-$top_builddir/sluiced}
TENTHS=$(( ${SLUICE_TEST_TIMEOUT:-60} * 10 ))

if [ ! -x "$SLUICED" ]; then
	echo "$SLUICED is not built; run make first (or set top_builddir)"
	exit 99
fi
for tool in curl jq; do
	command -v "$tool" >/dev/null || { echo "skip: $tool is not installed"; exit 77; }
done

pass=0 fail=0 skip=0
pid=
status=
. "$(dirname "$0")/script-lib.sh"
scratch dedup
data=$work/data
log=$work/sluiced.log
MIB=1048576

check() { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }

port=$(free_port)
iport=$(free_port)

# start CONFIG: sluiced, ready when GET /health answers.
start() {
	api_daemon_start "$1"
}

stop() {
	kill -TERM "$pid"
	reap_exit && [ "$status" = 0 ] || not_ok "SIGTERM: exit status $status, want 0"
}

api() {
	local method=$1 path=$2
	shift 2
	curl -s -H "Authorization: Bearer $token" -X "$method" "$@" \
		"http://127.0.0.1:$port/api/v1$path"
}

pool() { api GET /pool | jq -r "$1"; }

# import NAME: a 64 MiB volume holding the image.
import() {
	api POST /volumes -d "{\"name\": \"$1\", \"size\": $((64 * MIB))}" -o /dev/null
	api PUT "/volumes/$1/data" --data-binary "@$work/img" -o /dev/null -w '%{http_code}'
}

# reads_back NAME: its first 16 MiB are the image.
reads_back() {
	api GET "/volumes/$1/data" | head -c $((16 * MIB)) | cmp -s - "$work/img"
}

head -c $((16 * MIB)) /dev/urandom >"$work/img"
echo '{"pool_size": 1073741824, "dedup": true}' >"$work/on.json"
echo '{"pool_size": 1073741824}' >"$work/keep.json"
echo '{"dedup": false}' >"$work/off.json"
echo '{"dedup": 1}' >"$work/bad.json"

start "$work/on.json"
check "dedup on: GET /pool says enabled" '[ "$(pool .dedup.enabled)" = true ]'
for v in a b c; do
	check "import into $v: 200" '[ "$(import $v)" = 200 ]'
done
check "three copies of 16 MiB use 16 MiB" '[ "$(pool .used_bytes)" = $((16 * MIB)) ]'
check "dedup.blocks counts two copies' 4 KiB blocks" '[ "$(pool .dedup.blocks)" = 8192 ]'
check "volume c: all 16 MiB shared, none unique" \
	'[ "$(api GET /volumes/c | jq -r "[.unique_bytes, .shared_bytes] | @tsv")" = "0	$((16 * MIB))" ]'
for v in a b c; do
	check "$v reads back the image" 'reads_back $v'
done
stop

start "$work/keep.json"
check "restart without the key: still enabled" '[ "$(pool .dedup.enabled)" = true ]'
check "restart: c reads back the image" 'reads_back c'
stop

start "$work/off.json"
check "\"dedup\": false: disabled" '[ "$(pool .dedup.enabled)" = false ]'
check "import into d: 200" '[ "$(import d)" = 200 ]'
check "with dedup off the image is stored again: 32 MiB used" \
	'[ "$(pool .used_bytes)" = $((32 * MIB)) ]'
check "d and a read back the image" 'reads_back d && reads_back a'
stop

start "$work/keep.json"
check "restart without the key: still disabled" '[ "$(pool .dedup.enabled)" = false ]'
stop

"$SLUICED" --foreground --config "$work/bad.json" --data-dir "$data" \
	--http-listen "127.0.0.1:$port" --iscsi-listen "127.0.0.1:$iport" >"$work/bad.log" 2>&1 &
pid=$!
reap_exit
check "\"dedup\": 1 is refused with a clear message" \
	'[ "$status" != 0 ] && [ "$status" != timeout ] && grep -q "\"dedup\" must be a boolean" "$work/bad.log"'

echo "dedup: $pass passed, $fail failed"
[ "$fail" = 0 ]
