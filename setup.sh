#!/bin/bash
# setup.sh: build and run sluice on a fresh Debian 12 machine, as root.
#
#   ./setup.sh                      install dependencies, build in build/
#   ./setup.sh run [ARGS...]        ... then exec build/sluiced --foreground ARGS
#                                   (data in ./sluice-data, see README.md)
#   ./setup.sh test                 ... then make check in build/, again in
#                                   build-asan/ (ASan + UBSan), and make
#                                   fuzz-run in build-fuzz/ once fuzz targets
#                                   exist; exits non-zero if anything failed
#
# Safe to re-run: installed packages are not fetched again, each tree is
# configured once (again when its options change) and rebuilt incrementally.
# Every tree is a VPATH build beside the sources, because automake refuses
# a VPATH tree once the source tree itself has been configured.
# JOBS=N sets make's parallelism (default 2).
set -euo pipefail

cd "$(dirname "$0")"
JOBS=${JOBS:-2}

PACKAGES=(
	# build
	build-essential autoconf automake libtool pkg-config
	libev-dev libjansson-dev libcmocka-dev liburing-dev libisal-dev nettle-dev
	libsystemd-dev
	# sanitizer and fuzzer trees, benchmarks, HTTP tests
	clang libclang-rt-14-dev fio curl jq openssl python3-yaml
	# the HTTP API and sluicectl
	libmicrohttpd-dev libcurl4-openssl-dev
	# the Debian package (packaging/build-deb.sh and its test)
	dpkg-dev debhelper
	# later issues: iSCSI clients and the reference target
	libiscsi-dev libiscsi-bin qemu-utils qemu-block-extra tgt
)

say() { printf '\n== %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
	exit "${1:-0}"
}

deps_missing() {
	local p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null |
			grep -qx installed || echo "$p"
	done
}

deps_install() {
	local -a missing
	local sudo=
	mapfile -t missing < <(deps_missing)
	if [ "${#missing[@]}" = 0 ]; then
		say "dependencies: all installed"
		return
	fi
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null ||
			die "run as root to install: ${missing[*]}"
		sudo=sudo
	fi
	say "installing: ${missing[*]}"
	$sudo apt-get update
	$sudo env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "${missing[@]}"
	# The tgt package starts tgtd, which would hold the iSCSI port 3260
	# that sluiced uses; a comparison run starts tgtd itself when it needs it.
	if printf '%s\n' "${missing[@]}" | grep -qx tgt &&
	   command -v systemctl >/dev/null &&
	   systemctl is-enabled --quiet tgt 2>/dev/null; then
		$sudo systemctl disable --now tgt || true
	fi
}

autotools_run() {
	if [ -f config.status ]; then
		die "the source tree is configured in place; run 'make distclean' here first"
	fi
	if [ ! -x configure ] || [ configure.ac -nt configure ] ||
	   [ m4/sluice.m4 -nt configure ]; then
		say "autoreconf -fi"
		autoreconf -fi
	fi
}

# tree_configure DIR [CONFIGURE ARGS...]: configure DIR unless it already is
# with the same arguments.
tree_configure() {
	local dir=$1
	shift
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ] || [ "$(cat "$dir/.setup-args" 2>/dev/null)" != "$*" ]; then
		say "configure $dir: $*"
		(cd "$dir" && ../configure "$@")
		printf '%s\n' "$*" >"$dir/.setup-args"
	fi
}

tree_build() {
	say "make -j$JOBS in $1"
	make -C "$1" -j"$JOBS"
}

# tree_check DIR: make check, then its summary; the failed tests' logs too.
tree_check() {
	local dir=$1 rc=0
	say "make -j$JOBS check in $dir"
	make -C "$dir" -j"$JOBS" check || rc=$?
	if [ "$rc" != 0 ] && [ -f "$dir/test-suite.log" ]; then
		say "$dir/test-suite.log"
		cat "$dir/test-suite.log"
	fi
	say "$dir: test summary"
	make -C "$dir" --no-print-directory -s check-summary || true
	return "$rc"
}

# cc_works CC FLAGS...: CC builds and runs a program with FLAGS.
cc_works() {
	local cc=$1 tmp rc=0
	shift
	command -v "$cc" >/dev/null || return 1
	tmp=$(mktemp -d)
	printf 'int main(void) { return 0; }\n' >"$tmp/t.c"
	{ "$cc" "$@" -o "$tmp/t" "$tmp/t.c" && "$tmp/t"; } >/dev/null 2>&1 || rc=1
	rm -rf "$tmp"
	return "$rc"
}

RESULTS=()
result() { RESULTS+=("$(printf '%-11s %s' "$1" "$2")"); }

test_main() {
	local t=$SECONDS
	if tree_check build; then
		result build "PASS ($((SECONDS - t)) s)"
	else
		result build "FAIL"
	fi
}

test_asan() {
	local cc t=$SECONDS
	for cc in gcc clang; do
		cc_works "$cc" -fsanitize=address,undefined && break
		cc=
	done
	if [ -z "$cc" ]; then
		result build-asan "FAIL (neither gcc nor clang links -fsanitize=address,undefined)"
		return
	fi
	tree_configure build-asan CC="$cc" --enable-sanitizers
	if tree_check build-asan; then
		result build-asan "PASS with $cc ($((SECONDS - t)) s)"
	else
		result build-asan "FAIL with $cc"
	fi
}

# The hook for fuzzing: runs `make fuzz-run` once tests/local.mk defines it.
test_fuzz() {
	local t=$SECONDS
	if ! ./configure --help | grep -q -- '--enable-fuzzer'; then
		result build-fuzz "skipped (configure has no --enable-fuzzer)"
		return
	fi
	if ! grep -qE '^(@[A-Z_]+@)?fuzz-run:' Makefile.in; then
		result build-fuzz "skipped (no fuzz-run target yet)"
		return
	fi
	if ! cc_works clang -fsanitize=fuzzer-no-link,address,undefined; then
		result build-fuzz "FAIL (clang cannot build fuzz targets)"
		return
	fi
	tree_configure build-fuzz CC=clang --enable-fuzzer --enable-sanitizers
	say "make fuzz-run in build-fuzz"
	if make -C build-fuzz -j"$JOBS" fuzz-run; then
		result build-fuzz "PASS ($((SECONDS - t)) s)"
	else
		result build-fuzz "FAIL"
	fi
}

mode=${1:-build}
[ $# -gt 0 ] && shift
case $mode in
build|run|test) ;;
-h|--help|help) usage 0 ;;
*) usage 2 >&2 ;;
esac

deps_install
autotools_run
tree_configure build
tree_build build

case $mode in
run)
	say "build/sluiced --foreground $*"
	exec build/sluiced --foreground "$@"
	;;
test)
	test_main
	test_asan
	test_fuzz
	say "summary"
	printf '%s\n' "${RESULTS[@]}"
	if printf '%s\n' "${RESULTS[@]}" | grep -q ' FAIL'; then
		exit 1
	fi
	;;
esac
