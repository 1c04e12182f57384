#!/bin/bash
# tests/integration/daemon-smoke.sh: sluiced's life cycle on a throwaway
# data dir, with each I/O engine. The first start creates the pool, SIGTERM
# and SIGINT exit 0, a restart opens the same pool, sluice-fsck and
# `sluiced --check` find it clean. A file that is not a pool and a config
# with a bad key fail with a clear message and a plain non-zero exit status
# (not a crash), and the bad file is left untouched.
#
# Needs sluiced and sluice-fsck in $top_builddir (`make check` exports it;
# run by hand from the build tree it defaults to .). Readiness is polled,
# never slept for. Knobs: SLUICE_TEST_ENGINES="threads uring" (default),
# SLUICE_TEST_TIMEOUT seconds per wait (default 60, generous for ASan).
set -u

top_builddir=${top_builddir:-.}
SLUICED=${SLUICED:-$top_builddir/sluiced}
FSCK=${SLUICE_FSCK:-$top_builddir/sluice-fsck}
ENGINES=${SLUICE_TEST_ENGINES:-threads uring}
TENTHS=$(( ${SLUICE_TEST_TIMEOUT:-60} * 10 ))

for prog in "$SLUICED" "$FSCK"; do
	if [ ! -x "$prog" ]; then
		echo "$prog is not built; run make first (or set top_builddir)"
		exit 99                         # automake: hard error
	fi
done

pass=0 fail=0 skip=0
pid=
status=
. "$(dirname "$0")/script-lib.sh"
scratch smoke

show()   { sed 's/^/    | /' "$1"; }

# A zombie still answers kill -0, so look at its state too.

# daemon_start LOG ARGS...: sluiced --foreground ARGS in the background.
daemon_start() {
	local log=$1
	shift
	"$SLUICED" --foreground "$@" >"$log" 2>&1 &
	pid=$!
}

# wait_ready LOG POOL: until POOL exists and LOG says ready. Fails if
# sluiced exits first or the time runs out.
wait_ready() {
	local log=$1 pool=$2 i
	for ((i = 0; i < TENTHS; i++)); do
		if [ -f "$pool" ] && grep -q ' info: ready: ' "$log"; then
			return 0
		fi
		alive || return 1
		sleep 0.1
	done
	return 1
}


# stop SIGNAL WHAT LOG: send SIGNAL, expect exit status 0 in time.
stop() {
	local sig=$1 what=$2 log=$3
	kill "-$sig" "$pid"
	if reap_exit && [ "$status" = 0 ]; then
		ok "$what: $sig exits 0"
	else
		not_ok "$what: $sig gave exit status $status, want 0"
		show "$log"
	fi
}

# expect_exit WANT WHAT LOG PATTERN: the last command's $status is WANT
# and LOG matches PATTERN (the clear message).
expect_exit() {
	local want=$1 what=$2 log=$3 pattern=$4
	if [ "$status" = "$want" ] && grep -qE -- "$pattern" "$log"; then
		ok "$what: exit $want, says /$pattern/"
	else
		not_ok "$what: exit status $status (want $want), message /$pattern/ expected"
		show "$log"
	fi
}

engine_label() {
	case $1 in
	uring) echo io_uring ;;
	*)     echo "$1" ;;
	esac
}

# io_uring may be off (old kernel, seccomp, kernel.io_uring_disabled).
uring_unavailable() {
	grep -qE 'Function not implemented|Operation not permitted|io_uring.*(unavailable|disabled)' "$1"
}

# start_ready ENGINE DIR LOG WHAT: start and wait; 1 (reported) if not ready.
start_ready() {
	local engine=$1 dir=$2 log=$3 what=$4
	daemon_start "$log" --config "$work/small.json" --data-dir "$dir" \
		--io-engine "$engine"
	if wait_ready "$log" "$dir/pool"; then
		return 0
	fi
	if alive; then
		kill -KILL "$pid"
	fi
	wait "$pid" 2>/dev/null
	pid=
	if [ "$engine" = uring ] && uring_unavailable "$log"; then
		skipped "$engine: io_uring is not available here"
		return 2
	fi
	not_ok "$what: not ready"
	show "$log"
	return 1
}

