#!/bin/bash
# tests/integration/clones-e2e.sh: the desktop-pool workflow end to end,
# against the real sluiced on loopback, with curl and real iSCSI clients:
#
#   1. a volume, "golden", gets a 64 MiB image of seeded random data
#      imported over HTTP (PUT /volumes/golden/data); the export round trip
#      is compared with cmp;
#   2. a snapshot golden@gold, 50 clones of it (POST /volumes, clone_of),
#      and 11 targets made through the API: ten with five clones each
#      (LUNs 0-4), one with golden; the allow-list names one initiator;
#   3. discovery (iscsi-ls) shows the targets to that initiator and none to
#      another, which is refused at login too; every LUN has the image's
#      capacity (iscsi-readcapacity16); every clone read over iSCSI by
#      qemu-img (libiscsi) is byte for byte the image (qemu-img compare);
#   4. seeded random data written over iSCSI (qemu-io) into 10 clones, at
#      different offsets and lengths, one of them twice: those clones read
#      the image with the new data spliced in, the other 40, golden, and
#      the snapshot (through a clone made of it afterwards) still read the
#      image; each written clone's unique_bytes is what was written to it,
#      and the pool's used_bytes grew by the sum of that and no more; a
#      write to golden itself leaves the snapshot as it was;
#   5. teardown through the API: a mapped clone refuses deletion (409
#      in_use), golden refuses it while it has its snapshot (409
#      has_snapshots); targets, clones, snapshot and volume deleted, with
#      used_bytes followed at each step down to 0; SIGTERM exits 0 and the
#      pool reopens empty.
#
# Every check prints what it compares. SLUICE_TEST_SEED picks the data
# (the seed is printed; the same seed gives the same bytes);
# SLUICE_TEST_TIMEOUT seconds per wait (default 60); SLUICE_TEST_JOBS iSCSI
# readers at a time (default 4). GET /stats must count the clones' iSCSI
# reads. Skips (77) when curl, jq, python3,
# qemu-img with its iSCSI driver, qemu-io or libiscsi's tools are missing.
set -u

top_builddir=${top_builddir:-.}
SLUICED=${SLUICED:-$top_builddir/sluiced}
TIMEOUT=${SLUICE_TEST_TIMEOUT:-60}
TENTHS=$((TIMEOUT * 10))
JOBS=${SLUICE_TEST_JOBS:-4}

if [ ! -x "$SLUICED" ]; then
	echo "$SLUICED is not built; run make first (or set top_builddir)"
	exit 99
fi
for tool in curl jq python3 qemu-img qemu-io iscsi-ls iscsi-readcapacity16 timeout cmp; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skip: $tool is not installed (setup.sh installs it)"
		exit 77
	fi
done
if ! qemu-img --help 2>/dev/null | grep -qw iscsi; then
	echo "skip: qemu-img has no iSCSI driver (install qemu-block-extra)"
	exit 77
fi

MiB=$((1 << 20))
SIZE=$((64 * MiB))
NCLONES=50
NTARGETS=10                     # five clones each, LUNs 0-4
PER_TARGET=$((NCLONES / NTARGETS))
TPREFIX=iqn.2024-01.org.sluice.test:clones
GOLD_IQN=$TPREFIX-golden
INIT=iqn.2024-01.org.sluice.test:clones-e2e-host
STRANGER=iqn.2024-01.org.sluice.test:stranger
SEED=${SLUICE_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}

pass=0 fail=0
pid='' status='' body='' token='' HPORT='' IPORT=''
t0=$(date +%s.%N)
. "$(dirname "$0")/script-lib.sh"
scratch clones
data=$work/data
log='' runs=0

elapsed() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(date +%s.%N)"; }
phase() {
	echo
	echo "=== $* ($(elapsed "$t0") s)"
	if [ -n "$pid" ] && ! alive; then
		not_ok "sluiced (pid $pid) is gone"
		show "$log"
		exit 1
	fi
}
show()   { sed 's/^/    | /' "$1" | tail -n "${2:-20}"; }

# eq WHAT GOT WANT: one comparison, printed either way.
eq() {
	if [ "$2" = "$3" ]; then
		ok "$1: $2 == $3"
	else
		not_ok "$1: got $2, want $3"
	fi
}

