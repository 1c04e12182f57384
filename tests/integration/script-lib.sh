# tests/integration/script-lib.sh: what the scripts that start their own
# sluiced share, sourced after they set pass=0 fail=0: a scratch directory
# ($work) removed at exit with the daemon ($pid, if set) killed, and the
# check counters.

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
