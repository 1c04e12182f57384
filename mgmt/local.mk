# mgmt/local.mk: the management plane (JSON-over-HTTP API under /api/v1 and
# sluicectl). Empty until the management plane issue fills it with
# libsl_mgmt.a.