# near WHAT GOT WANT SLACK: GOT within [WANT, WANT + SLACK].
near() {
	if [ "$2" -ge "$3" ] 2>/dev/null && [ "$2" -le $(($3 + $4)) ]; then
		ok "$1: $2 in [$3, $3 + $4]"
	else
		not_ok "$1: got $2, want $3 (+ at most $4)"
	fi
}

# ---- HTTP ----------------------------------------------------------------

# api METHOD PATH [CURL ARGS...]: status into $status, body into $work/body
# and $body.
api() {
	local m=$1 p=$2
	shift 2
	status=$(curl -s -o "$work/body" -w '%{http_code}' --max-time "$TIMEOUT" -X "$m" \
		-H "Authorization: Bearer $token" "$@" "http://127.0.0.1:$HPORT/api/v1$p")
	body=$(head -c 400 "$work/body")
}
api_json() { api "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3"; }

# want STATUS WHAT: the last reply's status, with its body when it is wrong.
want() {
	if [ "$status" = "$1" ]; then
		ok "$2: HTTP $status"
		return 0
	fi
	not_ok "$2: HTTP $status, want $1; body: $body"
	return 1
}

# want_err STATUS CODE WHAT
want_err() {
	local code
	code=$(jq -r '.error.code // "none"' "$work/body" 2>/dev/null)
	if [ "$status" = "$1" ] && [ "$code" = "$2" ]; then
		ok "$3: HTTP $status $code ($(jq -r .error.message "$work/body"))"
	else
		not_ok "$3: HTTP $status $code, want $1 $2; body: $body"
	fi
}

# field FILTER: from the last reply.
field() { jq -r "$1" "$work/body" 2>/dev/null; }

used() {
	api GET /pool
	field .used_bytes
}

# vol_space WHAT NAME MAPPED UNIQUE
vol_space() {
	api GET "/volumes/$2"
	if [ "$status" != 200 ]; then
		not_ok "$1: GET /volumes/$2: HTTP $status $body"
		return
	fi
	eq "$1: $2 mapped_bytes" "$(field .mapped_bytes)" "$3"
	eq "$1: $2 unique_bytes" "$(field .unique_bytes)" "$4"
	eq "$1: $2 shared_bytes" "$(field .shared_bytes)" "$(($3 - $4))"
}

# ---- the daemon ----------------------------------------------------------



# start: sluiced on a free HTTP port (tried three times: another process
# may take the port between the probe and the bind) and an iSCSI port the
# kernel picks; ready when /health answers and the log says so.
start() {
	local i
	for _ in 1 2 3; do
		HPORT=$(free_port)
		runs=$((runs + 1))
		log=$work/sluiced-$runs.log
		"$SLUICED" --foreground --config "$work/sluiced.json" --data-dir "$data" \
			--io-engine "${SLUICE_TEST_ENGINE:-threads}" \
			--http-listen "127.0.0.1:$HPORT" --iscsi-listen 127.0.0.1:0 \
			>>"$log" 2>&1 &
		pid=$!
		for ((i = 0; i < TENTHS; i++)); do
			if grep -q ' info: ready: ' "$log" &&
			   curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$HPORT/api/v1/health"; then
				IPORT=$(sed -n 's/.*iscsi: listening on 127\.0\.0\.1:\([0-9]*\), portal group 1$/\1/p' "$log")
				token=$(cat "$data/api-token" 2>/dev/null)
				[ -n "$IPORT" ] && [ -n "$token" ] && return 0
				break
			fi
			alive || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		pid=
		grep -qi 'address already in use' "$log" || break
	done
	not_ok "sluiced did not become ready"
	show "$log"
	return 1
}

stop_term() {
	kill -TERM "$pid"
	if ! reap_exit; then
		not_ok "SIGTERM: sluiced did not exit within ${TIMEOUT}s"
		show "$log"
		return
	fi
	eq "SIGTERM: sluiced's exit status" "$status" 0
}

# ---- iSCSI (qemu's libiscsi driver, as $INIT) ----------------------------

clone_name()  { printf 'clone-%02d' "$1"; }
clone_iqn()   { printf '%s-t%02d' "$TPREFIX" $(( ($1 - 1) / PER_TARGET + 1 )); }
clone_lun()   { echo $(( ($1 - 1) % PER_TARGET )); }

