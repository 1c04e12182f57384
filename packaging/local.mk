# packaging/local.mk: man pages (installed by `make install`) and the
# Debian packaging that build-deb.sh builds with dpkg-buildpackage: the
# debian/ directory, the default configuration and the systemd unit. See
# packaging/README.md.
dist_man_MANS = %reldir%/man/sluiced.8 %reldir%/man/sluice-fsck.8 \
	%reldir%/man/sluicectl.1
EXTRA_DIST += COPYING \
	%reldir%/README.md %reldir%/build-deb.sh \
	%reldir%/sluiced.json %reldir%/sluiced.service \
	%reldir%/debian/changelog %reldir%/debian/control \
	%reldir%/debian/copyright %reldir%/debian/rules \
	%reldir%/debian/source/format %reldir%/debian/sluice.dirs \
	%reldir%/debian/sluice.docs %reldir%/debian/sluice.install \
	%reldir%/debian/sluice.postrm
