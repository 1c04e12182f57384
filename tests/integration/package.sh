#!/bin/bash
# tests/integration/package.sh: the Debian package, built the Debian way by
# packaging/build-deb.sh (make distdir from this build tree, then
# dpkg-buildpackage with debhelper in a scratch source tree), then
# installed, upgraded, removed and purged with dpkg --root in a scratch
# root, never on this machine:
#
#  - control data: Depends from dpkg-shlibdeps, the conffile, maintainer
#    scripts from dh_installsystemd, a postrm that never deletes the pool;
#    contents: programs, man pages, config, unit, data dir, copyright;
#  - the installed sluiced, run on the packaged config with the installed
#    data dir and a NOTIFY_SOCKET we listen on (python3): READY=1 and a
#    STATUS= line arrive, WATCHDOG=1 pings when WATCHDOG_USEC asks, the
#    API answers, the installed sluicectl makes a volume and a target,
#    an initiator logs in (iscsi-inq), and SIGTERM sends STOPPING=1;
#  - `systemd-analyze verify` accepts the installed unit;
#  - an upgrade (same package with a bumped version) keeps the pool, the
#    API token and an edited config, and the upgraded daemon still serves
#    the volume; remove keeps the pool and the config; purge removes the
#    config and keeps the pool, which sluice-fsck then finds clean.
#
# The package is built with dpkg-buildflags (hardening, -O2 -g) whatever
# this build tree's flags: under an --enable-sanitizers tree it is still a
# plain build, and the sanitized binaries only run sluice-fsck at the end.
#
# dpkg --root runs maintainer scripts chrooted into the scratch root, so
# it needs root (or an unprivileged user namespace, unshare -r); without
# either, the dpkg steps are skipped with a line saying so and the package
# is only extracted (dpkg-deb -x). Skips (77) without dpkg-buildpackage,
# debhelper, curl or python3. Readiness is polled, never slept for; every
# process started here is killed at the end. SLUICE_TEST_TIMEOUT seconds
# per wait (default 60).
set -u

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
TENTHS=$(( ${SLUICE_TEST_TIMEOUT:-60} * 10 ))
IQN=iqn.2024-01.org.sluice.test:pkg
INIT=iqn.2024-01.org.sluice.test:initiator1

for tool in dpkg-buildpackage dh curl python3; do
	if ! command -v "$tool" >/dev/null; then
		echo "skip: $tool is not installed (setup.sh installs it)"
		exit 77
	fi
done
if [ ! -x "$top_builddir/sluice-fsck" ]; then
	echo "$top_builddir/sluice-fsck is not built; run make first (or set top_builddir)"
	exit 99
fi

pass=0 fail=0 skip=0
pid= lpid=
. "$(dirname "$0")/script-lib.sh"
scratch pkg
trap 'if [ -n "$lpid" ]; then kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null; fi; cleanup' EXIT
root=$work/root
data=$root/var/lib/sluice
log=$work/sluiced.log
start=$SECONDS

check()   { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }
show()    { sed 's/^/    | /' "$1" | tail -n "${2:-30}"; }
summary() {
	[ "$skip" -gt 0 ] && echo "$skip skipped"
	echo "$pass passed, $fail failed ($((SECONDS - start)) s)"
	[ "$fail" -eq 0 ]
}
bail()    { summary; exit 1; }



# wait_for CMD: poll CMD every 0.1 s while the daemon lives; 0 once it holds
# (a last look after the daemon is gone: CMD may be about its exit).
wait_for() {
	local i
	for ((i = 0; i < TENTHS; i++)); do
		eval "$1" && return 0
		alive || { eval "$1"; return; }
		sleep 0.1
	done
	return 1
}

# ---- build ----------------------------------------------------------------
if ! "$top_srcdir/packaging/build-deb.sh" -b "$top_builddir" -o "$work/out" \
		>"$work/build.out" 2>"$work/build.err"; then
	not_ok "build-deb.sh (dpkg-buildpackage) failed"
	show "$work/build.err"
	bail