# iopts IQN LUN [INITIATOR]: qemu block options for that LUN.
iopts() {
	echo "driver=iscsi,transport=tcp,portal=127.0.0.1:$IPORT,target=$1,lun=$2,initiator-name=${3:-$INIT}"
}

# compare_lun WHAT FILE IQN LUN: qemu-img reads the whole LUN over iSCSI
# and compares it with FILE byte for byte. Output into $work/cmp-WHAT.
compare_lun() {
	local out=$work/cmp-$1
	if timeout "$TIMEOUT" qemu-img compare --image-opts \
		"driver=file,filename=$2" "$(iopts "$3" "$4")" >"$out" 2>&1; then
		echo "ok" >>"$out"
	else
		echo "rc=$?" >>"$out"
	fi
}

# compare_many LABEL "WHAT FILE IQN LUN"...: JOBS at a time; one check each.
compare_many() {
	local label=$1 spec what file iqn lun t p pids=()
	shift
	t=$(date +%s.%N)
	for spec in "$@"; do
		read -r what file iqn lun <<<"$spec"
		compare_lun "$what" "$file" "$iqn" "$lun" &
		pids+=($!)
		if [ "${#pids[@]}" -ge "$JOBS" ]; then
			wait "${pids[0]}"   # the oldest (never a bare wait: sluiced is a child too)
			pids=("${pids[@]:1}")
		fi
	done
	for p in "${pids[@]}"; do
		wait "$p"
	done
	for spec in "$@"; do
		read -r what file iqn lun <<<"$spec"
		if [ "$(tail -n 1 "$work/cmp-$what")" = ok ]; then
			ok "$label: $what ($iqn LUN $lun) over iSCSI == $(basename "$file"): $(head -n 1 "$work/cmp-$what")"
		else
			not_ok "$label: $what ($iqn LUN $lun) over iSCSI vs $(basename "$file")"
			show "$work/cmp-$what" 5
		fi
		rm -f "$work/cmp-$what"
	done
	echo "    ($# LUNs of $((SIZE / MiB)) MiB read in $(elapsed "$t") s, $JOBS at a time)"
}

# gen NAME LEN FILE: LEN bytes of random data from SEED and NAME.
gen() {
	python3 -c '
import random, sys
sys.stdout.buffer.write(random.Random(sys.argv[1]).randbytes(int(sys.argv[2])))' \
		"$SEED/$1" "$2" >"$3"
}

# splice BASE PATCH OFF OUT: BASE with PATCH written at OFF.
splice() {
	cp "$1" "$4" &&
	dd if="$2" of="$4" bs=4096 seek=$(($3 / 4096)) conv=notrunc status=none
}

# ---- the test ------------------------------------------------------------

echo "seed: $SEED (SLUICE_TEST_SEED=$SEED reproduces the data)"
printf '{"pool_size": 8589934592, "segment_size": 4194304}\n' >"$work/sluiced.json"
mkdir -p "$data"
IMG=$work/image.raw
gen image "$SIZE" "$IMG" || exit 99
echo "image: $SIZE bytes, sha256 $(sha256sum "$IMG" | cut -d' ' -f1)"

start || exit 1
echo "sluiced pid $pid, HTTP 127.0.0.1:$HPORT, iSCSI 127.0.0.1:$IPORT"

phase "1. a volume and its image, over HTTP"
api GET /pool
want 200 "GET /pool"
used0=$(field .used_bytes)
eq "a new pool: used_bytes" "$used0" 0
api_json POST /volumes "{\"name\": \"golden\", \"size\": $SIZE}"
want 201 "POST /volumes golden ($SIZE bytes)"
t=$(date +%s.%N)
api PUT /volumes/golden/data -H 'Content-Type: application/octet-stream' -T "$IMG"
want 200 "PUT /volumes/golden/data ($(elapsed "$t") s)"
eq "the import's bytes" "$(field .bytes)" "$SIZE"
t=$(date +%s.%N)
api GET /volumes/golden/data
if [ "$status" = 200 ] && cmp "$IMG" "$work/body"; then
	ok "GET /volumes/golden/data ($(elapsed "$t") s) == the image (cmp)"
