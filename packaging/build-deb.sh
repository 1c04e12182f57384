#!/bin/bash
# packaging/build-deb.sh: build the Debian package the Debian way, with
# dpkg-buildpackage and debhelper, in a scratch source tree:
#
#   1. the upstream tree: `make distdir` (what `make dist` would tar) from a
#      configured build tree, and sluice_VERSION.orig.tar.gz from it;
#   2. packaging/debian/ copied in as debian/;
#   3. dpkg-buildpackage -us -uc -b there (dh: autoreconf, configure with
#      the Debian paths and hardening flags, make, make install; the unit
#      is enabled and started by dh_installsystemd's maintainer scripts).
#
#   packaging/build-deb.sh [-b BUILDDIR] [-o OUTDIR] [-t] [-k]
#
#   -b BUILDDIR  a configured (VPATH) build tree to take the distribution
#                from (it is not built); without -b a scratch tree is
#                configured for that
#   -o OUTDIR    where the .deb files go (default: the current directory)
#   -t           run the unit tests during the build (default: nocheck;
#                `make check` runs the whole suite in a checkout)
#   -k           keep the scratch directory (its path is printed)
#
# Needs dpkg-dev and debhelper, and the Build-Depends of debian/control
# (./setup.sh installs them all); no root, no fakeroot (Rules-Requires-Root:
# no). The package's version is debian/changelog's; when configure's
# version is newer a changelog entry for it is added in the scratch tree.
# Prints the path of sluice_VERSION_ARCH.deb on its last line; the
# sluice-dbgsym package lands beside it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/.." && pwd)
builddir= outdir=$PWD check=nocheck keep=

while getopts b:o:tkh opt; do
	case $opt in
	b) builddir=$OPTARG ;;
	o) outdir=$OPTARG ;;
	t) check= ;;
	k) keep=1 ;;
	h) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) exit 2 ;;
	esac
done

die() { echo "build-deb.sh: $*" >&2; exit 1; }
for tool in dpkg-buildpackage dpkg-parsechangelog dh; do
	command -v "$tool" >/dev/null ||
		die "$tool is not installed (apt-get install dpkg-dev debhelper)"
done

tmp=$(mktemp -d -t sluice-deb.XXXXXX)
if [ -n "$keep" ]; then
	echo "build-deb.sh: keeping $tmp" >&2
else
	trap 'rm -rf "$tmp"' EXIT
fi

# A make run from inside another make (make check) must not inherit its
# jobserver or its variables, nor the caller's compiler flags: the package
# is built with dpkg-buildflags' (hardening, -O2 -g) and nothing else.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES CFLAGS CPPFLAGS LDFLAGS CC

if [ -z "$builddir" ]; then
	builddir=$tmp/config
	mkdir -p "$builddir"
	(cd "$builddir" && "$srcdir/configure" >configure.log 2>&1) ||
		{ tail -20 "$builddir/configure.log" >&2; die "configure failed"; }
fi
builddir=$(cd "$builddir" && pwd)
[ -f "$builddir/Makefile" ] || die "$builddir is not a configured build tree"
version=$(sed -n "s/^PACKAGE_VERSION = //p" "$builddir/Makefile")
[ -n "$version" ] || die "no PACKAGE_VERSION in $builddir/Makefile"

# 1. the upstream tree and its tarball
tree=$tmp/src/sluice-$version
mkdir -p "$tmp/src"
make -C "$builddir" distdir distdir="$tree" top_distdir="$tree" \
	>"$tmp/distdir.log" 2>&1 ||
	{ tail -20 "$tmp/distdir.log" >&2; die "make distdir failed"; }
tar -C "$tmp/src" -czf "$tmp/src/sluice_$version.orig.tar.gz" "sluice-$version"

# 2. debian/, from the distribution (so a tarball alone builds it too)
[ -d "$tree/packaging/debian" ] || die "the distribution has no packaging/debian"
cp -a "$tree/packaging/debian" "$tree/debian"
changelog_version=$(cd "$tree" && dpkg-parsechangelog -S Version)
if [ "${changelog_version%-*}" != "$version" ]; then
	echo "build-deb.sh: debian/changelog is at $changelog_version, configure at $version: adding $version-1" >&2
	{
		printf 'sluice (%s-1) unstable; urgency=medium\n\n' "$version"
		printf '  * New upstream version %s (entry added by build-deb.sh).\n\n' "$version"
		printf ' -- sluice developers <sluice@localhost>  %s\n\n' "$(date -R)"
		cat "$tree/debian/changelog"
	} >"$tmp/changelog"
	mv "$tmp/changelog" "$tree/debian/changelog"
fi

# 3. the binary packages
echo "build-deb.sh: dpkg-buildpackage in $tree" >&2
if ! (cd "$tree" && DEB_BUILD_OPTIONS="$check" \
		dpkg-buildpackage -us -uc -b -J"${JOBS:-2}") >"$tmp/build.log" 2>&1; then
	tail -30 "$tmp/build.log" >&2
	die "dpkg-buildpackage failed (the whole log: run with -k)"
fi

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
debversion=$(cd "$tree" && dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
deb=sluice_${debversion#*:}_$arch.deb
[ -f "$tmp/src/$deb" ] || die "dpkg-buildpackage made no $deb"
for f in "$tmp/src"/*.deb "$tmp/src"/*.ddeb; do
	[ -f "$f" ] && cp "$f" "$outdir/"
done
echo "$outdir/$deb"
