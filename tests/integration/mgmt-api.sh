#!/bin/bash
# tests/integration/mgmt-api.sh: the HTTP API and sluicectl against the real
# sluiced, over loopback with curl. Every route: its success, and the bad
# inputs (malformed JSON, wrong types, unknown fields, bad names, sizes that
# overflow, missing or wrong token, unknown objects, conflicts, a 1 GiB body
# where a small one belongs), each a JSON {"error": {"code", "message"}}
# with the right status and nothing changed. Then restart (SIGTERM) and
# kill -9: volumes, targets and image data survive. Image import and export
# round trips compared with cmp; progress seen while an import runs;
# sluicectl's commands, --json and exit statuses; HTTPS when openssl is
# there.
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
work=$(mktemp -d -t sluice-mgmt.XXXXXX) || exit 99
data=$work/data
log=$work/sluiced.log

cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT

ok()     { pass=$((pass + 1)); echo "ok: $*"; }
not_ok() { fail=$((fail + 1)); echo "FAIL: $*"; }
check()  { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }

# A port nobody listens on now (the kernel picks it).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

alive() {
	kill -0 "$pid" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

# start [CONFIG]: sluiced on $port, ready when GET /health answers.
start() {
	local cfg=${1:-$work/cfg.json} i
	"$SLUICED" --foreground --config "$cfg" --data-dir "$data" \
		--http-listen "127.0.0.1:$port" --iscsi-listen "127.0.0.1:$iport" \
		>>"$log" 2>&1 &
	pid=$!
	for ((i = 0; i < TENTHS; i++)); do
		if curl -s -k -o /dev/null "$scheme://127.0.0.1:$port/api/v1/health"; then
			token=$(cat "$data/api-token" 2>/dev/null)
			return 0
		fi
		alive || break
		sleep 0.1
	done
	not_ok "sluiced did not become ready"
	tail -20 "$log" | sed 's/^/    | /'
	exit 1
}

# stop_term: SIGTERM; it must exit 0 in time.
stop_term() {
	local i
	kill -TERM "$pid"
	for ((i = 0; i < TENTHS; i++)); do
		alive || break
		sleep 0.1
	done
	if alive; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		pid=
		not_ok "SIGTERM: sluiced did not exit"
		return
	fi
	wait "$pid"
	status=$?
	pid=
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

# What bad requests must leave alone: volumes and targets.
state() {
	curl -s -k -H "Authorization: Bearer $token" "$url/volumes" | jq -S -c '.volumes | map(del(.transfer))'
	curl -s -k -H "Authorization: Bearer $token" "$url/targets" | jq -S -c .
}

unchanged() {
	if [ "$(state)" = "$before" ]; then
		ok "$1: nothing changed"
	else
		not_ok "$1: the volumes or targets changed"
	fi
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
	         "GET /targets" "POST /targets" "GET /targets/iqn.2024-01.com.example:t" \
	         "PATCH /targets/iqn.2024-01.com.example:t" \
	         "DELETE /targets/iqn.2024-01.com.example:t" "GET /sessions" \
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
	          and (.uuid | test("^[0-9a-f-]{36}$")) and .cleaner.state == "absent"
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
	bad_post 501 not_implemented "clone_of (no snapshots yet)" '{"name": "x", "clone_of": "db1@s"}'
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

snapshot_test() {
	local r
	for r in "GET /volumes/db1/snapshots" "POST /volumes/db1/snapshots" \
	         "GET /volumes/db1/snapshots/s1" "DELETE /volumes/db1/snapshots/s1" \
	         "POST /volumes/db1/snapshots/s1/rollback" "GET /sessions"; do
		req "${r%% *}" "${r#* }"
		want_err 501 not_implemented "$r"
	done
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
	req PUT /volumes/slow/data -T "$work/img"
	want_err 409 in_use "a second import into the same volume"
	req DELETE /volumes/slow
	want_err 409 in_use "DELETE while importing"
	wait "$cpid"
	check "the slow import finished with 200" '[ "$(cat "$work/slow.status")" = 200 ]'
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
	req GET /metrics
	check "GET /metrics: 200 text/plain" \
		'[ "$status" = 200 ] && grep -qi "^Content-Type: text/plain" "$work/hdr"'
	check "every sample line is Prometheus text" \
		'! grep -vE "^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? -?[0-9.e+-]+)$" "$work/body"'
	check "metrics has the pool and db1's writes" \
		'grep -q "^sluice_pool_capacity_bytes [1-9]" "$work/body" &&
		 grep -qE "^sluice_volume_ops_total\{volume=\"db1\",op=\"write\"\} [1-9]" "$work/body"'
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

restart_test() {
	stop_term
	start
	survived "after SIGTERM and restart"
	# kill -9 right after acknowledged changes: they must all be there
	post_json POST /volumes '{"name": "k9", "size": 4194304}'
	req PUT /volumes/k9/data -T "$work/img-wb"
	post_json POST /targets '{"iqn": "iqn.2024-01.com.example:k9", "luns": [{"lun": 0, "volume": "k9"}], "allow": ["*"]}'
	req PATCH /volumes/wb1 --data-binary '{"size": 2097152}'
	kill9
	start
	survived "after kill -9"
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
	ctl 0 stats stats
	check "stats shows db1" 'grep -q "^db1 " "$work/ctl.out"'
	ctl 1 "volume show of an unknown volume" volume show nope
	check "the API's message is printed" 'grep -q "no volume nope (HTTP 404, not_found)" "$work/ctl.err"'
	ctl 1 "snapshot create (501)" snapshot create db1 s1
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
snapshot_test
data_test
progress_test
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
