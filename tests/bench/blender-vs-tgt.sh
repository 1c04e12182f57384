#!/bin/bash
# tests/bench/blender-vs-tgt.sh: sluiced and tgt (tgtd, the reference
# user-space iSCSI target) side by side under the same loads from
# tests/bench/blender, on the same file system, in one run.
#
#   sluiced: one thin volume behind one target, created through the HTTP
#            API; the default write-through mode (a WRITE is acknowledged
#            once durable) and the default I/O engine.
#   tgtd:    its own instance (own portal, own control port), one LUN on
#            a file made with truncate of the same size, --bsoflags sync
#            (O_SYNC: acknowledged writes are durable there too).
#
# Both LUNs are filled once (sequential 256 KiB writes) before the first
# workload, so reads hit real data. Then, each on sluiced and then tgt:
#   1. 4 KiB blended writes: 16 VMs, total QD 32, each VM half random and
#      half sequential in its own region (goal: sluiced >= 5x tgt IOPS)
#   2. 4 KiB random reads, 16 VMs, QD 32              (goal >= 1x)
#   3. 128 KiB sequential reads, 4 VMs, QD 16         (goal >= 1x)
#   4. 128 KiB sequential writes, 4 VMs, QD 16        (goal >= 1x)
# VMs are spread over 4 sessions. For each, the CPU time (utime + stime
# of /proc/PID/stat, all threads) the target process spent, per I/O
# (goal: sluiced <= tgt), and as a share of one core over the run's wall
# time ("cpu%": above 100 means more than one core was busy).
#
# Prints a table with the ratios and MEET or MISS per goal; it judges
# nothing else and is not run by make check. Note that tgt's file goes
# through the page cache, so its reads of data written in the run are
# memory reads (as they would be on a host with that much RAM).
#
# Knobs (environment): BLENDER_SECS per workload and target (12),
# BLENDER_SIZE of each LUN (1G), BLENDER_SESSIONS (4), TMPDIR (scratch
# directory parent, /tmp), top_builddir (.), BLENDER_SLUICED_JSON (more
# keys for sluiced's config, e.g. '"read_cache_size": 0'). BLENDER_PERF=DIR: perf
# record -g of sluiced for the first half of each of its runs, into
# DIR/WORKLOAD.perf.data (its own cost then weighs on sluiced's figures).
set -u

top_builddir=${top_builddir:-.}
SECS=${BLENDER_SECS:-12}
SIZE=${BLENDER_SIZE:-1G}
SESSIONS=${BLENDER_SESSIONS:-4}
BLENDER=$top_builddir/tests/bench/blender
IQN=iqn.2024-01.org.sluice.bench:blender
INIT=iqn.2024-01.org.sluice.bench:initiator

for prog in "$top_builddir/sluiced" "$BLENDER"; do
	[ -x "$prog" ] || { echo "no $prog: build first" >&2; exit 1; }
done
for prog in tgtd tgtadm curl python3; do
	command -v "$prog" >/dev/null || { echo "$prog is not installed" >&2; exit 1; }
done
bytes=$(numfmt --from=iec "$SIZE") || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-blender-vs-tgt.XXXXXX") || exit 1
spid= tpid= cport=

