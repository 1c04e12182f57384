#!/bin/bash
# tests/integration/package.sh: the Debian package, built from this build
# tree by packaging/build-deb.sh into a scratch dir. Its control data
# (Depends, conffiles, maintainer scripts that never delete the pool), its
# contents (dpkg-deb -c: programs, man pages, config, unit, data dir, all
# root's), then what it installs, extracted with dpkg-deb -x into a scratch
# root: the packaged config passes the daemon's strict parser, the extracted
# sluiced starts on it (data dir and loopback ports overridden by flags),
# answers GET /api/v1/health, takes a volume and target from the extracted
# sluicectl, and logs an initiator in (iscsi-inq, when libiscsi-bin is
# there); the man pages render; `systemd-analyze verify` accepts the unit
# (when systemd-analyze is there). No root needed, nothing is installed.
#
# Skips (77) without dpkg-deb or curl. Readiness is polled, never slept
# for; the daemon is always killed at the end. SLUICE_TEST_TIMEOUT seconds
# per wait (default 60).
set -u

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
TENTHS=$(( ${SLUICE_TEST_TIMEOUT:-60} * 10 ))
IQN=iqn.2024-01.org.sluice.test:pkg
INIT=iqn.2024-01.org.sluice.test:initiator1

for tool in dpkg-deb curl; do
	if ! command -v "$tool" >/dev/null; then
		echo "skip: $tool is not installed"
		exit 77
	fi
done
if [ ! -x "$top_builddir/sluiced" ]; then
	echo "$top_builddir/sluiced is not built; run make first (or set top_builddir)"
	exit 99
fi

pass=0 fail=0 skip=0
pid=
. "$(dirname "$0")/script-lib.sh"
scratch pkg
root=$work/root
log=$work/sluiced.log