fi
deb=$(tail -n 1 "$work/build.out")
check "dpkg-buildpackage made $(basename "$deb") in $((SECONDS - start)) s" '[ -f "$deb" ]' || bail
check "and the sluice-dbgsym package" 'ls "$work/out"/sluice-dbgsym_*.*deb >/dev/null 2>&1'

# ---- control data ---------------------------------------------------------
dpkg-deb -e "$deb" "$work/ctl"
check "control: Package sluice, Architecture $(dpkg --print-architecture)" \
	'dpkg-deb -f "$deb" Package | grep -qx sluice &&
	 dpkg-deb -f "$deb" Architecture | grep -qx "$(dpkg --print-architecture)"'
check "control: Depends (dpkg-shlibdeps) names libjansson, libmicrohttpd, libsystemd" \
	'd=$(dpkg-deb -f "$deb" Depends); case $d in *libjansson*libmicrohttpd*libsystemd*) ;; *) false ;; esac'
check "conffiles: /etc/sluice/sluiced.json, and only it" \
	'[ "$(cat "$work/ctl/conffiles")" = /etc/sluice/sluiced.json ]'
check "maintainer scripts parse (sh -n)" \
	'for s in postinst prerm postrm; do sh -n "$work/ctl/$s" || exit 1; done'
check "postinst enables and starts sluiced.service (dh_installsystemd)" \
	'grep -q "deb-systemd-helper enable .sluiced.service" "$work/ctl/postinst" &&
	 grep -q "deb-systemd-invoke .* .sluiced.service" "$work/ctl/postinst"'
check "no maintainer script deletes the data dir, even on purge" \
	'! grep -E "rm[[:space:]]+-[a-zA-Z]*[rR][^;|&]*/var/lib" "$work/ctl/postinst" "$work/ctl/prerm" "$work/ctl/postrm"'

# ---- contents -------------------------------------------------------------
dpkg-deb -c "$deb" >"$work/contents"
for f in ./usr/sbin/sluiced ./usr/sbin/sluice-fsck ./usr/bin/sluicectl \
	./usr/share/man/man8/sluiced.8.gz ./usr/share/man/man8/sluice-fsck.8.gz \
	./usr/share/man/man1/sluicectl.1.gz ./etc/sluice/sluiced.json \
	./lib/systemd/system/sluiced.service ./var/lib/sluice/ \
	./usr/share/doc/sluice/copyright; do
	check "contents: $f" 'awk "{print \$6}" "$work/contents" | grep -qxF "$f"'
done
check "contents: README.Debian (dh_compress may gzip it)" \
	'awk "{print \$6}" "$work/contents" | grep -qxE "\./usr/share/doc/sluice/README\.Debian(\.gz)?"'
check "contents: every file owned by root/root" \
	'! awk "{print \$2}" "$work/contents" | grep -vqx root/root'
check "contents: programs are -rwxr-xr-x, /var/lib/sluice is drwxr-x---" \
	'[ "$(grep -cE "^-rwxr-xr-x .* \./usr/s?bin/[^/]+$" "$work/contents")" = 3 ] &&
	 grep -qE "^drwxr-x--- .* \./var/lib/sluice/$" "$work/contents"'

# ---- install into the scratch root -----------------------------------------
# dpkg --root: a dpkg database in the root, and what the maintainer scripts
# run there (sh and a few tools; deb-systemd-helper and systemctl are absent,
# which the debhelper snippets tolerate, as in a chroot without systemd).
asroot=
if [ "$(id -u)" != 0 ]; then
	asroot="unshare -r"
	$asroot true 2>/dev/null || asroot=none