else
	not_ok "GET /volumes/golden/data: HTTP $status, $(stat -c %s "$work/body") bytes, differs from the image"
fi
vol_space "after the import" golden "$SIZE" "$SIZE"
used1=$(used)
eq "used_bytes after the import (the image's size)" "$used1" "$SIZE"

phase "2. a snapshot, $NCLONES clones, $((NTARGETS + 1)) targets, over HTTP"
api_json POST /volumes/golden/snapshots '{"name": "gold"}'
want 201 "POST /volumes/golden/snapshots gold"
eq "golden@gold mapped_bytes" "$(field .mapped_bytes)" "$SIZE"
eq "golden@gold unique_bytes" "$(field .unique_bytes)" 0
t=$(date +%s.%N)
bad=0
for ((i = 1; i <= NCLONES; i++)); do
	c=$(clone_name "$i")
	api_json POST /volumes "{\"name\": \"$c\", \"clone_of\": \"golden@gold\"}"
	if [ "$status" != 201 ] ||
	   [ "$(field '[.origin, .size, .mapped_bytes, .unique_bytes] | join(" ")')" != "golden@gold $SIZE $SIZE 0" ]; then
		not_ok "POST /volumes $c clone_of golden@gold: HTTP $status $body"
		bad=$((bad + 1))
	fi
done
eq "clones created ($(elapsed "$t") s), each 201 with origin golden@gold, size $SIZE, mapped $SIZE, unique 0; failures" "$bad" 0
api GET /volumes/golden/snapshots/gold
eq "golden@gold: clones" "$(field .clones)" "$NCLONES"
api GET /pool
eq "GET /pool: volumes" "$(field .volumes)" $((NCLONES + 1))
eq "GET /pool: snapshots" "$(field .snapshots)" 1
eq "used_bytes after $NCLONES clones (unchanged: the image is stored once)" "$(field .used_bytes)" "$used1"

for ((t = 1; t <= NTARGETS; t++)); do
	iqn=$(printf '%s-t%02d' "$TPREFIX" "$t")
	luns=
	for ((l = 0; l < PER_TARGET; l++)); do
		luns="$luns${luns:+, }{\"lun\": $l, \"volume\": \"$(clone_name $(( (t - 1) * PER_TARGET + l + 1 )))\"}"
	done
	api_json POST /targets "{\"iqn\": \"$iqn\", \"luns\": [$luns], \"allow\": [\"$INIT\"]}"
	want 201 "POST /targets $iqn: LUNs 0-$((PER_TARGET - 1)) = $(field '[.luns[].volume] | join(",")')"
done
api_json POST /targets "{\"iqn\": \"$GOLD_IQN\", \"luns\": [{\"lun\": 0, \"volume\": \"golden\"}], \"allow\": [\"$INIT\"]}"
want 201 "POST /targets $GOLD_IQN: LUN 0 = golden"
api GET /targets
eq "GET /targets: how many" "$(field '.targets | length')" $((NTARGETS + 1))
eq "GET /targets: LUNs in all" "$(field '[.targets[].luns[]] | length')" $((NCLONES + 1))

phase "3. discovery, capacity and every clone read over iSCSI"
if timeout "$TIMEOUT" iscsi-ls -i "$INIT" -s "iscsi://127.0.0.1:$IPORT" >"$work/ls" 2>&1; then
	ok "iscsi-ls -s as $INIT"
else
	not_ok "iscsi-ls -s as $INIT"
	show "$work/ls"
fi
eq "iscsi-ls: targets $INIT discovers" "$(grep -c "^Target:$TPREFIX-" "$work/ls")" $((NTARGETS + 1))
eq "iscsi-ls: LUNs it lists" "$(grep -c '^Lun:' "$work/ls")" $((NCLONES + 1))
# (iscsi-ls prints block length * last LBA, one block short, rounded down:
# READ CAPACITY(16) below checks the size exactly.)
eq "iscsi-ls: LUNs of type DIRECT_ACCESS" "$(grep -c '^Lun:.*Type:DIRECT_ACCESS' "$work/ls")" $((NCLONES + 1))
timeout "$TIMEOUT" iscsi-ls -i "$STRANGER" "iscsi://127.0.0.1:$IPORT" >"$work/ls2" 2>&1
eq "iscsi-ls: targets $STRANGER (not in any allow-list) discovers" "$(grep -c "^Target:$TPREFIX-" "$work/ls2")" 0
if timeout "$TIMEOUT" qemu-img info --image-opts "$(iopts "$TPREFIX-t01" 0 "$STRANGER")" >"$work/info" 2>&1; then
	not_ok "$STRANGER could open $TPREFIX-t01 LUN 0"
	show "$work/info"
