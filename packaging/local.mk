# packaging/local.mk: man pages (installed by `make install`) and what
# build-deb.sh puts into the Debian package: the default configuration,
# the systemd unit and the maintainer scripts. See packaging/README.md.
dist_man_MANS = %reldir%/man/sluiced.8 %reldir%/man/sluice-fsck.8 \
	%reldir%/man/sluicectl.1
EXTRA_DIST += \
	%reldir%/README.md %reldir%/build-deb.sh \
	%reldir%/sluiced.json %reldir%/sluiced.service \
	%reldir%/debian/control.in %reldir%/debian/conffiles \
	%reldir%/debian/changelog %reldir%/debian/postinst \
	%reldir%/debian/prerm %reldir%/debian/postrm
