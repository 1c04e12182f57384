# tests/integration/local.mk: scripts that drive the real sluiced over the
# network. mgmt-api.sh covers every HTTP route and sluicectl (curl and jq);
# openapi-check.sh keeps mgmt/openapi.yaml and the route tables in step.
TESTS += %reldir%/mgmt-api.sh %reldir%/openapi-check.sh
EXTRA_DIST += %reldir%/mgmt-api.sh %reldir%/openapi-check.sh %reldir%/script-lib.sh

# the Debian package: build it, check its contents, run what it installs
TESTS += %reldir%/package.sh
EXTRA_DIST += %reldir%/package.sh

# clones-e2e.sh: the desktop-pool workflow end to end (an image imported
# over HTTP, a snapshot, 50 clones mapped to targets, read and written over
# iSCSI with qemu-img/qemu-io and libiscsi's tools, space accounting,
# teardown to an empty pool); needs curl, jq, python3, qemu and libiscsi.
TESTS += %reldir%/clones-e2e.sh
EXTRA_DIST += %reldir%/clones-e2e.sh

# dedup.sh: the config key "dedup", GET /pool's dedup object, three imports
# of one image stored once; needs curl and jq.
TESTS += %reldir%/dedup.sh
EXTRA_DIST += %reldir%/dedup.sh