else
	ok "$STRANGER is refused at login: $(grep -o 'iSCSI: Failed to .*\|Login failed.*\|[Ff]orbidden.*' "$work/info" | head -n 1)"
fi
bad=
for ((i = 1; i <= NCLONES; i++)); do
	out=$(timeout "$TIMEOUT" iscsi-readcapacity16 -i "$INIT" \
		"iscsi://127.0.0.1:$IPORT/$(clone_iqn "$i")/$(clone_lun "$i")" 2>&1)
	blen=$(sed -n 's/^LOGICAL BLOCK LENGTH IN BYTES:\([0-9]*\).*/\1/p' <<<"$out")
	last=$(sed -n 's/^RETURNED LOGICAL BLOCK ADDRESS:\([0-9]*\).*/\1/p' <<<"$out")
	if [ -z "$blen" ] || [ -z "$last" ] || [ $(( (last + 1) * blen )) != "$SIZE" ]; then
		bad="$bad $(clone_name "$i")[$(tr '\n' ' ' <<<"$out" | head -c 200)]"
	fi
done
eq "READ CAPACITY(16) of the $NCLONES clones: (last LBA + 1) * block length == $SIZE; mismatches" "${bad:- none}" " none"

specs=()
for ((i = 1; i <= NCLONES; i++)); do
	specs+=("$(clone_name "$i") $IMG $(clone_iqn "$i") $(clone_lun "$i")")
done
specs+=("golden $IMG $GOLD_IQN 0")
compare_many "before writes" "${specs[@]}"
# One clone once more, copied out whole by qemu-img convert and compared
# with cmp, independently of qemu-img compare's logic.
c=17
if timeout "$TIMEOUT" qemu-img convert -O raw --image-opts "$(iopts "$(clone_iqn $c)" "$(clone_lun $c)")" \
	"$work/copy.raw" >"$work/conv" 2>&1 && cmp "$IMG" "$work/copy.raw"; then
	ok "qemu-img convert of $(clone_name $c) to a file: cmp finds it == the image"
else
	not_ok "qemu-img convert of $(clone_name $c) to a file, then cmp with the image"
	show "$work/conv"
fi
rm -f "$work/copy.raw"
api GET /stats
n=$(field '[.volumes[]? | select(.name | startswith("clone-")) | .since_start.read.bytes] | add // 0')
if [ "$n" -ge $((NCLONES * SIZE)) ]; then
	ok "GET /stats counts $n bytes read from the clones over iSCSI (at least $((NCLONES * SIZE)))"
else
	not_ok "GET /stats counts $n bytes read from the clones; qemu-img read at least $((NCLONES * SIZE)) over iSCSI"
fi

phase "4. writes into 10 clones over iSCSI"
# Clone numbers spread over the ten targets and the five LUNs; the j-th
# gets (j+1) * 384 KiB at j * 6 MiB + 12 KiB (4 KiB aligned, crossing MiB
# lines); the last one ends at the LUN's end. The first is written twice.
WRITTEN=(1 7 13 19 25 26 32 38 44 50)
declare -A off len
sum=0
for j in "${!WRITTEN[@]}"; do
	i=${WRITTEN[$j]}
	len[$i]=$(( (j + 1) * 384 * 1024 ))
	off[$i]=$(( j * 6 * MiB + 12 * 1024 ))
	[ "$j" = 9 ] && off[$i]=$(( SIZE - len[$i] ))
	sum=$(( sum + len[$i] ))