check()   { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }
show()    { sed 's/^/    | /' "$1" | tail -n "${2:-30}"; }
summary() {
	[ "$skip" -gt 0 ] && echo "$skip skipped"
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

alive() {
	kill -0 "$pid" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

# ---- build ----------------------------------------------------------------
if ! "$top_srcdir/packaging/build-deb.sh" -b "$top_builddir" -o "$work/out" \
		>"$work/build.out" 2>"$work/build.err"; then
	not_ok "build-deb.sh failed"
	show "$work/build.err"
	summary
	exit 1
fi
deb=$(tail -n 1 "$work/build.out")
check "build-deb.sh made $(basename "$deb")" '[ -f "$deb" ]' || { summary; exit 1; }

# ---- control data ---------------------------------------------------------
dpkg-deb -e "$deb" "$work/ctl"
check "control: Package sluice, with a version" \
	'dpkg-deb -f "$deb" Package | grep -qx sluice && dpkg-deb -f "$deb" Version | grep -q "^[0-9]"'
check "control: Depends names the shared libraries (libjansson, libmicrohttpd)" \
	'dpkg-deb -f "$deb" Depends | grep -q libjansson && dpkg-deb -f "$deb" Depends | grep -q libmicrohttpd'
check "conffiles: /etc/sluice/sluiced.json" \
	'grep -qx /etc/sluice/sluiced.json "$work/ctl/conffiles"'
check "maintainer scripts parse (sh -n)" \
	'for s in postinst prerm postrm; do sh -n "$work/ctl/$s" || exit 1; done'
check "postrm never deletes the data dir, even on purge" \
	'! grep -E "rm[[:space:]]+-[a-zA-Z]*[rR][^;|&]*/var/lib" "$work/ctl/postrm"'

# ---- contents -------------------------------------------------------------
dpkg-deb -c "$deb" >"$work/contents"
for f in ./usr/sbin/sluiced ./usr/sbin/sluice-fsck ./usr/bin/sluicectl \
	./usr/share/man/man8/sluiced.8.gz ./usr/share/man/man8/sluice-fsck.8.gz \
	./usr/share/man/man1/sluicectl.1.gz ./etc/sluice/sluiced.json \
	./lib/systemd/system/sluiced.service ./var/lib/sluice/; do
	check "contents: $f" 'awk "{print \$6}" "$work/contents" | grep -qxF "$f"'
done
check "contents: every file owned by root/root" \
	'! awk "{print \$2}" "$work/contents" | grep -vqx root/root'
check "contents: programs are -rwxr-xr-x" \
	'[ "$(grep -cE "^-rwxr-xr-x .* \./usr/s?bin/[^/]+$" "$work/contents")" = 3 ]'

# ---- extracted ------------------------------------------------------------
dpkg-deb -x "$deb" "$root"
SLUICED=$root/usr/sbin/sluiced
SLUICECTL=$root/usr/bin/sluicectl
version=$(sed -n "s/^PACKAGE_VERSION = //p" "$top_builddir/Makefile")
check "extracted sluiced --version says $version" \
	'"$SLUICED" --version | grep -qx "sluiced $version"'
check "extracted sluice-fsck --help runs" \
	'"$root/usr/sbin/sluice-fsck" --help >/dev/null'
check "packaged config names data_dir /var/lib/sluice" \
	'grep -q "\"data_dir\": *\"/var/lib/sluice\"" "$root/etc/sluice/sluiced.json"'

if command -v man >/dev/null; then
	for m in man8/sluiced.8.gz man8/sluice-fsck.8.gz man1/sluicectl.1.gz; do
		check "man page $m renders without warnings" \
			'out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$root/usr/share/man/$m" 2>&1 >/dev/null) && [ -z "$out" ]'
	done
else
	skipped "man is not installed: man pages not rendered"
fi

# The packaged config as is (the strict parser rejects it otherwise), with
# the data dir and the listeners moved to scratch and loopback by flags.
port=$(free_port)
data=$work/data
"$SLUICED" --foreground --config "$root/etc/sluice/sluiced.json" \
	--data-dir "$data" --iscsi-listen 127.0.0.1:0 \
	--http-listen "127.0.0.1:$port" --io-engine threads >"$log" 2>&1 &
pid=$!
up=
for ((i = 0; i < TENTHS; i++)); do
	if grep -q ' info: ready: ' "$log" &&
	   curl -s -o /dev/null "http://127.0.0.1:$port/api/v1/health"; then
		up=1
		break
	fi
	alive || break
	sleep 0.1
done
if [ -z "$up" ]; then
	not_ok "extracted sluiced starts on the packaged config"
	show "$log"
	summary
	exit 1
fi
ok "extracted sluiced starts on the packaged config"
iport=$(sed -n 's/.*iscsi: listening on 127\.0\.0\.1:\([0-9]*\), portal group 1$/\1/p' "$log")
check "GET /api/v1/health answers 200" \
	'[ "$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$port/api/v1/health")" = 200 ]'

ctl() { "$SLUICECTL" --url "http://127.0.0.1:$port" --data-dir "$data" "$@"; }
check "extracted sluicectl: volume create and target create" \
	'ctl volume create pkgvol 16M >"$work/ctl.out" 2>&1 &&
	 ctl target create "$IQN" --lun 0=pkgvol --allow "$INIT" >>"$work/ctl.out" 2>&1' ||
	show "$work/ctl.out"
if command -v iscsi-inq >/dev/null && [ -n "$iport" ]; then
	check "iSCSI login and INQUIRY on the extracted daemon (iscsi-inq)" \
		'timeout 20 iscsi-inq -i "$INIT" "iscsi://127.0.0.1:$iport/$IQN/0" >"$work/inq.out" 2>&1' ||
		show "$work/inq.out"
else
	skipped "iscsi-inq (libiscsi-bin) is not installed: no iSCSI login"
fi

kill -TERM "$pid"
for ((i = 0; i < TENTHS; i++)); do
	alive || break
	sleep 0.1
done
if alive; then
	not_ok "extracted sluiced exits on SIGTERM"
else
	wait "$pid"
	st=$?
	pid=
	check "extracted sluiced exits 0 on SIGTERM" '[ "$st" = 0 ]'
	check "extracted sluice-fsck finds the pool clean" \
		'"$root/usr/sbin/sluice-fsck" --data-dir "$data" >"$work/fsck.out" 2>&1' ||
		show "$work/fsck.out"
fi

# ---- the unit -------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
	# verify wants ExecStart's binary to exist: point it at the extracted one
	mkdir -p "$work/unit"
	sed "s|/usr/sbin/sluiced|$SLUICED|" "$root/lib/systemd/system/sluiced.service" \
		>"$work/unit/sluiced.service"
	check "systemd-analyze verify accepts sluiced.service" \
		'SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$work/unit/sluiced.service" >"$work/verify.out" 2>&1 &&
		 ! grep -i "sluiced.service" "$work/verify.out"' ||
		show "$work/verify.out"
else
	skipped "systemd-analyze is not installed: unit not verified"
fi
check "unit: Type=exec (sluiced has no sd_notify), Restart=on-failure, ProtectSystem=strict" \
	'u=$root/lib/systemd/system/sluiced.service
	 grep -qx "Type=exec" "$u" && grep -qx "Restart=on-failure" "$u" &&
	 grep -qx "ProtectSystem=strict" "$u" && grep -qx "ReadWritePaths=/var/lib/sluice" "$u"'

summary
