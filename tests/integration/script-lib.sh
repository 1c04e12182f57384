# tests/integration/script-lib.sh: what the scripts that start their own
# sluiced share, sourced after they set pass=0 fail=0 and TENTHS (how long a
# wait may last, in tenths of a second): a scratch directory ($work) removed
# at exit with the daemon ($pid, if set) killed, the check counters, and
# waiting for the daemon to exit.

# scratch NAME: $work is a fresh directory; exit removes it.
scratch() {
	work=$(mktemp -d -t "sluice-$1.XXXXXX") || exit 99
	trap cleanup EXIT
}

cleanup() {
	if [ -n "${pid:-}" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$work"
}

ok()      { pass=$((pass + 1)); echo "ok: $*"; }
not_ok()  { fail=$((fail + 1)); echo "FAIL: $*"; }
skipped() { skip=$((skip + 1)); echo "skip: $*"; }

# alive: is sluiced ($pid) running (a zombie is not)?
alive() {
	kill -0 "$pid" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

# reap_exit: waits up to $TENTHS for sluiced ($pid) to exit and puts its exit
# status in $status; if it is still running then, kills it (status
# "timeout") and returns 1. Clears $pid either way.
reap_exit() {
	local i
	for ((i = 0; i < TENTHS; i++)); do
		alive || break
		sleep 0.1
	done
	if alive; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		pid= status=timeout
		return 1
	fi
	wait "$pid"
	status=$?
	pid=
}

# free_port: a TCP port of 127.0.0.1 that was free a moment ago.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

# api_daemon_start CONFIG [SCHEME]: sluiced on data dir $data, logging to
# $log, its API on 127.0.0.1:$port (SCHEME http or https) and a portal on
# $iport; ready when GET /health answers, and $token is then the API's
# token. Not ready in time: a failed check and exit.
api_daemon_start() {
	local i
	"$SLUICED" --foreground --config "$1" --data-dir "$data" \
		--http-listen "127.0.0.1:$port" --iscsi-listen "127.0.0.1:$iport" \
		>>"$log" 2>&1 &
	pid=$!
	for ((i = 0; i < TENTHS; i++)); do
		if curl -s -k -o /dev/null "${2:-http}://127.0.0.1:$port/api/v1/health"; then
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