done
write_lun() {           # write_lun WHAT IQN LUN PATCH OFF
	local n
	n=$(stat -c %s "$4")
	if timeout "$TIMEOUT" qemu-io --image-opts "$(iopts "$2" "$3")" \
		-c "write -q -s $4 $5 $n" >"$work/io" 2>&1 && [ ! -s "$work/io" ]; then
		ok "qemu-io write of $n bytes at $5 into $1 ($2 LUN $3)"
	else
		not_ok "qemu-io write of $n bytes at $5 into $1 ($2 LUN $3)"
		show "$work/io"
	fi
}
t=$(date +%s.%N)
first=${WRITTEN[0]}
gen "first-$first" "${len[$first]}" "$work/patch-first"
write_lun "$(clone_name "$first") (a first time)" "$(clone_iqn "$first")" "$(clone_lun "$first")" \
	"$work/patch-first" "${off[$first]}"
for i in "${WRITTEN[@]}"; do
	gen "patch-$i" "${len[$i]}" "$work/patch-$i"
	write_lun "$(clone_name "$i")" "$(clone_iqn "$i")" "$(clone_lun "$i")" "$work/patch-$i" "${off[$i]}"
done
echo "    (11 writes, $(( (sum + len[$first]) / 1024 )) KiB, in $(elapsed "$t") s)"

echo "-- space"
for i in "${WRITTEN[@]}"; do
	vol_space "written ${len[$i]} bytes" "$(clone_name "$i")" "$SIZE" "${len[$i]}"
done
bad=
for ((i = 1; i <= NCLONES; i++)); do
	[ -n "${len[$i]:-}" ] && continue
	api GET "/volumes/$(clone_name "$i")"
	u=$(field .unique_bytes)
	[ "$status" = 200 ] && [ "$u" = 0 ] || bad="$bad $(clone_name "$i")=$status/$u"
done
eq "unique_bytes of the 40 clones not written (each 0); others" "${bad:- none}" " none"
vol_space "clones wrote, golden did not" golden "$SIZE" 0
api GET /volumes/golden/snapshots/gold
eq "golden@gold unique_bytes (its blocks are still golden's)" "$(field .unique_bytes)" 0
used2=$(used)
eq "used_bytes: the image + the bytes written to clones ($SIZE + $sum; the first clone's first write is dead)" \
	"$used2" $((SIZE + sum))

echo "-- data"
specs=()
for ((i = 1; i <= NCLONES; i++)); do
	[ -n "${len[$i]:-}" ] && continue
	specs+=("$(clone_name "$i") $IMG $(clone_iqn "$i") $(clone_lun "$i")")
done
specs+=("golden $IMG $GOLD_IQN 0")
# The snapshot, through a clone made of it now, on golden's target.
api_json POST /volumes '{"name": "probe", "clone_of": "golden@gold"}'
want 201 "POST /volumes probe clone_of golden@gold (to read the snapshot)"
api_json PATCH "/targets/$GOLD_IQN" "{\"luns\": [{\"lun\": 0, \"volume\": \"golden\"}, {\"lun\": 1, \"volume\": \"probe\"}]}"
want 200 "PATCH /targets/$GOLD_IQN: probe as LUN 1"
specs+=("snapshot-via-probe $IMG $GOLD_IQN 1")
compare_many "not written" "${specs[@]}"
# The written ones: the image with their patch spliced in, built a few at
# a time (64 MiB each).
batch=()
for i in "${WRITTEN[@]}"; do
	splice "$IMG" "$work/patch-$i" "${off[$i]}" "$work/expect-$i" || exit 99
	batch+=("$(clone_name "$i") $work/expect-$i $(clone_iqn "$i") $(clone_lun "$i")")
	if [ "${#batch[@]}" -ge "$JOBS" ] || [ "$i" = "${WRITTEN[-1]}" ]; then
		compare_many "written" "${batch[@]}"
		for spec in "${batch[@]}"; do
			read -r _ f _ <<<"$spec"
			rm -f "$f"
		done
		batch=()
	fi
done
i=${WRITTEN[3]}
splice "$IMG" "$work/patch-$i" "${off[$i]}" "$work/expect-$i"
api GET "/volumes/$(clone_name "$i")/data"
if [ "$status" = 200 ] && cmp "$work/expect-$i" "$work/body"; then
	ok "GET /volumes/$(clone_name "$i")/data over HTTP == what iSCSI wrote (cmp)"
else
	not_ok "GET /volumes/$(clone_name "$i")/data: HTTP $status, differs from the expected image"
