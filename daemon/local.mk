# daemon/local.mk: sluiced and sluice-fsck. Everything but the two main()
# files is in libsl_daemon.a, so tests link the same code the daemon runs.
noinst_LIBRARIES += libsl_daemon.a
libsl_daemon_a_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS) $(SL_STORE_CFLAGS) \
	$(SYSTEMD_CFLAGS)
libsl_daemon_a_SOURCES = \
	%reldir%/daemon.h %reldir%/daemon.c \
	%reldir%/config.h %reldir%/config.c \
	%reldir%/log.h %reldir%/log.c \
	%reldir%/check.c %reldir%/detach.c %reldir%/notify.c

sbin_PROGRAMS += sluiced sluice-fsck
sluiced_SOURCES = %reldir%/main.c
# libsl_daemon.a starts the HTTP API and the iSCSI target: their libraries
# come after it; libsystemd (sd_notify, notify.c) is sluiced's alone
sluiced_LDADD = libsl_daemon.a $(SL_MGMT_LIBS) $(SL_ISCSI_LIBS) $(SL_DAEMON_LIBS) \
	$(SYSTEMD_LIBS)
sluice_fsck_SOURCES = %reldir%/fsck.c
sluice_fsck_LDADD = $(SL_DAEMON_LIBS)
