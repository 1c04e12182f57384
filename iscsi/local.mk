# iscsi/local.mk: the iSCSI target (PDU framing, login and sessions, the
# SCSI command set over store/store.h). Empty until the iSCSI target issue
# fills it with libsl_iscsi.a.