# reap PID TENTHS: wait that long for PID to exit, then kill it.
reap() {
	for _ in $(seq "$2"); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

cleanup() {
	if [ -n "$spid" ]; then
		kill -TERM "$spid" 2>/dev/null
		reap "$spid" 100
	fi
	if [ -n "$tpid" ]; then
		# tgtd ignores SIGTERM; offline, then delete the system, is its exit
		tgtadm -C "$cport" --op update --mode sys --name State -v offline >/dev/null 2>&1
		tgtadm -C "$cport" --op delete --mode system >/dev/null 2>&1
		reap "$tpid" 50
		rm -f "/var/run/tgtd/socket.$cport" "/var/run/tgtd/socket.$cport.lock"
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- sluiced ---------------------------------------------------------------
hport=$(free_port)
sport=$(free_port)
# room for the fill and the runs' overwrites before the cleaner has to run
printf '{"pool_size": %d, "log_level": "warn"%s}\n' $((bytes * 4)) "${BLENDER_SLUICED_JSON:+, $BLENDER_SLUICED_JSON}" \
	>"$work/sluiced.json"
"$top_builddir/sluiced" --foreground --config "$work/sluiced.json" --data-dir "$work/sluice" \
	--http-listen "127.0.0.1:$hport" --iscsi-listen "127.0.0.1:$sport" >"$work/sluiced.log" 2>&1 &
spid=$!
api=http://127.0.0.1:$hport/api/v1
for _ in $(seq 600); do
	curl -s -o /dev/null "$api/health" && break
	kill -0 "$spid" 2>/dev/null || break
	sleep 0.1
done
auth="Authorization: Bearer $(cat "$work/sluice/api-token" 2>/dev/null)"
curl -sf -o /dev/null -H "$auth" -d "{\"name\": \"blend\", \"size\": $bytes}" "$api/volumes" &&
curl -sf -o /dev/null -H "$auth" \
	-d "{\"iqn\": \"$IQN\", \"luns\": [{\"lun\": 0, \"volume\": \"blend\"}], \"allow\": [\"*\"]}" \
	"$api/targets" || { echo "sluiced: no volume or target" >&2; tail "$work/sluiced.log" >&2; exit 1; }
surl=iscsi://127.0.0.1:$sport/$IQN/0

# ---- tgtd ------------------------------------------------------------------
tport=$(free_port)
cport=$((tport % 10000 + 20000))        # a control socket name of our own
truncate -s "$bytes" "$work/tgt.img"
mkdir -p /var/run/tgtd
tgtd -f -C "$cport" --iscsi "portal=127.0.0.1:$tport" >"$work/tgtd.log" 2>&1 &
tpid=$!
for _ in $(seq 100); do
	tgtadm -C "$cport" --op show --mode sys >/dev/null 2>&1 && break
	sleep 0.1
done
tgtadm -C "$cport" --lld iscsi --op new --mode target --tid 1 -T "$IQN" &&
tgtadm -C "$cport" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 \
	-b "$work/tgt.img" --bsoflags sync &&
tgtadm -C "$cport" --lld iscsi --op bind --mode target --tid 1 -I ALL ||
	{ echo "tgtd: no target" >&2; cat "$work/tgtd.log" >&2; exit 1; }
turl=iscsi://127.0.0.1:$tport/$IQN/1        # tgt's LUN 0 is its controller

cpu_ticks() {           # utime + stime of the whole process
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)

# run NAME TARGET PID URL ARGS...: one blender run; appends a line
# "NAME TARGET iops mib_s p99_us cpu_us_per_io errors cpu_pct" to
# $work/results.
run() {
	local name=$1 tgt=$2 pid=$3 url=$4 out c0 c1 t0 t1 rc line
	shift 4
	out=$work/$name.$tgt.out
	t0=$(date +%s.%N)
	c0=$(cpu_ticks "$pid")
	timeout $((SECS + 300)) "$BLENDER" --initiator "$INIT" --sessions "$SESSIONS" \
		--time "$SECS" "$@" "$url" >"$out" 2>&1 &
	local bpid=$!
	if [ -n "${BLENDER_PERF:-}" ] && [ "$tgt" = sluiced ]; then
		perf record -q -g -p "$pid" -o "$BLENDER_PERF/$name.perf.data" -- \
			sleep $((SECS / 2)) >/dev/null 2>&1
		echo "  sluiced profile: perf report --no-children -i $BLENDER_PERF/$name.perf.data"
	fi
	wait "$bpid"
	rc=$?
	c1=$(cpu_ticks "$pid")
	t1=$(date +%s.%N)
	line=$(grep '^result: phase=run' "$out")
	echo "  $tgt: $(grep '^run: [0-9]' "$out" | sed 's/^run: //') (exit $rc)"
	[ "$rc" = 0 ] || sed 's/^/    | /' "$out" | tail -5
	awk -v n="$name" -v t="$tgt" -v c=$((c1 - c0)) -v hz="$hz" -v rc="$rc" \
	    -v t0="$t0" -v t1="$t1" '{
		wall = t1 - t0
		for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		io = f["ops"] > 0 ? c / hz / f["ops"] * 1e6 : 0
		printf "%s %s %s %s %s %.1f %s %.0f\n", n, t, f["iops"], f["mib_s"], f["p99_us"], io,
		       f["errors"] + f["mismatches"] + (rc != 0), (wall > 0 ? c / hz / wall * 100 : 0)
	}' <<<"${line:-result: ops=0 iops=0 mib_s=0 p99_us=0 errors=1}" >>"$work/results"
}

both() {                # both NAME ARGS...: the same run on each target
	local name=$1
	shift
	echo "$name: $*"
	run "$name" sluiced "$spid" "$surl" "$@"
	run "$name" tgt "$tpid" "$turl" "$@"
}

echo "LUNs of $SIZE in $work; $SECS s a run, $SESSIONS sessions"
for t in sluiced:$surl tgt:$turl; do
	echo "fill ${t%%:*}: $("$BLENDER" --initiator "$INIT" --sessions "$SESSIONS" --fill \
		--vms 4 --qd 16 --bs 256k "${t#*:}" | sed -n 's/^run: \([0-9].*\)/\1/p')"
done
: >"$work/results"
both blend-w4k --vms 16 --qd 32 --bs 4k --pattern mix:50 --read-pct 0
both rand-r4k --vms 16 --qd 32 --bs 4k --pattern rand --read-pct 100
both seq-r128k --vms 4 --qd 16 --bs 128k --pattern seq --read-pct 100
both seq-w128k --vms 4 --qd 16 --bs 128k --pattern seq --read-pct 0

echo
awk '
	{ iops[$1, $2] = $3; mib[$1, $2] = $4; p99[$1, $2] = $5; cpu[$1, $2] = $6
	  err[$1, $2] = $7; pct[$1, $2] = $8; if (!seen[$1]++) order[++n] = $1 }
	END {
		goal["blend-w4k"] = 5; goal["rand-r4k"] = 1; goal["seq-r128k"] = 1; goal["seq-w128k"] = 1
		printf "%-10s %9s %9s %6s %5s %5s | %8s %8s | %8s %8s | %7s %7s %5s | %6s %6s\n",
		       "workload", "sl IOPS", "tgt IOPS", "ratio", "goal", "", "sl MiB/s",
		       "tgt MiB/s", "sl p99us", "tgt p99us", "sl cpu", "tgt cpu", "",
		       "sl cpu%", "tgt cpu%"
		for (i = 1; i <= n; i++) {
			w = order[i]
			r = iops[w, "tgt"] > 0 ? iops[w, "sluiced"] / iops[w, "tgt"] : 0
			v = err[w, "sluiced"] || err[w, "tgt"] ? "ERR" : r >= goal[w] ? "MEET" : "MISS"
			cv = cpu[w, "sluiced"] <= cpu[w, "tgt"] ? "MEET" : "MISS"
			printf "%-10s %9d %9d %5.2fx %4sx %5s | %8.1f %9.1f | %8d %9d | %7.1f %7.1f %5s | %6d %7d\n",
			       w, iops[w, "sluiced"], iops[w, "tgt"], r, ">=" goal[w], v,
			       mib[w, "sluiced"], mib[w, "tgt"], p99[w, "sluiced"], p99[w, "tgt"],
			       cpu[w, "sluiced"], cpu[w, "tgt"], cv, pct[w, "sluiced"], pct[w, "tgt"]
		}
		print "(cpu: target process CPU microseconds per I/O, goal sluiced <= tgt;"
		print " cpu%: its CPU time over the run in % of one core)"
	}' "$work/results"
