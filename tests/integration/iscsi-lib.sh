# tests/integration/iscsi-lib.sh: what the iSCSI scripts share, sourced by
# them: start sluiced on a throwaway data dir with two portals (IPv4 and,
# when the host has it, IPv6) on ports the kernel picks, create volumes
# and targets, stop it. Readiness is polled, never slept for.
#
# Volumes and targets are written into the pool before sluiced starts, by
# tests/iscsi/iscsi-setup, exactly as the HTTP API stores them (key
# "target/<iqn>", see mgmt/mgmt.h), so these tests do not depend on the
# HTTP plane; tests of the API create targets through it.
#
# Knobs: SLUICE_TEST_TIMEOUT seconds per wait (default 60).

top_builddir=${top_builddir:-.}
SLUICED=${SLUICED:-$top_builddir/sluiced}
ISCSI_SETUP=${ISCSI_SETUP:-$top_builddir/tests/iscsi/iscsi-setup}
TENTHS=$(( ${SLUICE_TEST_TIMEOUT:-60} * 10 ))
IQN_PREFIX=iqn.2024-01.org.sluice.test
INIT1=iqn.2024-01.org.sluice.test:initiator1
INIT2=iqn.2024-01.org.sluice.test:initiator2

pass=0 fail=0 skip=0
pid= status= work= PORT1= PORT2= HOST2= HTTP_PORT=

. "$(dirname "${BASH_SOURCE[0]}")/script-lib.sh"   # counters, alive, reap_exit
show()    { sed 's/^/    | /' "$1" | tail -n "${2:-40}"; }

need_prog() {
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "$1 is not installed (setup.sh installs it): skipping"
		exit 77                         # automake: skipped
	fi
}

lib_init() {
	local prog
	for prog in "$SLUICED" "$ISCSI_SETUP"; do
		if [ ! -x "$prog" ]; then
			echo "$prog is not built; run make first (or set top_builddir)"
			exit 99
		fi
	done
	work=$(mktemp -d -t sluice-iscsi.XXXXXX) || exit 99
	trap lib_cleanup EXIT
	printf '{"pool_size": 4294967296, "segment_size": 1048576}\n' >"$work/sluiced.json"
}

lib_cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	[ -n "$work" ] && rm -rf "$work"
}

have_ipv6() {
	[ -z "${SLUICE_TEST_NO_IPV6:-}" ] && [ -e /proc/net/if_inet6 ] &&
		grep -q '^0\{31\}1 ' /proc/net/if_inet6
}

# daemon_start DATA_DIR LOG: sluiced with two portals; sets PORT1, PORT2,
# HOST2 ("127.0.0.1" or "[::1]") once it is ready. 1 if it is not.
daemon_start() {
	local dir=$1 log=$2 i second="127.0.0.1:0" http=127.0.0.1:0
	HOST2=127.0.0.1
	if have_ipv6; then
		second="[::1]:0"
		HOST2="[::1]"
	fi
	[ -n "$HTTP_PORT" ] && http=127.0.0.1:$HTTP_PORT
	: >"$log"
	"$SLUICED" --foreground --config "$work/sluiced.json" --data-dir "$dir" \
		--io-engine "${SLUICE_TEST_ENGINE:-threads}" --log-level debug \
		--iscsi-listen 127.0.0.1:0 --iscsi-listen "$second" \
		--http-listen "$http" >"$log" 2>&1 &
	pid=$!
	for ((i = 0; i < TENTHS; i++)); do
		if grep -q ' info: ready: ' "$log"; then
			PORT1=$(sed -n 's/.*iscsi: listening on 127\.0\.0\.1:\([0-9]*\), portal group 1$/\1/p' "$log")
			PORT2=$(sed -n 's/.*iscsi: listening on .*:\([0-9]*\), portal group 2$/\1/p' "$log")
			[ -n "$PORT1" ] && [ -n "$PORT2" ] && return 0
			return 1
		fi
		alive || return 1
		sleep 0.1
	done
	return 1
}

# daemon_stop WHAT LOG: SIGTERM, expect exit status 0 in time.
daemon_stop() {
	local what=$1 log=$2
	kill -TERM "$pid" 2>/dev/null
	if ! reap_exit; then
		not_ok "$what: sluiced did not exit after SIGTERM"
		show "$log"
		return 1
	fi
	if [ "$status" = 0 ]; then
		ok "$what: SIGTERM exits 0"
	else
		not_ok "$what: exit status $status after SIGTERM"
		show "$log"
	fi
}

# target_json IQN VOLUME ALLOW_JSON CHAP_JSON
target_json() {
	printf '{"iqn":"%s","luns":[{"lun":0,"volume":"%s"}],"allow":%s,"chap":%s}' \
		"$1" "$2" "$3" "$4"
}

# pool_setup DATA_DIR [vol NAME BYTES]... [target JSON]...: before start.
pool_setup() {
	local dir=$1
	shift
	mkdir -p "$dir"
	"$ISCSI_SETUP" "$dir/pool" 4294967296 "$@"
}

url() {         # url IQN [LUN [HOST [PORT]]]
	echo "iscsi://${3:-127.0.0.1}:${4:-$PORT1}/$1/${2:-0}"
}

summary() {
	[ "$skip" -gt 0 ] && echo "$skip skipped"
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}
