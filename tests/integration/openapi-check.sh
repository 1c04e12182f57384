#!/bin/sh
# tests/integration/openapi-check.sh: mgmt/openapi.yaml describes exactly the
# routes the API serves. The routes are the rows of the route tables in
# mgmt/api_*.c ({ "METHOD", "/api/v1/PATH", handler, flags }); the document's
# are its paths (relative to the /api/v1 server) and their operations. Both
# become "METHOD /api/v1/PATH" lines; any line in one list and not the other
# fails the test, as do a route listed twice and any route but GET /health
# flagged MGMT_NOAUTH. When python3 with PyYAML is there, the document must
# also parse as YAML with an "openapi: 3.x" version.
set -u
srcdir=${top_srcdir:-$(dirname "$0")/../..}
doc=$srcdir/mgmt/openapi.yaml
work=$(mktemp -d -t sluice-openapi.XXXXXX) || exit 99
trap 'rm -rf "$work"' EXIT
pass=0 fail=0

ok()     { pass=$((pass + 1)); echo "ok: $*"; }
not_ok() { fail=$((fail + 1)); echo "FAIL: $*"; }

sed -n 's/^[[:space:]]*{ *"\([A-Z]*\)", *"\(\/api\/v1\/[^"]*\)".*/\1 \2/p' \
	"$srcdir"/mgmt/api_*.c | sort >"$work/code.all"
sort -u "$work/code.all" >"$work/code"
noauth=$(grep -h 'MGMT_NOAUTH *}' "$srcdir"/mgmt/api_*.c |
	sed -n 's/^[[:space:]]*{ *"\([A-Z]*\)", *"\([^"]*\)".*/\1 \2/p')

# paths: two spaces then /path:, operations: four spaces then a method.
awk '
	/^paths:/                 { in_paths = 1; next }
	/^[^ #]/                  { in_paths = 0 }
	!in_paths                 { next }
	/^  \/[^ ]*:[[:space:]]*$/ { path = $1; sub(/:$/, "", path); next }
	/^    (get|put|post|patch|delete|head|options):/ {
		m = $1; sub(/:$/, "", m)
		print toupper(m) " /api/v1" path
	}' "$doc" | sort -u >"$work/doc"

if [ -s "$work/code" ]; then
	ok "$(wc -l <"$work/code") routes found in mgmt/api_*.c"
else
	not_ok "no routes found in mgmt/api_*.c (has the table format changed?)"
fi
dups=$(uniq -d "$work/code.all")
if [ -z "$dups" ]; then
	ok "no route is in the tables twice"
else
	not_ok "routes listed twice: $dups"
fi
if [ "$noauth" = "GET /api/v1/health" ]; then
	ok "only GET /health is served without the token"
else
	not_ok "routes without the token: $noauth (only GET /api/v1/health may be)"
fi
missing=$(comm -23 "$work/code" "$work/doc")
extra=$(comm -13 "$work/code" "$work/doc")
if [ -z "$missing" ]; then
	ok "every route is in mgmt/openapi.yaml"
else
	not_ok "routes missing from mgmt/openapi.yaml:"
	echo "$missing" | sed 's/^/    /'
fi
if [ -z "$extra" ]; then
	ok "every operation in mgmt/openapi.yaml is a route"
else
	not_ok "operations in mgmt/openapi.yaml that no route serves:"
	echo "$extra" | sed 's/^/    /'
fi

if python3 -c 'import yaml' 2>/dev/null; then
	if python3 - "$doc" <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
assert str(d.get("openapi", "")).startswith("3."), "openapi: 3.x expected"
assert d.get("paths"), "no paths"
PY
	then
		ok "mgmt/openapi.yaml parses as OpenAPI 3 YAML"
	else
		not_ok "mgmt/openapi.yaml does not parse as OpenAPI 3 YAML"
	fi
else
	echo "skip: no python3 with PyYAML to parse the YAML"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
