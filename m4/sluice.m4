dnl m4/sluice.m4: sluice's configure macros (SL_*). Each check that fails
dnl names the Debian package to install, so a fresh machine is one
dnl `apt-get install` away from building.

dnl SL_REQUIRE_PKG(VAR, pkg-config spec, Debian package)
dnl Sets and substitutes VAR_CFLAGS and VAR_LIBS.
AC_DEFUN([SL_REQUIRE_PKG], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$2 not found: install the Debian package $3])])
])

dnl SL_REQUIRE_LIB(VAR, header, library, function, Debian package)
dnl For libraries without a .pc file (libev): checks the header and that
dnl the function links, then substitutes VAR_LIBS=-llibrary. LIBS is left
dnl alone so that only the programs that need the library link it.
AC_DEFUN([SL_REQUIRE_LIB], [
  AC_CHECK_HEADER([$2], [],
    [AC_MSG_ERROR([$2 not found: install the Debian package $5])])
  AC_CHECK_LIB([$3], [$4], [$1_LIBS=-l$3],
    [AC_MSG_ERROR([$4 not found in -l$3: install the Debian package $5])])
  AC_SUBST([$1_LIBS])
])

dnl SL_CFLAG_TRY(flag, action-if-ok, action-if-not)
dnl Compiles an empty program with -Werror so that a compiler which only
dnl warns about an unknown option (clang) counts as not supporting it.
AC_DEFUN([SL_CFLAG_TRY], [
  AS_VAR_PUSHDEF([sl_cv], [sl_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [sl_cv], [
    sl_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
      [AS_VAR_SET([sl_cv], [yes])], [AS_VAR_SET([sl_cv], [no])])
    CFLAGS=$sl_save_CFLAGS])
  AS_VAR_IF([sl_cv], [yes], [$2], [$3])
  AS_VAR_POPDEF([sl_cv])
])

dnl SL_WARN_CFLAGS: WARN_CFLAGS = every flag of the list this compiler knows.
AC_DEFUN([SL_WARN_CFLAGS], [
  WARN_CFLAGS=
  m4_foreach_w([sl_flag],
    [-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
     -Wpointer-arith -Wvla],
    [SL_CFLAG_TRY(sl_flag, [WARN_CFLAGS="$WARN_CFLAGS sl_flag"])])
  AC_SUBST([WARN_CFLAGS])
])

dnl SL_SANITIZERS: --enable-sanitizers puts ASan and UBSan in SAN_CFLAGS and
dnl SAN_LDFLAGS (the runtime must be linked too); tested by linking.
AC_DEFUN([SL_SANITIZERS], [
  AC_ARG_ENABLE([sanitizers],
    [AS_HELP_STRING([--enable-sanitizers],
      [build with AddressSanitizer and UndefinedBehaviorSanitizer])],
    [], [enable_sanitizers=no])
  SAN_CFLAGS=
  AS_IF([test "x$enable_sanitizers" = xyes], [
    sl_san="-fsanitize=address,undefined -fno-omit-frame-pointer"
    AC_MSG_CHECKING([whether $CC links with $sl_san])
    sl_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS $sl_san"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])],
      [AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no])
       AC_MSG_ERROR([$CC cannot link $sl_san: with gcc install libasan8 and libubsan1, with clang install libclang-rt-14-dev])])
    CFLAGS=$sl_save_CFLAGS
    SAN_CFLAGS=$sl_san
  ])
  SAN_LDFLAGS=$SAN_CFLAGS
  AC_SUBST([SAN_CFLAGS])
  AC_SUBST([SAN_LDFLAGS])
])

dnl SL_FUZZER: --enable-fuzzer (clang only) sets the FUZZER conditional and
dnl FUZZ_CFLAGS=-fsanitize=fuzzer for linking fuzz targets with libFuzzer.
dnl Every other object gets -fsanitize=fuzzer-no-link (in SAN_CFLAGS) so
dnl the code under test carries the coverage the fuzzer steers by.
AC_DEFUN([SL_FUZZER], [
  AC_REQUIRE([SL_SANITIZERS])
  AC_ARG_ENABLE([fuzzer],
    [AS_HELP_STRING([--enable-fuzzer],
      [build libFuzzer targets (needs clang: CC=clang)])],
    [], [enable_fuzzer=no])
  FUZZ_CFLAGS=
  AS_IF([test "x$enable_fuzzer" = xyes], [
    AC_MSG_CHECKING([whether $CC links libFuzzer targets])
    sl_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -fsanitize=fuzzer"
    AC_LINK_IFELSE([AC_LANG_SOURCE([[
#include <stddef.h>
#include <stdint.h>
#ifndef __clang__
#error libFuzzer needs clang
#endif
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{ (void)data; (void)size; return 0; }
]])],
      [AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no])
       AC_MSG_ERROR([--enable-fuzzer needs clang with libFuzzer: install the Debian packages clang and libclang-rt-14-dev, then configure with CC=clang])])
    CFLAGS=$sl_save_CFLAGS
    FUZZ_CFLAGS=-fsanitize=fuzzer
    SAN_CFLAGS="$SAN_CFLAGS -fsanitize=fuzzer-no-link"
    SAN_LDFLAGS="$SAN_LDFLAGS -fsanitize=fuzzer-no-link"
  ])
  AM_CONDITIONAL([FUZZER], [test "x$enable_fuzzer" = xyes])
  AC_SUBST([FUZZ_CFLAGS])
])
