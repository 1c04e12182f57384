#!/bin/sh
# tests/check-layering.sh: store/ is a library that knows nothing of iSCSI or
# HTTP, and every symbol it exports says where it lives. Fails otherwise.
# Run by `make check` from the build directory.
set -u
srcdir=${top_srcdir:-$(dirname "$0")/..}
builddir=${top_builddir:-.}
fail=0

bad=$(grep -lE '#include +"(iscsi|mgmt|daemon)/' "$srcdir"/store/*.c "$srcdir"/store/*.h 2>/dev/null)
if [ -n "$bad" ]; then
	echo "store/ includes a header of iscsi/, mgmt/ or daemon/: $bad"
	fail=1
fi

lib="$builddir/libsl_store.a"
if [ ! -f "$lib" ]; then
	echo "no $lib: build first"
	fail=1
else
	# AddressSanitizer adds __odr_asan.NAME for each exported variable NAME
	syms=$(nm -g --defined-only "$lib" | awk 'NF == 3 { sub(/^__odr_asan\./, "", $3); print $3 }' |
	       grep -v '^store_')
	if [ -n "$syms" ]; then
		echo "libsl_store.a exports symbols without the store_ prefix:"
		echo "$syms"
		fail=1
	fi
fi

if [ $fail -eq 0 ]; then
	echo "1 passed, 0 failed"
else
	echo "0 passed, 1 failed"
fi
exit $fail