fi
rm -f "$work/expect-$i" "$work/body"

echo "-- a write into golden itself"
gen golden-write "$MiB" "$work/patch-golden"
write_lun golden "$GOLD_IQN" 0 "$work/patch-golden" 0
splice "$IMG" "$work/patch-golden" 0 "$work/expect-golden"
compare_many "golden written" "golden $work/expect-golden $GOLD_IQN 0" \
	"snapshot-via-probe $IMG $GOLD_IQN 1"
rm -f "$work/expect-golden"
vol_space "golden wrote 1 MiB" golden "$SIZE" "$MiB"
used3=$(used)
eq "used_bytes: + golden's MiB" "$used3" $((used2 + MiB))

phase "5. teardown over HTTP"
api DELETE "/volumes/$(clone_name 1)"
want_err 409 in_use "DELETE $(clone_name 1) while a target maps it"
for ((t = 1; t <= NTARGETS; t++)); do
	api DELETE "/targets/$(printf '%s-t%02d' "$TPREFIX" "$t")"
	[ "$status" = 204 ] || not_ok "DELETE /targets/$(printf '%s-t%02d' "$TPREFIX" "$t"): HTTP $status $body"
done
api DELETE "/targets/$GOLD_IQN"
want 204 "DELETE /targets/$GOLD_IQN"
api GET /targets
eq "GET /targets after deleting them all: how many" "$(field '.targets | length')" 0
api DELETE /volumes/golden
want_err 409 has_snapshots "DELETE golden before its snapshot"
api GET /volumes/golden
eq "golden is still there after the refused DELETE" "$status" 200

expect=$used3
for i in "${WRITTEN[@]}"; do
	api DELETE "/volumes/$(clone_name "$i")"
	[ "$status" = 204 ] || not_ok "DELETE /volumes/$(clone_name "$i"): HTTP $status $body"
	expect=$((expect - len[$i]))
done
eq "used_bytes after deleting the written clones (their unique bytes freed)" "$(used)" "$expect"
bad=0
for ((i = 1; i <= NCLONES; i++)); do
	[ -n "${len[$i]:-}" ] && continue
	api DELETE "/volumes/$(clone_name "$i")"
	[ "$status" = 204 ] || { not_ok "DELETE /volumes/$(clone_name "$i"): HTTP $status $body"; bad=$((bad + 1)); }
done
api DELETE /volumes/probe
[ "$status" = 204 ] || { not_ok "DELETE /volumes/probe: HTTP $status $body"; bad=$((bad + 1)); }
eq "DELETE of the other 41 clones: failures" "$bad" 0
eq "used_bytes after deleting every clone (the shared image stays)" "$(used)" "$expect"
api GET /volumes/golden/snapshots/gold
eq "golden@gold: clones" "$(field .clones)" 0
eq "golden@gold unique_bytes (the MiB golden overwrote)" "$(field .unique_bytes)" "$MiB"
api DELETE /volumes/golden/snapshots/gold
want 204 "DELETE /volumes/golden/snapshots/gold"
eq "used_bytes after deleting the snapshot" "$(used)" "$SIZE"
api DELETE /volumes/golden
want 204 "DELETE /volumes/golden"
api GET /pool
eq "GET /pool at the end: used_bytes" "$(field .used_bytes)" 0
eq "GET /pool at the end: volumes" "$(field .volumes)" 0
eq "GET /pool at the end: snapshots" "$(field .snapshots)" 0
api GET /volumes
eq "GET /volumes at the end" "$(field '.volumes | length')" 0

phase "6. stop and reopen"
stop_term
if start; then
	api GET /pool
	eq "after a restart: used_bytes" "$(field .used_bytes)" 0
	eq "after a restart: volumes" "$(field .volumes)" 0
	stop_term
fi

if grep -q ' \(error\|warning\): ' "$work"/sluiced-*.log; then
	echo "sluiced's errors and warnings:"
	grep -h ' \(error\|warning\): ' "$work"/sluiced-*.log | head -n 20 | sed 's/^/    | /'
fi
echo
echo "$pass passed, $fail failed, $(elapsed "$t0") s (seed $SEED)"
[ "$fail" -eq 0 ]
