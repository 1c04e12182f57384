# tests/integration/local.mk: scripts that drive the real sluiced over the
# network. mgmt-api.sh covers every HTTP route and sluicectl (curl and jq);
# openapi-check.sh keeps mgmt/openapi.yaml and the route tables in step.
TESTS += %reldir%/mgmt-api.sh %reldir%/openapi-check.sh
EXTRA_DIST += %reldir%/mgmt-api.sh %reldir%/openapi-check.sh

# the Debian package: build it, check its contents, run what it installs
TESTS += %reldir%/package.sh
EXTRA_DIST += %reldir%/package.sh
