#!/bin/bash
# tests/bench/mgmt-bench.sh: the HTTP API's two performance targets.
#
#   1. Image import over HTTP on loopback reaches >= 70 % of the store's
#      sequential write throughput. The store's figure is store-bench's
#      sequential fill (one volume, 1 MiB writes, 8 in flight: what the
#      import keeps in flight too); the API's is `curl -T` of an image of
#      the same size into a fresh pool on the same file system.
#   2. API calls answer in < 50 ms at the 99th percentile while an import
#      writes as fast as it can: GET /volumes/{name}, one after another.
#      The same under a full iSCSI write load: qemu-img convert of the
#      image onto a LUN over libiscsi, back to back (when qemu-img has its
#      iSCSI driver).
#   3. 1000 clones of a snapshot of an imported volume, created through
#      the API one after another (each durable when it answers), in < 10 s:
#      one curl process, one connection, so curl's start-up is not timed.
#
# Prints figures and PASS or MISS for each target; fails only when a tool
# does. Usage: mgmt-bench.sh [--dir D] [--gib G] [--rounds R] [--calls N].
# The default directory is a fresh one under /var/tmp (real disk), removed
# at the end; it needs about (R + 2) x G GiB free (sparse files).
set -eu

top_builddir=${top_builddir:-.}
gib=2
calls=300
rounds=3
dir=

while [ $# -gt 0 ]; do
	case $1 in
	--dir)   dir=$2; shift 2 ;;
	--gib)   gib=$2; shift 2 ;;
	--calls) calls=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	*)       sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"; exit 2 ;;
	esac
done
for prog in sluiced tests/bench/store-bench; do
	[ -x "$top_builddir/$prog" ] || { echo "no $top_builddir/$prog: build first" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }
if [ -z "$dir" ]; then
	dir=$(mktemp -d /var/tmp/sluice-mgmt-bench.XXXXXX)
	own_dir=1
fi
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir/store" "$dir/data" "$dir/image" "$dir/iimage"
	[ -n "${own_dir:-}" ] && rm -rf "$dir"
	return 0
}
trap cleanup EXIT

bytes=$((gib * 1073741824))

# store_fill: one store-bench sequential fill; prints its MiB/s.
store_fill() {
	mkdir -p "$dir/store"
	"$top_builddir/tests/bench/store-bench" --test mapmem --vols 1 --qd 8 \
		--seq-kib 1024 --seq-gib "$gib" --rand-gib 0.01 --dir "$dir/store" |
		sed -n 's/.*fill=sequential .*fill_mib_s=\([0-9.]*\).*/\1/p'
	rm -rf "$dir/store"
}

# api_import N: a fresh volume importN, filled over HTTP; prints its MiB/s.
api_import() {
	curl -sf -o /dev/null -H "$auth" -d "{\"name\": \"import$1\", \"size\": $bytes}" \
		"$url/volumes"
	curl -sf -H "$auth" -T "$dir/image" "$url/volumes/import$1/data" |
		sed -n 's/.*"bytes_per_second":\([0-9.e+]*\).*/\1/p' |
		awk '{ printf "%.1f", $1 / 1048576 }'
}

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
iport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '{"pool_size": %d, "log_level": "warn"}\n' $(((rounds + 2) * bytes)) >"$dir/cfg.json"
"$top_builddir/sluiced" --foreground --config "$dir/cfg.json" --data-dir "$dir/data" \
	--http-listen "127.0.0.1:$port" --iscsi-listen "127.0.0.1:$iport" >"$dir/log" 2>&1 &
pid=$!
url=http://127.0.0.1:$port/api/v1
for _ in $(seq 600); do
	curl -s -o /dev/null "$url/health" && break
	sleep 0.1
done
auth="Authorization: Bearer $(cat "$dir/data/api-token")"
# random bytes: an image of zeros would flatter any zero detection
head -c "$bytes" /dev/urandom >"$dir/image"

# The disk is often shared (a VM's): rounds interleave the two, and the
# medians are compared. Each fill writes fresh (sparse) space.
store=() api=()
for ((i = 1; i <= rounds; i++)); do
	store+=("$(store_fill)")
	api+=("$(api_import "$i")")
	echo "round $i: store sequential fill ${store[-1]} MiB/s, HTTP import ${api[-1]} MiB/s"
done
store_mib_s=$(median "${store[@]}")
api_mib_s=$(median "${api[@]}")
curl -sf -o /dev/null -H "$auth" -d "{\"name\": \"bench\", \"size\": $bytes}" "$url/volumes"

echo "$calls calls of GET /volumes/bench while imports run back to back..."
(while curl -sf -o /dev/null -H "$auth" -T "$dir/image" "$url/volumes/bench/data"; do :; done) &
cpid=$!
for _ in $(seq "$calls"); do
	curl -s -o /dev/null -w '%{time_total}\n' -H "$auth" "$url/volumes/bench"