# The life cycle on one engine.
engine_test() {
	local engine=$1 dir=$work/data-$1 log ino label
	label=$(engine_label "$engine")

	log=$work/$engine-first.log
	start_ready "$engine" "$dir" "$log" "$engine: first start" || return
	ok "$engine: first start created the pool and is ready"
	if grep -q "ready: .*engine $label," "$log"; then
		ok "$engine: ready line names engine $label"
	else
		not_ok "$engine: ready line does not name engine $label"
		show "$log"
	fi
	ino=$(stat -c %i "$dir/pool")
	stop TERM "$engine: first run" "$log"

	log=$work/$engine-restart.log
	start_ready "$engine" "$dir" "$log" "$engine: restart" || return
	if grep -q 'opening pool' "$log" && [ "$(stat -c %i "$dir/pool")" = "$ino" ]; then
		ok "$engine: restart opened the existing pool"
	else
		not_ok "$engine: restart did not open the existing pool"
		show "$log"
	fi
	stop INT "$engine: restart" "$log"

	log=$work/$engine-fsck.log
	"$FSCK" --data-dir "$dir" >"$log" 2>&1
	status=$?
	expect_exit 0 "$engine: sluice-fsck --data-dir" "$log" ': clean$'
	"$FSCK" "$dir/pool" >"$log" 2>&1
	status=$?
	expect_exit 0 "$engine: sluice-fsck POOLFILE" "$log" 'replayed records [0-9]+'
	log=$work/$engine-check.log
	"$SLUICED" --check --data-dir "$dir" --io-engine "$engine" >"$log" 2>&1
	status=$?
	expect_exit 0 "$engine: sluiced --check" "$log" ': clean$'
}

# A file that holds no pool: a clear error, exit 1 from sluiced and 2 from
# sluice-fsck (not a signal), and not one byte of it changed.
garbage_test() {
	local dir=$work/garbage log=$work/garbage.log before
	mkdir -p "$dir"
	yes 'not a sluice pool' | head -c 1048576 >"$dir/pool"
	before=$(cksum <"$dir/pool")

	daemon_start "$log" --config "$work/small.json" --data-dir "$dir" \
		--io-engine threads
	reap_exit
	expect_exit 1 "garbage pool: sluiced" "$log" 'error: cannot open pool .*pool'
	"$FSCK" --data-dir "$dir" >"$log" 2>&1
	status=$?
	expect_exit 2 "garbage pool: sluice-fsck" "$log" 'error: cannot open pool'
	if [ "$(cksum <"$dir/pool")" = "$before" ]; then
		ok "garbage pool: file left untouched"
	else
		not_ok "garbage pool: file was modified"
	fi
	"$FSCK" "$work/no-such-pool" >"$log" 2>&1
	status=$?
	expect_exit 2 "missing pool: sluice-fsck" "$log" 'No such file'
}

# Bad configuration: exit 2 with a message naming the key; nothing created.
config_test() {
	local log=$work/config.log dir=$work/never
	printf '{"pool_size": 268435456, "no_such_key": 1}\n' >"$work/unknown.json"
	"$SLUICED" --foreground --config "$work/unknown.json" --data-dir "$dir" \
		>"$log" 2>&1
	status=$?
	expect_exit 2 "unknown config key" "$log" 'unknown key "no_such_key"'

	printf '{"pool_size": "big"}\n' >"$work/type.json"
	"$SLUICED" --foreground --config "$work/type.json" --data-dir "$dir" \
		>"$log" 2>&1
	status=$?
	expect_exit 2 "wrong config type" "$log" '"pool_size" must be an integer'

	printf '{"read_cache_size": -1}\n' >"$work/cache.json"
	"$SLUICED" --foreground --config "$work/cache.json" --data-dir "$dir" \
		>"$log" 2>&1
	status=$?
	expect_exit 2 "negative read_cache_size" "$log" '"read_cache_size": -1 is out of range'

	"$SLUICED" --foreground --data-dir "$dir" --iscsi-listen '::1:3260' \
		>"$log" 2>&1
	status=$?
	expect_exit 2 "bad --iscsi-listen" "$log" 'HOST:PORT'
	if [ ! -e "$dir" ]; then
		ok "bad configuration: no data dir created"
	else
		not_ok "bad configuration: data dir $dir was created"
	fi
}

# 256 MiB of 1 MiB segments: sparse, so cheap on any machine.
printf '{"pool_size": 268435456, "segment_size": 1048576, "log_level": "debug"}\n' \
	>"$work/small.json"

for engine in $ENGINES; do
	engine_test "$engine"
done
garbage_test
config_test

if [ "$skip" -gt 0 ]; then
	echo "$skip skipped"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
