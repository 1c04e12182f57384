#!/bin/bash
# packaging/build-deb.sh: build sluice_VERSION-1_ARCH.deb from a build tree,
# with `make install DESTDIR=` and dpkg-deb (no debian/ source package, no
# root: dpkg-deb --root-owner-group makes every file root's).
#
#   packaging/build-deb.sh [-b BUILDDIR] [-o OUTDIR]
#
#   -b BUILDDIR  a configured (VPATH) build tree to install from; it is
#                built first if needed. Without -b a scratch tree is
#                configured and built under a temporary directory.
#   -o OUTDIR    where the .deb goes (default: the current directory)
#
# The tree may be configured with any --prefix: the install is done with
# prefix=/usr, which works because nothing installed has a path compiled in.
# The package holds /usr/sbin/sluiced, /usr/sbin/sluice-fsck,
# /usr/bin/sluicectl, their man pages, /etc/sluice/sluiced.json (a
# conffile), /lib/systemd/system/sluiced.service and /var/lib/sluice.
# Needs: dpkg-deb (dpkg), and for Depends: dpkg-shlibdeps (dpkg-dev), else
# a fixed list is used. Prints the path of the .deb on its last line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/.." && pwd)
builddir= outdir=$PWD

while getopts b:o:h opt; do
	case $opt in
	b) builddir=$OPTARG ;;
	o) outdir=$OPTARG ;;
	h) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) exit 2 ;;
	esac
done

die() { echo "build-deb.sh: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb is not installed"

tmp=$(mktemp -d -t sluice-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# A make run from inside another make (make check) must not inherit its
# jobserver or its variables.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

if [ -z "$builddir" ]; then
	builddir=$tmp/build
	mkdir -p "$builddir"
	echo "build-deb.sh: configuring and building in $builddir" >&2
	(cd "$builddir" && "$srcdir/configure" --prefix=/usr --sysconfdir=/etc \
		--localstatedir=/var >configure.log 2>&1) ||
		{ tail -20 "$builddir/configure.log" >&2; die "configure failed"; }
	make -C "$builddir" -j"${JOBS:-2}" >/dev/null || die "make failed"
fi
builddir=$(cd "$builddir" && pwd)
[ -f "$builddir/Makefile" ] || die "$builddir is not a configured build tree"

version=$(sed -n "s/^PACKAGE_VERSION = //p" "$builddir/Makefile")
[ -n "$version" ] || die "no PACKAGE_VERSION in $builddir/Makefile"
arch=$(dpkg --print-architecture)
debversion=$version-1
root=$tmp/root

# the programs and man pages, as `make install` puts them
make -C "$builddir" install prefix=/usr DESTDIR="$root" >"$tmp/install.log" 2>&1 ||
	{ tail -20 "$tmp/install.log" >&2; die "make install failed"; }
for p in usr/sbin/sluiced usr/sbin/sluice-fsck usr/bin/sluicectl; do
	[ -x "$root/$p" ] || die "make install did not install /$p"
done
if command -v strip >/dev/null; then
	strip --strip-unneeded --remove-section=.comment --remove-section=.note \
		"$root/usr/sbin/sluiced" "$root/usr/sbin/sluice-fsck" "$root/usr/bin/sluicectl"
fi
find "$root/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +

# what the package adds: config, unit, data dir, docs
install -D -m 0644 "$here/sluiced.json" "$root/etc/sluice/sluiced.json"
install -D -m 0644 "$here/sluiced.service" "$root/lib/systemd/system/sluiced.service"
install -d -m 0750 "$root/var/lib/sluice"
install -D -m 0644 "$here/README.md" "$root/usr/share/doc/sluice/README.md"
gzip -9n -c "$here/debian/changelog" >"$root/usr/share/doc/sluice/changelog.Debian.gz"
chmod 0644 "$root/usr/share/doc/sluice/changelog.Debian.gz"

# control
mkdir -p "$root/DEBIAN"
for f in conffiles postinst prerm postrm; do
	install -m "$( [ "$f" = conffiles ] && echo 0644 || echo 0755 )" \
		"$here/debian/$f" "$root/DEBIAN/$f"
done
depends="libc6, libev4, libjansson4, liburing2, libisal2, libnettle8, libmicrohttpd12, libcurl4"
if command -v dpkg-shlibdeps >/dev/null; then
	# dpkg-shlibdeps wants a debian/control beside it
	mkdir -p "$tmp/shlib/debian"
	printf 'Source: sluice\n\nPackage: sluice\nArchitecture: any\n' \
		>"$tmp/shlib/debian/control"
	if d=$(cd "$tmp/shlib" && dpkg-shlibdeps -O -e"$root/usr/sbin/sluiced" \
			-e"$root/usr/sbin/sluice-fsck" -e"$root/usr/bin/sluicectl" 2>"$tmp/shlibdeps.err"); then
		depends=${d#shlibs:Depends=}
	else
		echo "build-deb.sh: dpkg-shlibdeps failed, using a fixed Depends:" >&2
		sed 's/^/    /' "$tmp/shlibdeps.err" >&2
	fi
fi
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	-e "s/@DEPENDS@/$depends/" "$here/debian/control.in" >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
	sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

mkdir -p "$outdir"
deb=$(cd "$outdir" && pwd)/sluice_${debversion}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