done >"$dir/lat"
kill "$cpid"
wait "$cpid" 2>/dev/null || true
lat=$(sort -n "$dir/lat" | awk '{ a[NR] = $1 } END {
	printf "%.2f %.2f %.2f", a[int(NR * 0.5)] * 1000, a[int(NR * 0.99)] * 1000, a[NR] * 1000 }')
read -r p50 p99 max <<<"$lat"
echo "  p50 $p50 ms, p99 $p99 ms, max $max ms"

p99i=n/a
if qemu-img --help 2>/dev/null | grep -qw iscsi; then
	iqn=iqn.2026-11.io.sluice:bench
	curl -sf -o /dev/null -H "$auth" -d "{\"name\": \"iload\", \"size\": $bytes}" "$url/volumes"
	curl -sf -o /dev/null -H "$auth" \
		-d "{\"iqn\": \"$iqn\", \"luns\": [{\"lun\": 0, \"volume\": \"iload\"}], \"allow\": [\"*\"]}" \
		"$url/targets"
	iurl=iscsi://127.0.0.1:$iport/$iqn/0
	# random data: qemu-img would skip or zero-write the sparse image
	head -c $((256 << 20)) /dev/urandom >"$dir/iimage"
	echo "$calls calls of GET /volumes/bench while qemu-img writes over iSCSI back to back..."
	(while timeout 600 qemu-img convert -n -f raw -O raw "$dir/iimage" "$iurl" 2>/dev/null; do :; done) &
	cpid=$!
	sleep 1
	for _ in $(seq "$calls"); do
		curl -s -o /dev/null -w '%{time_total}\n' -H "$auth" "$url/volumes/bench"
	done >"$dir/lati"
	kill "$cpid"
	wait "$cpid" 2>/dev/null || true
	pkill -f "qemu-img convert -n -f raw -O raw $dir/iimage" 2>/dev/null || true
	wbytes=$(curl -sf -H "$auth" "$url/stats" |
		python3 -c 'import json, sys
for v in json.load(sys.stdin).get("volumes", []):
    if v.get("name") == "iload": print(v["since_start"]["write"]["bytes"])')
	echo "  meanwhile $((${wbytes:-0} >> 20)) MiB written over iSCSI (GET /stats)"
	read -r _ p99i _ <<<"$(sort -n "$dir/lati" | awk '{ a[NR] = $1 } END {
		printf "%.2f %.2f %.2f", a[int(NR * 0.5)] * 1000, a[int(NR * 0.99)] * 1000, a[NR] * 1000 }')"
	echo "  p99 $p99i ms"
fi

echo "1000 clones of bench@gold through POST /volumes..."
curl -sf -o /dev/null -H "$auth" -d '{"name": "gold"}' "$url/volumes/bench/snapshots"
for i in $(seq 1000); do
	[ "$i" -gt 1 ] && echo next
	printf 'url = "%s/volumes"\nheader = "%s"\ndata = "{\\"name\\": \\"c%d\\", \\"clone_of\\": \\"bench@gold\\"}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
		"$url" "$auth" "$i"
done >"$dir/clones.cfg"
t0=$(date +%s.%N)
curl -s -K "$dir/clones.cfg" >"$dir/clones.out"
t1=$(date +%s.%N)
made=$(grep -c '^201$' "$dir/clones.out" || true)
clone_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "  $made of 1000 created (201) in $clone_s s"

echo
echo "medians: store $store_mib_s MiB/s, HTTP import $api_mib_s MiB/s"
awk -v s="$store_mib_s" -v a="$api_mib_s" -v p99="$p99" -v p99i="$p99i" -v cs="$clone_s" \
    -v made="$made" 'BEGIN {
	r = s > 0 ? a / s * 100 : 0
	printf "%-44s %10s %10s  %s\n", "target", "measured", "goal", "verdict"
	printf "%-44s %9.0f%% %9s%%  %s\n", "import over HTTP / store sequential write", r, ">= 70",
	       (r >= 70 ? "PASS" : "MISS")
	printf "%-44s %7.2f ms %7s ms  %s\n", "API call p99 under import load", p99, "< 50",
	       (p99 < 50 ? "PASS" : "MISS")
	if (p99i != "n/a")
		printf "%-44s %7.2f ms %7s ms  %s\n", "API call p99 under iSCSI write load", p99i,
		       "< 50", (p99i + 0 < 50 ? "PASS" : "MISS")
	printf "%-44s %8.2f s %8s s  %s\n", "1000 clones through the API", cs, "< 10",
	       (cs < 10 && made == 1000 ? "PASS" : "MISS")
}'
