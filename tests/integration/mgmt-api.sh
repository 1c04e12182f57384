#!/bin/bash
# tests/integration/mgmt-api.sh: the HTTP API and sluicectl against the real
# sluiced, over loopback with curl. Every route: its success, and the bad
# inputs (malformed JSON, wrong types, unknown fields, bad names, sizes that
# overflow, missing or wrong token, unknown objects, conflicts, a 1 GiB body
# where a small one belongs), each a JSON {"error": {"code", "message"}}
# with the right status and nothing changed. Snapshots, clones, rollback
# and consistency groups: their data compared with the images written, their
# space fields, deletion in any order. Then restart (SIGTERM) and kill -9:
# volumes, snapshots, clones, targets and image data survive. Image import
# and export round trips compared with cmp; progress seen while an import
# runs; sluicectl's commands, --json and exit statuses; HTTPS when openssl
# is there.
#
# Needs sluiced and sluicectl in $top_builddir (make check exports it), curl
# and jq. Readiness is polled, never slept for. Each daemon listens on a
# free loopback port and is always killed at the end. SLUICE_TEST_TIMEOUT
# seconds per wait (default 60, generous for ASan).
set -u

top_builddir=${top_builddir:-.}
SLUICED=${SLUICED:-$top_builddir/sluiced}
SLUICECTL=${SLUICECTL:-$top_builddir/sluicectl}
TENTHS=$(( ${SLUICE_TEST_TIMEOUT:-60} * 10 ))

for prog in "$SLUICED" "$SLUICECTL"; do
	if [ ! -x "$prog" ]; then
		echo "$prog is not built; run make first (or set top_builddir)"
		exit 99
	fi
done
for tool in curl jq; do
	if ! command -v "$tool" >/dev/null; then
		echo "skip: $tool is not installed (setup.sh installs it)"
		exit 77
	fi
done

pass=0 fail=0
pid=
status=
. "$(dirname "$0")/script-lib.sh"
scratch mgmt
data=$work/data
log=$work/sluiced.log

check()  { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }

# A port nobody listens on now (the kernel picks it).


# start [CONFIG]: sluiced on $port, ready when GET /health answers.
start() {
	api_daemon_start "${1:-$work/cfg.json}" "$scheme"
}

# stop_term: SIGTERM; it must exit 0 in time.
stop_term() {
	kill -TERM "$pid"
	if ! reap_exit; then
		not_ok "SIGTERM: sluiced did not exit"
		return
	fi
	check "SIGTERM: exit status 0 (got $status)" '[ "$status" = 0 ]'
}

kill9() {
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	pid=
}

# req METHOD PATH [CURL ARGS...]: with the token; status into $status, the
# body into $work/body, the headers into $work/hdr.
req() {
	local m=$1 p=$2
	shift 2
	status=$(curl -s -k -o "$work/body" -D "$work/hdr" -w '%{http_code}' -X "$m" \
		-H "Authorization: Bearer $token" "$@" "$url$p")
}

# noauth METHOD PATH [CURL ARGS...]: the same without a token.
noauth() {
	local m=$1 p=$2
	shift 2
	status=$(curl -s -k -o "$work/body" -D "$work/hdr" -w '%{http_code}' -X "$m" "$@" "$url$p")
}

post_json() { req "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3"; }

# want_err STATUS CODE WHAT: the last reply is that error, as JSON.
want_err() {
	if [ "$status" = "$1" ] &&
	   jq -e --arg c "$2" '.error.code == $c and (.error.message | length) > 0' \
		"$work/body" >/dev/null 2>&1; then
		ok "$3: $1 $2"
	else
		not_ok "$3: got $status $(head -c 300 "$work/body"), want $1 $2"
	fi
}

# want STATUS JQ-FILTER WHAT: the last reply has STATUS and FILTER is true.
want() {
	if [ "$status" = "$1" ] && jq -e "$2" "$work/body" >/dev/null 2>&1; then
		ok "$3"
	else
		not_ok "$3: got $status $(head -c 300 "$work/body"), want $1 and $2"
	fi
}

# What bad requests must leave alone: volumes, their snapshots, targets.
state() {
	local vols v
	vols=$(curl -s -k -H "Authorization: Bearer $token" "$url/volumes")
	jq -S -c '.volumes | map(del(.transfer))' <<<"$vols"
	for v in $(jq -r '.volumes[].name' <<<"$vols"); do
		curl -s -k -H "Authorization: Bearer $token" "$url/volumes/$v/snapshots" |
			jq -S -c --arg v "$v" '{($v): .snapshots}'
	done
	curl -s -k -H "Authorization: Bearer $token" "$url/targets" | jq -S -c .
}

unchanged() {
	if [ "$(state)" = "$before" ]; then
		ok "$1: nothing changed"
	else
		not_ok "$1: the volumes, snapshots or targets changed"
	fi
}

# jq: an ISO 8601 UTC time, as the API writes them.
ISO='test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")'

# same_data WHAT VOLUME FILE: the volume's data starts with FILE (the whole
# volume is left in $work/body).
same_data() {
	local what=$1 vol=$2 file=$3 n
	n=$(stat -c %s "$file")
	req GET "/volumes/$vol/data"
	check "$what" '[ "$status" = 200 ] && cmp -s -n "$n" "$file" "$work/body"'
}

# ---- tests ---------------------------------------------------------------

