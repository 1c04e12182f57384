# iscsi/local.mk: the iSCSI target (PDU framing, login and sessions, the
# SCSI command set over store/store.h), in libsl_iscsi.a. Only iscsi.h is
# public; sluiced and the tests link the library.
noinst_LIBRARIES += libsl_iscsi.a
libsl_iscsi_a_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS) $(NETTLE_CFLAGS)
libsl_iscsi_a_SOURCES = \
	%reldir%/iscsi.h %reldir%/internal.h \
	%reldir%/iscsi_proto.h %reldir%/scsi_spec.h %reldir%/scsi.h \
	%reldir%/srv.c %reldir%/loop.c %reldir%/conn.c %reldir%/params.c %reldir%/login.c \
	%reldir%/session.c %reldir%/target.c \
	%reldir%/scsi.c %reldir%/lu.c %reldir%/spc.c %reldir%/sbc.c \
	%reldir%/copy.c \
	%reldir%/pr.h %reldir%/pr.c

# What a program serving iSCSI links, in link order.
SL_ISCSI_LIBS = libsl_iscsi.a $(JANSSON_LIBS) $(NETTLE_LIBS) $(SL_STORE_LIBS)