fi
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/bin" "$root/dev"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
for b in sh rm rmdir ls; do
	f=$(command -v "$b")
	cp -L "$f" "$root/bin/$b"
	for l in $(ldd "$f" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$l")"
		cp -Ln "$l" "$root$l"
	done
done
[ "$asroot" = "" ] && mknod -m 0666 "$root/dev/null" c 1 3 2>/dev/null

# xdpkg ARGS...: dpkg on the scratch root; its output in $work/dpkg.out
xdpkg() {
	$asroot dpkg --root="$root" --force-depends --force-confold "$@" >"$work/dpkg.out" 2>&1
}

if [ "$asroot" = none ]; then
	skipped "dpkg --root needs root or unshare -r: package only extracted"
	dpkg-deb -x "$deb" "$root"
else
	check "dpkg --root -i installs it (postinst runs, chrooted)" \
		'xdpkg -i "$deb" && grep -q "Setting up sluice" "$work/dpkg.out"' || show "$work/dpkg.out"
	check "dpkg -s: sluice is installed" \
		'$asroot dpkg --root="$root" -s sluice 2>/dev/null | grep -qx "Status: install ok installed"'
fi
SLUICED=$root/usr/sbin/sluiced
SLUICECTL=$root/usr/bin/sluicectl
version=$(sed -n "s/^PACKAGE_VERSION = //p" "$top_builddir/Makefile")
check "installed sluiced --version says $version" \
	'"$SLUICED" --version | grep -qx "sluiced $version"'
if command -v man >/dev/null; then
	for m in man8/sluiced.8.gz man8/sluice-fsck.8.gz man1/sluicectl.1.gz; do
		check "man page $m renders without warnings" \
			'out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$root/usr/share/man/$m" 2>&1 >/dev/null) && [ -z "$out" ]'
	done
else
	skipped "man is not installed: man pages not rendered"
fi

# ---- the installed daemon, as systemd would run it ------------------------
# listen NAME: a unix datagram socket $work/NAME.sock; each message is
# appended to $work/NAME.msgs. Stops after the test's time limit at most.
listen() {
	if [ -n "$lpid" ]; then
		kill "$lpid" 2>/dev/null
		wait "$lpid" 2>/dev/null
	fi
	python3 - "$work/$1.sock" "$work/$1.msgs" "${SLUICE_TEST_TIMEOUT:-60}" <<-'EOF' &
	import socket, sys, time
	s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
	s.bind(sys.argv[1])
	s.settimeout(0.2)
	end = time.time() + 3 * float(sys.argv[3])
	with open(sys.argv[2], "a", buffering=1) as out:
	    while time.time() < end:
	        try:
	            m = s.recv(4096)
	        except socket.timeout:
	            continue
	        out.write(m.decode(errors="replace") + "\n")
	EOF
	lpid=$!
	local i
	for ((i = 0; i < TENTHS; i++)); do
		[ -S "$work/$1.sock" ] && return 0
		sleep 0.1
	done
	return 1
}

# run_installed NAME [PREFIX...]: the installed sluiced on the packaged
# config and the installed data dir, listeners moved to loopback and free
# ports by flags ($iscsi_port, 0 unless set), run through PREFIX.
run_installed() {
	local name=$1
	shift
	port=$(free_port)
	NOTIFY_SOCKET=$work/$name.sock WATCHDOG_USEC=400000 \
		"$@" "$SLUICED" --foreground --config "$root/etc/sluice/sluiced.json" \
		--data-dir "$data" --iscsi-listen "127.0.0.1:${iscsi_port:-0}" \
		--http-listen "127.0.0.1:$port" --io-engine threads >"$log" 2>&1 &
	pid=$!
}

# The unit's capabilities, and only those: the bounding set its
# CapabilityBoundingSet= names (CAP_NET_BIND_SERVICE), under which the pool
# must open and a port below 1024 listen. Needs root and setpriv.
unit=$root/lib/systemd/system/sluiced.service
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z' |
	sed 's/cap_//g; s/^/+/; s/[[:space:]]\{1,\}/,+/g')
