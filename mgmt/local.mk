# mgmt/local.mk: the management plane: the JSON-over-HTTP API under /api/v1
# (libsl_mgmt.a, linked into sluiced) and sluicectl, the CLI over it.
# mgmt/mgmt.h is the module's one public header; the API is described in
# mgmt/openapi.yaml, which tests/integration/openapi-check.sh keeps true.
noinst_LIBRARIES += libsl_mgmt.a
libsl_mgmt_a_CPPFLAGS = $(AM_CPPFLAGS) $(MHD_CFLAGS) $(JANSSON_CFLAGS)
libsl_mgmt_a_SOURCES = \
	%reldir%/mgmt.h %reldir%/internal.h \
	%reldir%/http.c %reldir%/routes.c %reldir%/reply.c %reldir%/body.c \
	%reldir%/token.c %reldir%/stats.c \
	%reldir%/api_sys.c %reldir%/api_vol.c %reldir%/api_data.c \
	%reldir%/api_target.c

# What a program that starts the API links, after libsl_daemon.a.
SL_MGMT_LIBS = libsl_mgmt.a $(MHD_LIBS) $(JANSSON_LIBS)

bin_PROGRAMS += sluicectl
sluicectl_SOURCES = %reldir%/sluicectl.c
sluicectl_CPPFLAGS = $(AM_CPPFLAGS) $(CURL_CFLAGS) $(JANSSON_CFLAGS)
sluicectl_LDADD = $(CURL_LIBS) $(JANSSON_LIBS)

EXTRA_DIST += %reldir%/openapi.yaml
