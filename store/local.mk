# store/: the log-structured store, a library with store/store.h as its whole
# interface. It knows nothing of iSCSI or HTTP.
noinst_LIBRARIES += libsl_store.a
libsl_store_a_SOURCES = \
	%reldir%/store.h %reldir%/internal.h %reldir%/backend.h %reldir%/format.h \
	%reldir%/map.h %reldir%/map.c %reldir%/addr.h %reldir%/addr.c \
	%reldir%/super.c %reldir%/pool.c %reldir%/vol.c \
	%reldir%/log.c %reldir%/clean.c %reldir%/recover.c %reldir%/ckpt.c %reldir%/check.c %reldir%/meta.c \
	%reldir%/dedup.c \
	%reldir%/backend_file.c %reldir%/io_threads.c %reldir%/io_uring.c \
	%reldir%/cache.h %reldir%/cache.c %reldir%/thread.h