confine=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && [ -n "$caps" ]; then
	confine=(setpriv "--bounding-set=-all,$caps" --inh-caps=-all --no-new-privs)
	iscsi_port=$(python3 -c '
import socket
for p in range(1023, 600, -1):
    try:
        socket.socket().bind(("127.0.0.1", p))
        print(p)
        break
    except OSError:
        pass')
fi

# stop_installed NAME: SIGTERM, STOPPING=1, exit 0
stop_installed() {
	local st msgs=$work/$1.msgs
	kill -TERM "$pid"
	if ! wait_for '! alive'; then
		not_ok "$1: sluiced exits on SIGTERM"
		return
	fi
	wait "$pid"
	st=$?
	pid=
	check "$1: SIGTERM sends STOPPING=1, then sluiced exits 0" \
		'grep -qx "STOPPING=1" "$msgs" && [ "$st" = 0 ]' || show "$log"
}

ready() { grep -qx "READY=1" "$work/$1.msgs" 2>/dev/null; }

listen notify || { not_ok "notify socket listener"; bail; }
run_installed notify "${confine[@]}"
if ! wait_for 'ready notify'; then
	not_ok "installed sluiced sends READY=1 on NOTIFY_SOCKET"
	show "$log"
	show "$work/notify.msgs"
	bail
fi
ok "installed sluiced sends READY=1 on NOTIFY_SOCKET"
# READY=1 promises the API and the portals listen: no polling from here
check "once READY=1: GET /api/v1/health answers 200 at once" \
	'[ "$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$port/api/v1/health")" = 200 ]'
iport=$(sed -n 's/.*iscsi: listening on 127\.0\.0\.1:\([0-9]*\), portal group 1$/\1/p' "$log")
if [ ${#confine[@]} -gt 0 ]; then
	check "with the unit's capabilities only ($caps): pool open, iSCSI on port $iscsi_port" \
		'[ "$iport" = "$iscsi_port" ]'
else
	skipped "not root or no setpriv: not run with the unit's capability set"
fi
check "STATUS= says what it serves (\"serving 0 targets, 0 volumes on 1 portal\")" \
	'grep -qx "STATUS=serving 0 targets, 0 volumes on 1 portal" "$work/notify.msgs"' ||
	show "$work/notify.msgs"
check "WATCHDOG_USEC=400000: WATCHDOG=1 pings arrive" \
	'wait_for "grep -qx WATCHDOG=1 \"$work/notify.msgs\""'

ctl() { "$SLUICECTL" --url "http://127.0.0.1:$port" --data-dir "$data" "$@"; }
check "installed sluicectl: volume create and target create" \
	'ctl volume create pkgvol 16M >"$work/ctl.out" 2>&1 &&
	 ctl target create "$IQN" --lun 0=pkgvol --allow "$INIT" >>"$work/ctl.out" 2>&1' ||
	show "$work/ctl.out"
check "STATUS= follows: \"serving 1 target, 1 volume on 1 portal\" within 10 s" \
	'for ((i = 0; i < 100; i++)); do
		grep -qx "STATUS=serving 1 target, 1 volume on 1 portal" "$work/notify.msgs" && break
		sleep 0.1
	 done; [ "$i" -lt 100 ]'
if command -v iscsi-inq >/dev/null && [ -n "$iport" ]; then
	check "iSCSI login and INQUIRY on the installed daemon (iscsi-inq)" \
		'timeout 20 iscsi-inq -i "$INIT" "iscsi://127.0.0.1:$iport/$IQN/0" >"$work/inq.out" 2>&1' ||
		show "$work/inq.out"
else
	skipped "iscsi-inq (libiscsi-bin) is not installed: no iSCSI login"
fi
stop_installed notify

# ---- the unit -------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
	# verify wants ExecStart's binary to exist: point it at the installed one
	mkdir -p "$work/unit"
	sed "s|/usr/sbin/sluiced|$SLUICED|" "$unit" >"$work/unit/sluiced.service"
	check "systemd-analyze verify accepts the installed sluiced.service" \
		'SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$work/unit/sluiced.service" >"$work/verify.out" 2>&1 &&
		 ! grep -i "sluiced.service" "$work/verify.out"' ||
		show "$work/verify.out"
	# the hardening stays: exposure 3.5 ("OK") when this was written
	check "systemd-analyze security: exposure of the unit at most 4.0" \
		'systemd-analyze security --offline=yes --threshold=40 --no-pager \
			"$work/unit/sluiced.service" >"$work/security.out" 2>&1' ||
		show "$work/security.out" 5
else
	skipped "systemd-analyze is not installed: unit not verified"
fi
check "unit: Type=notify, WatchdogSec, Restart=on-failure, ProtectSystem=strict, ReadWritePaths=/var/lib/sluice" \
	'grep -qx "Type=notify" "$unit" && grep -q "^WatchdogSec=" "$unit" &&
	 grep -qx "Restart=on-failure" "$unit" && grep -qx "ProtectSystem=strict" "$unit" &&
	 grep -qx "ReadWritePaths=/var/lib/sluice" "$unit"'

# ---- upgrade, remove, purge ------------------------------------------------
if [ "$asroot" = none ]; then
	skipped "dpkg --root unavailable: upgrade, remove and purge not tried"
	summary
	exit
fi
pool_id() { stat -c '%i %s' "$data/pool" 2>/dev/null; md5sum <"$data/api-token" 2>/dev/null; }
before=$(pool_id)
check "the pool and the API token are in the installed data dir" \
	'[ -f "$data/pool" ] && [ -s "$data/api-token" ]'
# an administrator's edit, which the upgrade must keep
sed -i 's/"checkpoint_interval": 30/"checkpoint_interval": 20/' "$root/etc/sluice/sluiced.json"

# the same package with a bumped version: what an upgrade looks like to dpkg
dpkg-deb -R "$deb" "$work/bump"
sed -i 's/^Version: .*/&+test1/' "$work/bump/DEBIAN/control"
newver=$(sed -n 's/^Version: //p' "$work/bump/DEBIAN/control")
dpkg-deb --root-owner-group -b "$work/bump" "$work/bumped.deb" >/dev/null
check "upgrade to $newver with dpkg --root -i" \
	'xdpkg -i "$work/bumped.deb" && grep -q "Unpacking sluice ($newver) over" "$work/dpkg.out"' ||
	show "$work/dpkg.out"
check "upgrade keeps the pool file and the API token" '[ "$(pool_id)" = "$before" ]'
check "upgrade keeps the edited config" \
	'grep -q "\"checkpoint_interval\": 20" "$root/etc/sluice/sluiced.json"'
check "reinstalling the same version keeps the pool" \
	'xdpkg -i "$work/bumped.deb" && [ "$(pool_id)" = "$before" ]' || show "$work/dpkg.out"

listen upgraded || not_ok "second notify listener"
run_installed upgraded
if wait_for 'ready upgraded'; then
	ok "upgraded sluiced reopens the pool and sends READY=1"
	check "upgraded sluiced still serves volume pkgvol and target $IQN" \
		'ctl volume show pkgvol >"$work/ctl.out" 2>&1 && ctl target show "$IQN" >>"$work/ctl.out" 2>&1' ||
		show "$work/ctl.out"
	stop_installed upgraded
else
	not_ok "upgraded sluiced reopens the pool and sends READY=1"
	show "$log"
fi
before=$(pool_id)

check "dpkg --root -r removes the programs" \
	'xdpkg -r sluice && [ ! -e "$SLUICED" ] && [ ! -e "$unit" ]' || show "$work/dpkg.out"
check "remove keeps the pool, the API token and the config" \
	'[ "$(pool_id)" = "$before" ] && [ -f "$root/etc/sluice/sluiced.json" ]'
check "dpkg --root -P purges the config, says it kept the pool" \
	'xdpkg -P sluice && [ ! -e "$root/etc/sluice" ] &&
	 grep -q "kept /var/lib/sluice" "$work/dpkg.out"' || show "$work/dpkg.out"
check "purge keeps the pool and the API token" '[ "$(pool_id)" = "$before" ]'
check "sluice-fsck finds the kept pool clean, with its volume" \
	'"$top_builddir/sluice-fsck" --data-dir "$data" >"$work/fsck.out" 2>&1 &&
	 grep -q pkgvol "$work/fsck.out"' || show "$work/fsck.out"

summary