auth_test() {
	local r m p
	noauth GET /health
	want 200 '.status == "ok"' "GET /health without a token"
	noauth GET /pool
	want_err 401 unauthorized "GET /pool without a token"
	check "401 carries WWW-Authenticate: Bearer" 'grep -qi "^WWW-Authenticate: Bearer" "$work/hdr"'
	noauth GET /pool -H "Authorization: Bearer ${token}x"
	want_err 401 unauthorized "GET /pool with a wrong token"
	noauth GET /pool -H "Authorization: Basic $token"
	want_err 401 unauthorized "GET /pool with another scheme"
	noauth GET /pool -H "Authorization: bearer $token"
	want 200 '.capacity_bytes > 0' "the scheme is case-insensitive"
	check "api-token is mode 0600, 64 hex digits" \
		'[ "$(stat -c %a "$data/api-token")" = 600 ] && grep -qxE "[0-9a-f]{64}" "$data/api-token"'
	before=$(state)
	for r in "GET /pool" "GET /volumes" "POST /volumes" "GET /volumes/db1" \
	         "PATCH /volumes/db1" "DELETE /volumes/db1" "PUT /volumes/db1/data" \
	         "GET /volumes/db1/data" "GET /volumes/db1/snapshots" \
	         "POST /volumes/db1/snapshots" "GET /volumes/db1/snapshots/s" \
	         "DELETE /volumes/db1/snapshots/s" "POST /volumes/db1/snapshots/s/rollback" \
	         "POST /snapshots" \
	         "GET /targets" "POST /targets" "GET /targets/iqn.2024-01.com.example:t" \
	         "PATCH /targets/iqn.2024-01.com.example:t" \
	         "DELETE /targets/iqn.2024-01.com.example:t" "GET /sessions" \
	         "GET /discovery" "PUT /discovery" \
	         "GET /stats" "GET /metrics"; do
		m=${r%% *} p=${r#* }
		noauth "$m" "$p" --data-binary '{"name":"x","size":512}'
		want_err 401 unauthorized "$r without a token"
	done
	unchanged "requests without a token"
}

pool_test() {
	req GET /pool
	want 200 '.capacity_bytes > 0 and .free_bytes > 0 and (.engine | type) == "string"
	          and (.uuid | test("^[0-9a-f-]{36}$")) and .cleaner.state == "idle" and .cleaner.cleaned_segments == 0
	          and .failed == false' "GET /pool"
}

volume_create_test() {
	post_json POST /volumes '{"name": "db1", "size": 67108864}'
	want 201 '.name == "db1" and .size == 67108864 and .write_cache == "write-through"' \
		"POST /volumes creates db1"
	check "201 has Location: /api/v1/volumes/db1" \
		'grep -qi "^Location: /api/v1/volumes/db1" "$work/hdr"'
	post_json POST /volumes '{"name": "wb1", "size": 1048576, "write_cache": "write-back"}'
	want 201 '.write_cache == "write-back"' "POST /volumes with write_cache"
	req GET /volumes
	want 200 '[.volumes[].name] == ["db1", "wb1"]' "GET /volumes lists them in order"
	req GET /volumes/db1
	want 200 '.name == "db1" and .mapped_bytes == 0' "GET /volumes/db1"
	post_json POST /volumes '{"name": "db1", "size": 1048576}'
	want_err 409 already_exists "POST /volumes with a taken name"
}

# bad_post STATUS CODE WHAT BODY
bad_post() {
	post_json POST /volumes "$4"
	want_err "$1" "$2" "POST /volumes: $3"
}

volume_bad_test() {
	local long
	long=$(head -c 10240 /dev/zero | tr '\0' a)
	before=$(state)
	bad_post 400 invalid_json "malformed JSON" '{"name": "x", '
	bad_post 400 invalid_json "a duplicated key" '{"name": "a", "name": "b", "size": 512}'
	bad_post 400 invalid_argument "an array, not an object" '[1, 2]'
	bad_post 400 invalid_argument "an empty body" ''
	bad_post 400 invalid_argument "size as a string" '{"name": "x", "size": "big"}'
	check "the message names the field" 'jq -e ".error.message | contains(\"size\")" "$work/body" >/dev/null'
	bad_post 400 invalid_argument "size as a real number" '{"name": "x", "size": 1.5e9}'
	bad_post 400 invalid_argument "name as a number" '{"name": 5, "size": 512}'
	bad_post 400 invalid_argument "an unknown field" '{"name": "x", "size": 512, "bogus": 1}'
	check "the message names the unknown field" 'jq -e ".error.message | contains(\"bogus\")" "$work/body" >/dev/null'
	bad_post 400 invalid_argument "no name" '{"size": 512}'
	bad_post 400 invalid_argument "no size" '{"name": "x"}'
	bad_post 400 invalid_argument "a name with /" '{"name": "a/b", "size": 512}'
	bad_post 400 invalid_argument "the name .." '{"name": "..", "size": 512}'
	bad_post 400 invalid_argument "a name starting with -" '{"name": "-x", "size": 512}'
	bad_post 400 invalid_argument "an empty name" '{"name": "", "size": 512}'
	bad_post 400 invalid_argument "a 10 KiB name" "{\"name\": \"$long\", \"size\": 512}"
	check "the message stays short" '[ "$(wc -c <"$work/body")" -lt 400 ]'
	bad_post 400 invalid_json "a size past 64 bits" '{"name": "x", "size": 99999999999999999999999}'
	bad_post 400 invalid_argument "a size of 2^63-1" '{"name": "x", "size": 9223372036854775807}'
	bad_post 400 invalid_argument "a size over 64 TiB" '{"name": "x", "size": 70368744178176}'
	bad_post 400 invalid_argument "a negative size" '{"name": "x", "size": -512}'
	bad_post 400 invalid_argument "a zero size" '{"name": "x", "size": 0}'
	bad_post 400 invalid_argument "a size not a multiple of 512" '{"name": "x", "size": 1000}'
	bad_post 400 invalid_argument "an unknown write_cache" '{"name": "x", "size": 512, "write_cache": "sometimes"}'
	truncate -s 1G "$work/huge"
	req POST /volumes -H 'Content-Type: application/json' -T "$work/huge"
	want_err 413 payload_too_large "POST /volumes: a 1 GiB body with Content-Length"
	status=$(head -c 1G /dev/zero | curl -s -o "$work/body" -w '%{http_code}' -X POST \
		-H "Authorization: Bearer $token" -T - "$url/volumes")
	want_err 413 payload_too_large "POST /volumes: a 1 GiB chunked body"
	req GET "/volumes/$long"
	want_err 400 invalid_argument "GET /volumes/<10 KiB name>"
	req GET /volumes/.. --path-as-is
	want_err 400 invalid_argument "GET /volumes/.."
	req GET /volumes/a%2Fb
	want_err 404 not_found "GET /volumes/a%2Fb (a slash)"
	req GET /volumes/nope
	want_err 404 not_found "GET /volumes/nope"
	req DELETE /volumes
	want_err 405 method_not_allowed "DELETE /volumes"
	check "405 has Allow: GET, POST" 'grep -qi "^Allow: GET, POST" "$work/hdr"'
	req GET /no/such/path
	want_err 404 not_found "GET /api/v1/no/such/path"
	status=$(curl -s -o "$work/body" -w '%{http_code}' "$scheme://127.0.0.1:$port/")
	want_err 404 not_found "GET / (outside /api/v1)"
	unchanged "bad volume requests"
}

volume_patch_test() {
	before=$(state)
	req PATCH /volumes/db1 --data-binary '{"size": 33554432}'
	want_err 400 invalid_argument "PATCH: shrinking"
	req PATCH /volumes/db1 --data-binary '{}'
	want_err 400 invalid_argument "PATCH: nothing to change"
	req PATCH /volumes/db1 --data-binary '{"write_cache": "fast"}'
	want_err 400 invalid_argument "PATCH: an unknown write_cache"
	req PATCH /volumes/db1 --data-binary '{"size": "1G"}'
	want_err 400 invalid_argument "PATCH: size as a string"
	req PATCH /volumes/db1 --data-binary '{"size": 134217728, "x": 1}'
	want_err 400 invalid_argument "PATCH: an unknown field"
	req PATCH /volumes/db1 --data-binary '{"size": '
	want_err 400 invalid_json "PATCH: malformed JSON"
	req PATCH /volumes/nope --data-binary '{"size": 134217728}'
	want_err 404 not_found "PATCH /volumes/nope"
	unchanged "bad PATCH requests"
	req PATCH /volumes/db1 --data-binary '{"size": 134217728}'
	want 200 '.size == 134217728' "PATCH grows db1"
	req PATCH /volumes/db1 --data-binary '{"write_cache": "write-back"}'
	want 200 '.write_cache == "write-back"' "PATCH sets write-back"
	req PATCH /volumes/db1 --data-binary '{"size": 134217728, "write_cache": "write-through"}'
	want 200 '.size == 134217728 and .write_cache == "write-through"' "PATCH both at once"
}

# A volume, gold, with a 4 MiB image; snapshot s1, then its first MiB
# overwritten; clones of s1, written through; rollback; a consistency
# group; the space fields at each step.
snapshot_test() {
	head -c 4194304 /dev/urandom >"$work/img-gold"
	head -c 1048576 /dev/urandom >"$work/img-new"
	head -c 524288 /dev/urandom >"$work/img-c1"
	cat "$work/img-new" >"$work/img-gold-new"
	tail -c +1048577 "$work/img-gold" >>"$work/img-gold-new"
	post_json POST /volumes '{"name": "gold", "size": 16777216}'
	want 201 '.snapshots == 0 and .origin == null and (.created | '"$ISO"')' \
		"POST /volumes gold: no snapshots, no origin, an ISO 8601 created"
	req PUT /volumes/gold/data -T "$work/img-gold"
	want 200 '.bytes == 4194304' "PUT the gold image"
	req GET /volumes/gold
	want 200 '.mapped_bytes == 4194304 and .unique_bytes == 4194304 and .shared_bytes == 0' \
		"gold before a snapshot: all its blocks unique"
	post_json POST /volumes/gold/snapshots '{"name": "s1"}'
	want 201 '.name == "s1" and .volume == "gold" and .snapshot == "gold@s1"
	          and .origin == "gold" and .size == 16777216 and .clones == 0
	          and .mapped_bytes == 4194304 and .unique_bytes == 0
	          and .shared_bytes == 4194304 and (.created | '"$ISO"')' \
		"POST /volumes/gold/snapshots: s1, unique_bytes 0"
	check "201 has Location: /api/v1/volumes/gold/snapshots/s1" \
		'grep -qi "^Location: /api/v1/volumes/gold/snapshots/s1" "$work/hdr"'
	req GET /volumes/gold
	want 200 '.snapshots == 1 and .unique_bytes == 0 and .shared_bytes == 4194304' \
		"gold after the snapshot: 1 snapshot, its blocks all shared"
	req GET /volumes/gold/snapshots
	want 200 '[.snapshots[].name] == ["s1"]' "GET /volumes/gold/snapshots"
	req GET /volumes/gold/snapshots/s1
	want 200 '.snapshot == "gold@s1" and .unique_bytes == 0' "GET /volumes/gold/snapshots/s1"
	req GET /pool
	want 200 '.snapshots == 1 and .volumes >= 1' "GET /pool counts the snapshot"

	req PUT /volumes/gold/data -T "$work/img-new"
	want 200 '.bytes == 1048576' "overwrite gold's first MiB"
	req GET /volumes/gold/snapshots/s1
	want 200 '.unique_bytes == 1048576 and .shared_bytes == 3145728 and .mapped_bytes == 4194304' \
		"the overwritten MiB is now unique to s1"
	req GET /volumes/gold
	want 200 '.unique_bytes == 1048576 and .shared_bytes == 3145728' \
		"and gold's new MiB unique to gold"

	post_json POST /volumes '{"name": "gold-c1", "clone_of": "gold@s1"}'
	want 201 '.name == "gold-c1" and .origin == "gold@s1" and .size == 16777216
	          and .write_cache == "write-through" and .snapshots == 0
	          and .mapped_bytes == 4194304 and .unique_bytes == 0' \
		"POST /volumes with clone_of: a clone of gold@s1"
	check "the clone's 201 has Location: /api/v1/volumes/gold-c1" \
		'grep -qi "^Location: /api/v1/volumes/gold-c1" "$work/hdr"'
	req GET /volumes/gold/snapshots/s1
	want 200 '.clones == 1 and .unique_bytes == 0' \
		"s1 has a clone, which shares its blocks: unique 0 again"
	same_data "the clone reads the snapshot's image" gold-c1 "$work/img-gold"
	check "and zeros after it" 'cmp -s -i 4194304:0 -n 1048576 "$work/body" /dev/zero'
	post_json POST /volumes '{"name": "gold-c2", "clone_of": "gold@s1", "write_cache": "write-back"}'
	want 201 '.write_cache == "write-back" and .origin == "gold@s1"' "a write-back clone"
	req PUT /volumes/gold-c1/data -T "$work/img-c1"
	want 200 '.bytes == 524288' "write through the clone"
	req GET /volumes/gold-c1/data
	check "the clone has its write, then the snapshot's data" \
		'cmp -s -n 524288 "$work/img-c1" "$work/body" &&
		 cmp -s -i 524288:524288 -n 3670016 "$work/img-gold" "$work/body"'
	same_data "gold is untouched by its clone's writes" gold "$work/img-gold-new"
	same_data "the other clone too" gold-c2 "$work/img-gold"
	req GET /volumes/gold-c1
	want 200 '.unique_bytes == 524288' "the clone's own write is unique to it"

	req PATCH /volumes/gold --data-binary '{"size": 33554432}'
	want 200 '.size == 33554432' "grow gold"
	req POST /volumes/gold/snapshots/s1/rollback
	want 200 '.name == "gold" and .size == 33554432 and .mapped_bytes == 4194304
	          and .unique_bytes == 0' "POST rollback to s1: gold's JSON, its size kept"
	same_data "rollback restores the snapshot's data" gold "$work/img-gold"
	req GET /volumes/gold/snapshots/s1
	want 200 '.unique_bytes == 0' "after rollback s1 shares everything with gold"

	post_json POST /snapshots '{"name": "nightly", "volumes": ["gold", "gold-c1"]}'
	want 201 '.name == "nightly" and [.snapshots[].snapshot] == ["gold@nightly", "gold-c1@nightly"]
	          and all(.snapshots[]; .unique_bytes == 0 and .name == "nightly")' \
		"POST /snapshots: a consistency group of gold and gold-c1"
	req GET /volumes/gold-c1/snapshots/nightly
	want 200 '.size == 16777216 and .mapped_bytes == 4194304' "the group's snapshot of the clone"
	post_json POST /volumes/gold/snapshots '{"name": "s2"}'
	want 201 '.snapshot == "gold@s2"' "another snapshot, s2"
	req GET /volumes/gold/snapshots
	want 200 '[.snapshots[].name] == ["s1", "nightly", "s2"]' "snapshots are listed oldest first"
	req GET /volumes
	want 200 '(.volumes[] | select(.name == "gold") | .snapshots == 3) and
	          (.volumes[] | select(.name == "gold-c1") | .snapshots == 1 and .origin == "gold@s1")' \
		"GET /volumes lists the snapshot counts and origins"
	req GET /pool
	want 200 '.snapshots == 4' "GET /pool: 4 snapshots"
	before=$(state)
	req DELETE /volumes/gold
	want_err 409 has_snapshots "DELETE a volume with snapshots"
	check "the message says how many and what to do" \
		'jq -e ".error.message | contains(\"3 snapshots\") and contains(\"delete them first\")" "$work/body" >/dev/null'
	unchanged "DELETE a volume with snapshots"
}

# bad_snap STATUS CODE WHAT BODY: POST /volumes/gold/snapshots
bad_snap() {
	post_json POST /volumes/gold/snapshots "$4"
	want_err "$1" "$2" "POST /volumes/gold/snapshots: $3"
}

# bad_group STATUS CODE WHAT BODY: POST /snapshots
bad_group() {
	post_json POST /snapshots "$4"
	want_err "$1" "$2" "POST /snapshots: $3"
}

snapshot_bad_test() {
	local long many i
	long=$(head -c 10240 /dev/zero | tr '\0' a)
	before=$(state)
	bad_snap 400 invalid_json "malformed JSON" '{"name": '
	bad_snap 400 invalid_argument "an array" '["s9"]'
	bad_snap 400 invalid_argument "an empty body" ''
	bad_snap 400 invalid_argument "name as a number" '{"name": 5}'
	bad_snap 400 invalid_argument "an unknown field" '{"name": "s9", "bogus": 1}'
	check "the message names the unknown field" 'jq -e ".error.message | contains(\"bogus\")" "$work/body" >/dev/null'
	bad_snap 400 invalid_argument "no name" '{}'
	bad_snap 400 invalid_argument "a name with /" '{"name": "a/b"}'
	bad_snap 400 invalid_argument "the name .." '{"name": ".."}'
	bad_snap 400 invalid_argument "a name with @" '{"name": "a@b"}'
	bad_snap 400 invalid_argument "an empty name" '{"name": ""}'
	bad_snap 400 invalid_argument "a 10 KiB name" "{\"name\": \"$long\"}"
	check "the message stays short" '[ "$(wc -c <"$work/body")" -lt 400 ]'
	bad_snap 409 already_exists "a taken name" '{"name": "s1"}'
	post_json POST /volumes/nope/snapshots '{"name": "s9"}'
	want_err 404 not_found "POST /volumes/nope/snapshots"
	req POST /volumes/../snapshots --path-as-is --data-binary '{"name": "s9"}'
	want_err 400 invalid_argument "POST /volumes/../snapshots"
	req GET /volumes/nope/snapshots
	want_err 404 not_found "GET /volumes/nope/snapshots"
	req GET /volumes/gold/snapshots/nope
	want_err 404 not_found "GET an unknown snapshot"
	req GET /volumes/gold/snapshots/.. --path-as-is
	want_err 400 invalid_argument "GET /volumes/gold/snapshots/.."
	req GET "/volumes/gold/snapshots/$long"
	want_err 400 invalid_argument "GET a snapshot with a 10 KiB name"
	check "the message stays short" '[ "$(wc -c <"$work/body")" -lt 400 ]'
	req GET /volumes/gold/snapshots/a%2Fb
	want_err 404 not_found "GET /volumes/gold/snapshots/a%2Fb (a slash)"
	req GET /volumes/gold/snapshots/gold@s1
	want_err 400 invalid_argument "GET a snapshot by its VOLUME@SNAPSHOT name in the path"
	req DELETE /volumes/gold/snapshots/nope
	want_err 404 not_found "DELETE an unknown snapshot"
	req DELETE /volumes/nope/snapshots/s1
	want_err 404 not_found "DELETE a snapshot of an unknown volume"
	req POST /volumes/gold/snapshots/nope/rollback
	want_err 404 not_found "rollback to an unknown snapshot"
	req POST /volumes/nope/snapshots/s1/rollback
	want_err 404 not_found "rollback of an unknown volume"
	req POST /volumes/gold-c1/snapshots/s1/rollback
	want_err 404 not_found "rollback to another volume's snapshot"
	req PUT /volumes/gold/snapshots
	want_err 405 method_not_allowed "PUT /volumes/gold/snapshots"
	check "405 has Allow: GET, POST" 'grep -qi "^Allow: GET, POST" "$work/hdr"'
	req PATCH /volumes/gold/snapshots/s1
	want_err 405 method_not_allowed "PATCH a snapshot"
	check "405 has Allow: GET, DELETE" 'grep -qi "^Allow: GET, DELETE" "$work/hdr"'
	req GET /snapshots
	want_err 405 method_not_allowed "GET /snapshots"
	check "405 has Allow: POST" 'grep -qi "^Allow: POST" "$work/hdr"'

	bad_post 400 invalid_argument "size with clone_of" '{"name": "x", "clone_of": "gold@s1", "size": 16777216}'
	check "the message names size" 'jq -e ".error.message | contains(\"size\")" "$work/body" >/dev/null'
	bad_post 400 invalid_argument "clone_of without @" '{"name": "x", "clone_of": "gold"}'
	bad_post 400 invalid_argument "clone_of with no snapshot name" '{"name": "x", "clone_of": "gold@"}'
	bad_post 400 invalid_argument "clone_of with no volume name" '{"name": "x", "clone_of": "@s1"}'
	bad_post 400 invalid_argument "clone_of with two @" '{"name": "x", "clone_of": "gold@s1@s2"}'
	bad_post 400 invalid_argument "clone_of with /" '{"name": "x", "clone_of": "gold/x@s1"}'
	bad_post 400 invalid_argument "clone_of .." '{"name": "x", "clone_of": "..@s1"}'
	bad_post 400 invalid_argument "a 10 KiB clone_of" "{\"name\": \"x\", \"clone_of\": \"gold@$long\"}"
	check "the message stays short" '[ "$(wc -c <"$work/body")" -lt 400 ]'
	bad_post 400 invalid_argument "clone_of as a number" '{"name": "x", "clone_of": 5}'
	bad_post 400 invalid_argument "clone_of null" '{"name": "x", "clone_of": null}'
	bad_post 400 invalid_argument "a clone named a/b" '{"name": "a/b", "clone_of": "gold@s1"}'
	bad_post 400 invalid_argument "a clone with an unknown write_cache" '{"name": "x", "clone_of": "gold@s1", "write_cache": "no"}'
	bad_post 404 not_found "a clone of an unknown snapshot" '{"name": "x", "clone_of": "gold@nope"}'
	bad_post 404 not_found "a clone of an unknown volume's snapshot" '{"name": "x", "clone_of": "nope@s1"}'
	bad_post 409 already_exists "a clone with a taken name" '{"name": "gold-c2", "clone_of": "gold@s1"}'

	many=$(for ((i = 0; i < 65; i++)); do printf '"v%d",' "$i"; done)
	bad_group 400 invalid_json "malformed JSON" '{"name": "g", "volumes": ['
	bad_group 400 invalid_argument "no volumes" '{"name": "g"}'
	bad_group 400 invalid_argument "no name" '{"volumes": ["gold"]}'
	bad_group 400 invalid_argument "volumes as a string" '{"name": "g", "volumes": "gold"}'
	bad_group 400 invalid_argument "an empty list" '{"name": "g", "volumes": []}'
	bad_group 400 invalid_argument "a volume as a number" '{"name": "g", "volumes": ["gold", 1]}'
	bad_group 400 invalid_argument "a volume twice" '{"name": "g", "volumes": ["gold", "gold-c1", "gold"]}'
	bad_group 400 invalid_argument "a volume named a/b" '{"name": "g", "volumes": ["gold", "a/b"]}'
	bad_group 400 invalid_argument "a name with /" '{"name": "a/b", "volumes": ["gold"]}'
	bad_group 400 invalid_argument "the name .." '{"name": "..", "volumes": ["gold"]}'
	bad_group 400 invalid_argument "a 10 KiB name" "{\"name\": \"$long\", \"volumes\": [\"gold\"]}"
	bad_group 400 invalid_argument "an unknown field" '{"name": "g", "volumes": ["gold"], "x": 1}'
	bad_group 400 too_many_volumes "65 volumes" "{\"name\": \"g\", \"volumes\": [${many%,}]}"
	bad_group 404 not_found "an unknown volume (none is made)" '{"name": "g", "volumes": ["gold", "nope"]}'
	bad_group 409 already_exists "a name one volume has (none is made)" '{"name": "s2", "volumes": ["gold-c1", "gold"]}'

	noauth DELETE /volumes/gold/snapshots/s1
	want_err 401 unauthorized "DELETE a snapshot without a token"
	noauth POST /volumes/gold/snapshots/s1/rollback
	want_err 401 unauthorized "rollback without a token"
	noauth POST /volumes/gold/snapshots -H 'Content-Type: application/json' --data-binary '{"name": "s9"}'
	want_err 401 unauthorized "snapshot without a token"
	noauth POST /volumes -H 'Content-Type: application/json' --data-binary '{"name": "x", "clone_of": "gold@s1"}'
	want_err 401 unauthorized "clone without a token"
	noauth POST /snapshots -H 'Content-Type: application/json' --data-binary '{"name": "g", "volumes": ["gold"]}'
	want_err 401 unauthorized "group snapshot without a token"
	unchanged "bad snapshot, clone and group requests"
}

# Snapshots and clones go in any order: a snapshot before its clones, the
# clones' snapshots before the clones; a clone outlives its origin.
snapshot_delete_test() {
	req DELETE /volumes/gold/snapshots/s1
	check "DELETE the snapshot two clones came from: 204" '[ "$status" = 204 ]'
	req DELETE /volumes/gold/snapshots/s1
	want_err 404 not_found "DELETE it again"
	req GET /volumes/gold/snapshots/s1
	want_err 404 not_found "GET it"
	req GET /volumes/gold-c2
	want 200 '.origin == null and .mapped_bytes == 4194304' "the clone stays, its origin now null"
	same_data "the clone keeps its data" gold-c2 "$work/img-gold"
	req GET /volumes/gold/snapshots
	want 200 '[.snapshots[].name] == ["nightly", "s2"]' "gold's other snapshots stay"
	req DELETE /volumes/gold/snapshots/s2
	check "DELETE the newest snapshot: 204" '[ "$status" = 204 ]'
	req DELETE /volumes/gold/snapshots/nightly
	check "DELETE the last one: 204" '[ "$status" = 204 ]'
	req DELETE /volumes/gold
	check "then the volume: 204" '[ "$status" = 204 ]'
	req GET /volumes/gold
	want_err 404 not_found "gold is gone"
	req GET /volumes/gold-c1/snapshots/nightly
	want 200 '.mapped_bytes == 4194304' "the clone's own snapshot outlives gold"
	same_data "the clone outlives its volume, with its write" gold-c1 "$work/img-c1"
	req DELETE /volumes/gold-c1
	want_err 409 has_snapshots "DELETE a clone with a snapshot"
	check "the message says 1 snapshot" \
		'jq -e ".error.message | contains(\"1 snapshot;\")" "$work/body" >/dev/null'
	req DELETE /volumes/gold-c1/snapshots/nightly
	check "DELETE the clone's snapshot: 204" '[ "$status" = 204 ]'
	req DELETE /volumes/gold-c1
	check "DELETE the clone: 204" '[ "$status" = 204 ]'
	req GET /pool
	want 200 '.snapshots == 0' "GET /pool: no snapshots left"
	req GET /volumes/gold-c2
	want 200 '.unique_bytes == 4194304' "the last holder of the image holds it alone"
}

# The image: 3 MiB and 1000 bytes of random data (a partial last sector).
data_test() {
	head -c $((3 * 1048576 + 1000)) /dev/urandom >"$work/img"
	req PUT /volumes/db1/data -T "$work/img"
	want 200 '.bytes == 3146728 and .written_bytes == 3146752' "PUT /volumes/db1/data"
	req GET /volumes/db1/data
	check "GET /volumes/db1/data: 200, the whole volume" \
		'[ "$status" = 200 ] && [ "$(stat -c %s "$work/body")" = 134217728 ]'
	check "GET returns the image" 'cmp -s -n 3146728 "$work/img" "$work/body"'
	check "and zeros after it" \
		'cmp -s -i 3146728:0 -n 1000000 "$work/body" /dev/zero'
	req GET /volumes/db1
	want 200 '.mapped_bytes >= 3146752' "the volume maps the image"
	head -c 2097152 /dev/urandom >"$work/img2"
	status=$(curl -s -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $token" \
		-T - "$url/volumes/db1/data" <"$work/img2")
	want 200 '.bytes == 2097152' "PUT chunked (no Content-Length)"
	req GET /volumes/db1/data
	check "GET after the chunked PUT: the new image, then the old one's tail" \
		'cmp -s -n 2097152 "$work/img2" "$work/body" &&
		 cmp -s -i 2097152:2097152 -n 1049576 "$work/img" "$work/body"'
	req PUT /volumes/nope/data -T "$work/img"
	want_err 404 not_found "PUT /volumes/nope/data"
	req PUT /volumes/wb1/data -T "$work/img"
	want_err 413 image_too_large "PUT an image larger than the volume"
	req GET /volumes/wb1
	want 200 '.mapped_bytes == 0' "the refused image wrote nothing"
	status=$(head -c 3000000 /dev/zero | curl -s -o "$work/body" -w '%{http_code}' \
		-H "Authorization: Bearer $token" -T - "$url/volumes/wb1/data")
	want_err 413 image_too_large "PUT a chunked image larger than the volume"
	head -c 1048576 /dev/urandom >"$work/img-wb"
	req PUT /volumes/wb1/data -T "$work/img-wb"
	want 200 '.bytes == 1048576' "PUT into a write-back volume"
	req GET /volumes/wb1/data
	check "GET the write-back volume" 'cmp -s "$work/img-wb" "$work/body"'
}

# A slow import (curl --limit-rate) shows its progress, and holds the volume.
progress_test() {
	local i seen=0 cpid
	post_json POST /volumes '{"name": "slow", "size": 16777216}'
	post_json POST /volumes/slow/snapshots '{"name": "empty"}'
	want 201 '.mapped_bytes == 0' "a snapshot of an empty volume"
	head -c 8388608 /dev/urandom >"$work/img-slow"
	curl -s -o "$work/slow.out" -w '%{http_code}' --limit-rate 2M \
		-H "Authorization: Bearer $token" -T "$work/img-slow" \
		"$url/volumes/slow/data" >"$work/slow.status" &
	cpid=$!
	for ((i = 0; i < TENTHS; i++)); do
		req GET /volumes/slow
		if jq -e '.transfer.direction == "import" and .transfer.bytes_total == 8388608
		          and .transfer.bytes_done <= 8388608' "$work/body" >/dev/null; then
			seen=1
			break
		fi
		sleep 0.1
	done
	check "GET /volumes/slow shows the import's progress" '[ "$seen" = 1 ]'
	req POST /volumes/slow/snapshots/empty/rollback
	want_err 409 in_use "rollback while importing"
	req PUT /volumes/slow/data -T "$work/img"
	want_err 409 in_use "a second import into the same volume"
	req DELETE /volumes/slow
	want_err 409 in_use "DELETE while importing"
	wait "$cpid"
	check "the slow import finished with 200" '[ "$(cat "$work/slow.status")" = 200 ]'
	req DELETE /volumes/slow/snapshots/empty
	check "DELETE slow@empty after the import: 204" '[ "$status" = 204 ]'
	req GET /volumes/slow
	want 200 'has("transfer") | not' "no transfer once it is done"
	req GET /volumes/slow/data
	check "the slow import landed" 'cmp -s -n 8388608 "$work/img-slow" "$work/body"'
}

IQN=iqn.2024-01.com.example:db
# bad_target STATUS CODE WHAT BODY
bad_target() {
	post_json POST /targets "$4"
	want_err "$1" "$2" "POST /targets: $3"
}

target_test() {
	local long
	long=iqn.2024-01.com.example:$(head -c 300 /dev/zero | tr '\0' a)
	post_json POST /targets "{\"iqn\": \"$IQN\", \"luns\": [{\"lun\": 0, \"volume\": \"db1\"}],
		\"allow\": [\"iqn.1998-01.com.vmware:esx1\", \"*\"],
		\"chap\": {\"user\": \"alice\", \"secret\": \"0123456789abcdef\",
		           \"mutual_user\": \"tgt\", \"mutual_secret\": \"fedcba9876543210\"}}"
	want 201 '.iqn == "'$IQN'" and .luns == [{"lun": 0, "volume": "db1"}]
	          and .chap.user == "alice" and .chap.mutual_user == "tgt"
	          and (.chap | has("secret") or has("mutual_secret") | not)' \
		"POST /targets (secrets not echoed)"
	post_json POST /targets '{"iqn": "eui.02004567A425678D"}'
	want 201 '.allow == [] and .luns == []' "POST /targets with an eui. name, defaults"
	post_json POST /targets '{"iqn": "naa.52004567BA64678D", "luns": [], "allow": ["*"], "chap": null}'
	want 201 '.allow == ["*"] and (has("chap") | not)' "POST /targets with a naa. name"
	req GET /targets
	want 200 '[.targets[].iqn] | sort == ["eui.02004567A425678D", "'$IQN'", "naa.52004567BA64678D"]' \
		"GET /targets"
	req GET "/targets/$IQN"
	want 200 '.allow == ["iqn.1998-01.com.vmware:esx1", "*"] and (.chap | has("secret") | not)' \
		"GET /targets/{iqn}"
	before=$(state)
	bad_target 409 already_exists "a taken name" "{\"iqn\": \"$IQN\"}"
	bad_target 400 invalid_argument "month 13" '{"iqn": "iqn.2024-13.com.example:x"}'
	bad_target 400 invalid_argument "a two-digit year" '{"iqn": "iqn.24-01.com.example:x"}'
	bad_target 400 invalid_argument "upper case" '{"iqn": "iqn.2024-01.com.Example:x"}'
	bad_target 400 invalid_argument "no domain" '{"iqn": "iqn.2024-01.:x"}'
	bad_target 400 invalid_argument "a short eui." '{"iqn": "eui.0123"}'
	bad_target 400 invalid_argument "a 17-digit naa." '{"iqn": "naa.12345678901234567"}'
	bad_target 400 invalid_argument "no type" '{"iqn": "target1"}'
	bad_target 400 invalid_argument "a 300-byte name" "{\"iqn\": \"$long\"}"
	bad_target 400 invalid_argument "a name with a space" '{"iqn": "iqn.2024-01.com.example:a b"}'
	bad_target 404 not_found "a LUN on a missing volume" '{"iqn": "iqn.2024-01.com.example:n", "luns": [{"lun": 0, "volume": "nope"}]}'
	bad_target 400 invalid_argument "a LUN twice" '{"iqn": "iqn.2024-01.com.example:n", "luns": [{"lun": 0, "volume": "db1"}, {"lun": 0, "volume": "wb1"}]}'
	bad_target 400 invalid_argument "LUN 16384" '{"iqn": "iqn.2024-01.com.example:n", "luns": [{"lun": 16384, "volume": "db1"}]}'
	bad_target 400 invalid_argument "a LUN as a string" '{"iqn": "iqn.2024-01.com.example:n", "luns": [{"lun": "0", "volume": "db1"}]}'
	bad_target 400 invalid_argument "a LUN with an unknown field" '{"iqn": "iqn.2024-01.com.example:n", "luns": [{"lun": 0, "volume": "db1", "ro": true}]}'
	bad_target 400 invalid_argument "a bad initiator name" '{"iqn": "iqn.2024-01.com.example:n", "allow": ["esx1"]}'
	bad_target 400 invalid_argument "allow as a string" '{"iqn": "iqn.2024-01.com.example:n", "allow": "*"}'
	bad_target 400 invalid_argument "a short CHAP secret" '{"iqn": "iqn.2024-01.com.example:n", "chap": {"user": "u", "secret": "short"}}'
	bad_target 400 invalid_argument "mutual CHAP without its secret" '{"iqn": "iqn.2024-01.com.example:n", "chap": {"user": "u", "secret": "0123456789abcdef", "mutual_user": "t"}}'
	bad_target 400 invalid_argument "the same secret both ways" '{"iqn": "iqn.2024-01.com.example:n", "chap": {"user": "u", "secret": "0123456789abcdef", "mutual_user": "t", "mutual_secret": "0123456789abcdef"}}'
	bad_target 400 invalid_argument "an unknown CHAP field" '{"iqn": "iqn.2024-01.com.example:n", "chap": {"user": "u", "secret": "0123456789abcdef", "x": 1}}'
	bad_target 400 invalid_argument "an unknown field" '{"iqn": "iqn.2024-01.com.example:n", "portal": 1}'
	bad_target 400 invalid_json "malformed JSON" '{"iqn": '
	req GET /targets/iqn.2024-01.com.example:nope
	want_err 404 not_found "GET an unknown target"
	req GET /targets/bogus
	want_err 400 invalid_argument "GET a target with a bad name"
	req PATCH /targets/iqn.2024-01.com.example:nope --data-binary '{"allow": []}'
	want_err 404 not_found "PATCH an unknown target"
	req PATCH "/targets/$IQN" --data-binary '{}'
	want_err 400 invalid_argument "PATCH a target with nothing to change"
	req PATCH "/targets/$IQN" --data-binary '{"luns": [{"lun": 1, "volume": "nope"}]}'
	want_err 404 not_found "PATCH a LUN onto a missing volume"
	req DELETE /volumes/db1
	want_err 409 in_use "DELETE a volume a target maps"
	unchanged "bad target requests"
	req PATCH "/targets/$IQN" --data-binary '{"allow": ["iqn.1998-01.com.vmware:esx2"], "chap": null}'
	want 200 '.allow == ["iqn.1998-01.com.vmware:esx2"] and (has("chap") | not) and .luns[0].volume == "db1"' \
		"PATCH a target's allow-list, removing CHAP"
	req PATCH "/targets/$IQN" --data-binary '{"luns": [{"lun": 0, "volume": "db1"}, {"lun": 3, "volume": "wb1"}]}'
	want 200 '.luns | length == 2' "PATCH a target's LUNs"
	req DELETE /targets/naa.52004567BA64678D
	check "DELETE /targets/{iqn}: 204" '[ "$status" = 204 ]'
	req DELETE /targets/naa.52004567BA64678D
	want_err 404 not_found "DELETE it again"
}

stats_test() {
	req GET /stats
	want 200 '(.volumes[] | select(.name == "db1") | .since_start.write.ops > 0
	           and .since_start.read.ops > 0 and .since_start.write.latency_us.p99 > 0
	           and (.last_second.read | has("iops"))) and .totals.since_start.write.bytes > 0
	           and .pool.capacity_bytes > 0' "GET /stats counts the API's I/O"
	# the default read cache (an eighth of RAM, at least 64 MiB) served the reads
	# of data the API wrote
	want 200 '.pool.read_cache.capacity_bytes >= 67108864 and .pool.read_cache.hits > 0
	          and .pool.read_cache.bytes <= .pool.read_cache.capacity_bytes' \
		"GET /stats: the pool's read cache"
	req GET /metrics
	check "GET /metrics: 200 text/plain" \
		'[ "$status" = 200 ] && grep -qi "^Content-Type: text/plain" "$work/hdr"'
	check "every sample line is Prometheus text" \
		'! grep -vE "^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? -?[0-9.e+-]+)$" "$work/body"'
	check "metrics has the pool and db1's writes" \
		'grep -q "^sluice_pool_capacity_bytes [1-9]" "$work/body" &&
		 grep -qE "^sluice_volume_ops_total\{volume=\"db1\",op=\"write\"\} [1-9]" "$work/body" &&
		 grep -q "^sluice_pool_read_cache_hits_total [1-9]" "$work/body"'
	check "a TYPE line per family, once" \
		'[ -z "$(grep "^# TYPE" "$work/body" | sort | uniq -d)" ]'
}

# What must survive a restart: db1 and its data, wb1, the targets, the token.
survived() {
	local what=$1 tok=$token
	req GET /volumes/db1
	want 200 '.size == 134217728 and .write_cache == "write-through"' "$what: db1 is there"
	req GET /volumes/db1/data
	check "$what: db1's data" 'cmp -s -n 2097152 "$work/img2" "$work/body"'
	req GET "/targets/$IQN"
	want 200 '.allow == ["iqn.1998-01.com.vmware:esx2"] and (.luns | length) == 2' \
		"$what: the target is there"
	req GET /targets/naa.52004567BA64678D
	want_err 404 not_found "$what: the deleted target stays deleted"
	check "$what: the same token" '[ "$(cat "$data/api-token")" = "$tok" ]'
}

# Before the restarts: pers with the gold image, snapshot p1, its first
# MiB overwritten; pers-c a clone of p1; a group g of both.
snap_setup() {
	post_json POST /volumes '{"name": "pers", "size": 8388608}'
	req PUT /volumes/pers/data -T "$work/img-gold"
	post_json POST /volumes/pers/snapshots '{"name": "p1"}'
	want 201 '.snapshot == "pers@p1"' "pers@p1 for the restarts"
	p1_created=$(jq -r .created "$work/body")
	req PUT /volumes/pers/data -T "$work/img-new"
	post_json POST /volumes '{"name": "pers-c", "clone_of": "pers@p1"}'
	want 201 '.origin == "pers@p1"' "pers-c, a clone of pers@p1"
	post_json POST /snapshots '{"name": "g", "volumes": ["pers", "pers-c"]}'
	want 201 '(.snapshots | length) == 2' "group g of pers and pers-c"
}

# What must survive of them; SNAPS: pers's snapshots, as a jq array.
snap_survived() {
	local what=$1 snaps=$2 pers_img=$3
	req GET /volumes/pers/snapshots
	want 200 "[.snapshots[].name] == $snaps" "$what: pers's snapshots, in order"
	req GET /volumes/pers/snapshots/p1
	want 200 '.created == "'"$p1_created"'" and .clones == 1 and .mapped_bytes == 4194304' \
		"$what: pers@p1, its created time and its clone"
	same_data "$what: pers's data" pers "$pers_img"
	req GET /volumes/pers-c
	want 200 '.origin == "pers@p1" and .snapshots == 1 and .unique_bytes == 0' \
		"$what: the clone pers-c and its origin"
	same_data "$what: the clone's data" pers-c "$work/img-gold"
	req GET /volumes/pers-c/snapshots/g
	want 200 '.snapshot == "pers-c@g"' "$what: the group's snapshot of the clone"
	req GET /volumes/gold-c2
	want 200 '.origin == null and .write_cache == "write-back"' \
		"$what: gold-c2, whose snapshot and volume were deleted"
	same_data "$what: gold-c2's data" gold-c2 "$work/img-gold"
}

restart_test() {
	snap_setup
	stop_term
	start
	survived "after SIGTERM and restart"
	snap_survived "after SIGTERM and restart" '["p1", "g"]' "$work/img-gold-new"
	# kill -9 right after acknowledged changes: they must all be there
	post_json POST /volumes '{"name": "k9", "size": 4194304}'
	req PUT /volumes/k9/data -T "$work/img-wb"
	post_json POST /targets '{"iqn": "iqn.2024-01.com.example:k9", "luns": [{"lun": 0, "volume": "k9"}], "allow": ["*"]}'
	req PATCH /volumes/wb1 --data-binary '{"size": 2097152}'
	post_json POST /volumes/k9/snapshots '{"name": "k1"}'
	want 201 '.snapshot == "k9@k1"' "a snapshot just before kill -9"
	post_json POST /volumes '{"name": "k9-c", "clone_of": "k9@k1"}'
	want 201 '.origin == "k9@k1"' "a clone just before kill -9"
	req POST /volumes/pers/snapshots/p1/rollback
	want 200 '.name == "pers"' "a rollback just before kill -9"
	req DELETE /volumes/pers/snapshots/g
	check "a snapshot deleted just before kill -9: 204" '[ "$status" = 204 ]'
	kill9
	start
	survived "after kill -9"
	snap_survived "after kill -9" '["p1"]' "$work/img-gold"
	req GET /volumes/k9/snapshots/k1
	want 200 '.mapped_bytes == 1048576' "after kill -9: the snapshot made just before"
	req GET /volumes/k9-c
	want 200 '.origin == "k9@k1"' "after kill -9: the clone made just before"
	same_data "after kill -9: the clone's data" k9-c "$work/img-wb"
	req GET /volumes/k9/data
	check "after kill -9: the image written just before" 'cmp -s -n 1048576 "$work/img-wb" "$work/body"'
	req GET /targets/iqn.2024-01.com.example:k9
	want 200 '.luns == [{"lun": 0, "volume": "k9"}]' "after kill -9: the target made just before"
	req GET /volumes/wb1
	want 200 '.size == 2097152 and .write_cache == "write-back"' "after kill -9: the grow just before"
}

# ctl EXPECTED-STATUS WHAT ARGS...: sluicectl's exit status; output in $work/ctl.out
ctl() {
	local want=$1 what=$2 rc
	shift 2
	"$SLUICECTL" --url "$scheme://127.0.0.1:$port" --data-dir "$data" "$@" \
		>"$work/ctl.out" 2>"$work/ctl.err"
	rc=$?
	if [ "$rc" = "$want" ]; then
		ok "sluicectl $what: exit $want"
	else
		not_ok "sluicectl $what: exit $rc, want $want"
		sed 's/^/    | /' "$work/ctl.out" "$work/ctl.err" | head -20
	fi
}

sluicectl_test() {
	ctl 0 health health
	ctl 0 "volume create" volume create ctl1 20M
	check "sluicectl volume create made 20 MiB" 'grep -q "20971520 bytes" "$work/ctl.out"'
	ctl 0 "volume list" volume list
	check "the list has ctl1" 'grep -q "^ctl1 " "$work/ctl.out"'
	ctl 0 "volume list --json" --json volume list
	check "--json is the API's JSON" 'jq -e ".volumes | map(.name) | index(\"ctl1\")" "$work/ctl.out" >/dev/null'
	ctl 0 "volume grow" volume grow ctl1 40M
	ctl 0 "volume set-cache" volume set-cache ctl1 write-back
	ctl 0 "volume show --json" --json volume show ctl1
	check "grown and write-back" 'jq -e ".size == 41943040 and .write_cache == \"write-back\"" "$work/ctl.out" >/dev/null'
	ctl 0 "image import" image import ctl1 "$work/img"
	ctl 0 "image export" image export ctl1 "$work/ctl.img"
	check "the exported image starts with the imported one" 'cmp -s -n 3146728 "$work/img" "$work/ctl.img"'
	ctl 0 "snapshot create" snapshot create ctl1 snap1
	check "it shows the snapshot" 'grep -q "^snapshot: *ctl1@snap1$" "$work/ctl.out" && grep -q "^used: .*unique" "$work/ctl.out"'
	ctl 0 "snapshot create VOL@SNAP" snapshot create ctl1@snap2
	ctl 0 "snapshot list" snapshot list ctl1
	check "the list is a table, oldest first" \
		'head -1 "$work/ctl.out" | grep -q "^SNAPSHOT *CREATED" &&
		 [ "$(awk "NR > 1 { print \$1 }" "$work/ctl.out" | tr "\n" " ")" = "ctl1@snap1 ctl1@snap2 " ]'
	ctl 0 "snapshot list --json" --json snapshot list ctl1
	check "--json is the API's JSON" 'jq -e "[.snapshots[].name] == [\"snap1\", \"snap2\"]" "$work/ctl.out" >/dev/null'
	ctl 0 "snapshot show" snapshot show ctl1 snap1
	check "show has the clones count" 'grep -q "^clones: *0$" "$work/ctl.out"'
	ctl 0 "clone" clone ctl1@snap1 ctl1-clone
	check "the clone shows its origin" 'grep -q "^clone of: *ctl1@snap1$" "$work/ctl.out"'
	ctl 0 "clone --write-back --json" --json --write-back clone ctl1@snap1 ctl1-clone2
	check "a write-back clone, as JSON" 'jq -e ".origin == \"ctl1@snap1\" and .write_cache == \"write-back\"" "$work/ctl.out" >/dev/null'
	ctl 0 "volume list with clones" volume list
	check "the list shows snapshots and origins" \
		'grep -qE "^ctl1 +[^ ]+ [^ ]+ +[^ ]+ [^ ]+ +2 " "$work/ctl.out" && grep -qE "^ctl1-clone .* ctl1@snap1" "$work/ctl.out"'
	ctl 0 "snapshot group" snapshot group grp ctl1 ctl1-clone
	check "the group's snapshots are listed" \
		'grep -q "^ctl1@grp " "$work/ctl.out" && grep -q "^ctl1-clone@grp " "$work/ctl.out"'
	ctl 0 "snapshot rollback" snapshot rollback ctl1 snap1
	check "it says what it did" 'grep -q "^rolled ctl1 back to ctl1@snap1$" "$work/ctl.out"'
	ctl 1 "snapshot create with a taken name" snapshot create ctl1 snap1
	check "the API's message is printed" 'grep -q "already has a snapshot snap1 (HTTP 409, already_exists)" "$work/ctl.err"'
	ctl 1 "snapshot show of an unknown snapshot" snapshot show ctl1@nope
	ctl 1 "snapshot create on an unknown volume" snapshot create nope s1
	ctl 1 "clone of an unknown snapshot" clone ctl1@nope ctl1-x
	ctl 2 "clone without VOLUME@SNAPSHOT" clone ctl1 ctl1-x
	ctl 2 "snapshot delete without a snapshot name" snapshot delete ctl1
	ctl 2 "snapshot group without a volume" snapshot group grp
	ctl 1 "volume delete of a volume with snapshots" volume delete ctl1
	check "the error says to delete them first" 'grep -q "has 3 snapshots; delete them first" "$work/ctl.err"'
	ctl 0 "snapshot delete" snapshot delete ctl1 snap1
	check "it says what it did" 'grep -q "^deleted snapshot ctl1@snap1$" "$work/ctl.out"'
	ctl 0 "snapshot delete VOL@SNAP" snapshot delete ctl1@snap2
	ctl 0 "snapshot delete of the group's" snapshot delete ctl1 grp
	ctl 0 "snapshot delete of the clone's" snapshot delete ctl1-clone@grp
	ctl 0 "volume delete of a clone" volume delete ctl1-clone
	ctl 0 "volume delete of the other clone" volume delete ctl1-clone2
	ctl 0 "target create" target create iqn.2024-01.com.example:ctl --lun 0=ctl1 --allow '*' \
		--chap-user bob --chap-secret 0123456789abcdef
	ctl 0 "target list" target list
	check "the target list shows the LUN and CHAP" 'grep -q "iqn.2024-01.com.example:ctl *0=ctl1 *one-way" "$work/ctl.out"'
	ctl 0 "target set --no-chap" target set iqn.2024-01.com.example:ctl --no-chap
	ctl 0 "target show --json" --json target show iqn.2024-01.com.example:ctl
	check "CHAP removed" 'jq -e "has(\"chap\") | not" "$work/ctl.out" >/dev/null'
	ctl 1 "volume delete of a mapped volume" volume delete ctl1
	check "the error says why" 'grep -q "is a LUN of target" "$work/ctl.err"'
	ctl 0 "target delete" target delete iqn.2024-01.com.example:ctl
	ctl 0 "volume delete" volume delete ctl1
	ctl 0 pool pool
	check "pool shows the snapshot count" 'grep -qE "^logical: .* volumes, [0-9]+ snapshots$" "$work/ctl.out"'
	ctl 0 stats stats
	check "stats shows db1" 'grep -q "^db1 " "$work/ctl.out"'
	ctl 1 "volume show of an unknown volume" volume show nope
	check "the API's message is printed" 'grep -q "no volume nope (HTTP 404, not_found)" "$work/ctl.err"'
	ctl 2 "with an unknown command" volume frob
	ctl 2 "with a bad size" volume create x 12Q
	ctl 2 "with too few arguments" volume create x
	ctl 1 "with a wrong token" --token nope volume list
	"$SLUICECTL" --url "http://127.0.0.1:$dead_port" health >/dev/null 2>&1
	status=$?
	check "sluicectl: exit 3 when sluiced is not there (got $status)" '[ "$status" = 3 ]'
}

# HTTPS with a self-signed certificate, on a second data dir.
tls_test() {
	local cert=$work/cert.pem key=$work/key.pem
	if ! command -v openssl >/dev/null; then
		echo "skip: openssl is not installed: no HTTPS test"
		return
	fi
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$key" -out "$cert" \
		>/dev/null 2>&1 || { not_ok "openssl could not make a certificate"; return; }
	printf '{"pool_size": 268435456, "segment_size": 1048576, "tls_cert": "%s", "tls_key": "%s"}\n' \
		"$cert" "$key" >"$work/tls.json"
	data=$work/data-tls scheme=https
	url=https://127.0.0.1:$port/api/v1
	start "$work/tls.json"
	status=$(curl -s --cacert "$cert" -o "$work/body" -w '%{http_code}' "$url/health")
	want 200 '.status == "ok"' "HTTPS: GET /health with the CA"
	status=$(curl -s --cacert "$cert" -o "$work/body" -w '%{http_code}' \
		-H "Authorization: Bearer $token" "$url/pool")
	want 200 '.capacity_bytes > 0' "HTTPS: GET /pool"
	status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/health")
	check "HTTPS: plain HTTP gets no API reply (got $status)" '[ "$status" != 200 ]'
	"$SLUICECTL" --url "https://127.0.0.1:$port" --cacert "$cert" --data-dir "$data" \
		pool >/dev/null 2>&1
	status=$?
	check "HTTPS: sluicectl --cacert pool (exit $status)" '[ "$status" = 0 ]'
	stop_term
}

printf '{"pool_size": 536870912, "segment_size": 4194304}\n' >"$work/cfg.json"
port=$(free_port)
iport=$(free_port)
dead_port=$(free_port)
scheme=http
url=http://127.0.0.1:$port/api/v1
token=
start

auth_test
pool_test
volume_create_test
volume_bad_test
volume_patch_test
data_test
progress_test
snapshot_test
snapshot_bad_test
snapshot_delete_test
target_test
stats_test
restart_test
sluicectl_test
stop_term
tls_test

# Sanitizer builds: a report in any run (the kill -9 ones too) is a failure.
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$log"; then
	not_ok "sanitizer reports in sluiced's log:"
	grep -E -A 20 'AddressSanitizer|LeakSanitizer|runtime error:' "$log" | head -60 | sed 's/^/    | /'
else
	ok "no sanitizer report in sluiced's log"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
