/* iscsi/scsi_spec.h: SPC-4 / SBC-3 constants, no behaviour. */
#ifndef SLUICE_SCSI_SPEC_H
#define SLUICE_SCSI_SPEC_H

/* Operation codes (SPC-4 annex D, SBC-3 5) */
enum {
	SCSI_TEST_UNIT_READY            = 0x00,
	SCSI_REQUEST_SENSE              = 0x03,
	SCSI_READ_6                     = 0x08,
	SCSI_WRITE_6                    = 0x0a,
	SCSI_INQUIRY                    = 0x12,
	SCSI_MODE_SELECT_6              = 0x15,
	SCSI_MODE_SENSE_6               = 0x1a,
	SCSI_START_STOP_UNIT            = 0x1b,
	SCSI_READ_CAPACITY_10           = 0x25,
	SCSI_READ_10                    = 0x28,
	SCSI_WRITE_10                   = 0x2a,
	SCSI_WRITE_VERIFY_10            = 0x2e,
	SCSI_VERIFY_10                  = 0x2f,
	SCSI_PRE_FETCH_10               = 0x34,
	SCSI_SYNCHRONIZE_CACHE_10       = 0x35,
	SCSI_READ_DEFECT_DATA_10        = 0x37,
	SCSI_WRITE_SAME_10              = 0x41,
	SCSI_UNMAP                      = 0x42,
	SCSI_SANITIZE                   = 0x48,
	SCSI_MODE_SELECT_10             = 0x55,
	SCSI_MODE_SENSE_10              = 0x5a,
	SCSI_READ_16                    = 0x88,
	SCSI_WRITE_16                   = 0x8a,
	SCSI_WRITE_VERIFY_16            = 0x8e,
	SCSI_VERIFY_16                  = 0x8f,
	SCSI_PRE_FETCH_16               = 0x90,
	SCSI_SYNCHRONIZE_CACHE_16       = 0x91,
	SCSI_WRITE_SAME_16              = 0x93,
	SCSI_SERVICE_ACTION_IN_16       = 0x9e,
	SCSI_REPORT_LUNS                = 0xa0,
	SCSI_MAINTENANCE_IN             = 0xa3,
	SCSI_READ_12                    = 0xa8,
	SCSI_WRITE_12                   = 0xaa,
	SCSI_WRITE_VERIFY_12            = 0xae,
	SCSI_VERIFY_12                  = 0xaf,
	SCSI_READ_DEFECT_DATA_12        = 0xb7,
};

/* Service actions */
enum {
	SCSI_SAI_READ_CAPACITY_16       = 0x10, /* SERVICE ACTION IN(16) */
	SCSI_SAI_GET_LBA_STATUS         = 0x12,
	SCSI_MI_REPORT_OPCODES          = 0x0c, /* MAINTENANCE IN */
	SCSI_MI_REPORT_TMFS             = 0x0d,
	SCSI_SANITIZE_OVERWRITE         = 0x01,
	SCSI_SANITIZE_BLOCK_ERASE       = 0x02,
	SCSI_SANITIZE_CRYPTO_ERASE      = 0x03,
	SCSI_SANITIZE_EXIT_FAILURE      = 0x1f,
};

/* Status (SAM-5 5.3) */
enum {
	SCSI_STATUS_GOOD                = 0x00,
	SCSI_STATUS_CHECK_CONDITION     = 0x02,
	SCSI_STATUS_CONDITION_MET       = 0x04,
	SCSI_STATUS_BUSY                = 0x08,
	SCSI_STATUS_RESERVATION_CONFLICT = 0x18,
	SCSI_STATUS_TASK_SET_FULL       = 0x28,
	SCSI_STATUS_TASK_ABORTED        = 0x40,
};

/* Sense keys (SPC-4 4.5.6) */
enum {
	SCSI_SK_NO_SENSE                = 0x0,
	SCSI_SK_NOT_READY               = 0x2,
	SCSI_SK_MEDIUM_ERROR            = 0x3,
	SCSI_SK_HARDWARE_ERROR          = 0x4,
	SCSI_SK_ILLEGAL_REQUEST         = 0x5,
	SCSI_SK_UNIT_ATTENTION          = 0x6,
	SCSI_SK_DATA_PROTECT            = 0x7,
	SCSI_SK_ABORTED_COMMAND         = 0xb,
	SCSI_SK_MISCOMPARE              = 0xe,
};

/* Additional sense code and qualifier, as 0xAAQQ (SPC-4 annex D.2) */
enum {
	SCSI_ASC_NONE                   = 0x0000,
	SCSI_ASC_WRITE_ERROR            = 0x0c00,
	SCSI_ASC_UNRECOVERED_READ       = 0x1100,
	SCSI_ASC_MISCOMPARE_VERIFY      = 0x1d00,
	SCSI_ASC_PARAM_LIST_LENGTH      = 0x1a00,
	SCSI_ASC_INVALID_OPCODE         = 0x2000,
	SCSI_ASC_LBA_OUT_OF_RANGE       = 0x2100,
	SCSI_ASC_INVALID_FIELD_CDB      = 0x2400,
	SCSI_ASC_LUN_NOT_SUPPORTED      = 0x2500,
	SCSI_ASC_INVALID_FIELD_PARAM    = 0x2600,
	SCSI_ASC_WRITE_PROTECTED        = 0x2700,
	SCSI_ASC_SPACE_ALLOC_FAILED_WP  = 0x2707,
	SCSI_ASC_POWER_ON_RESET         = 0x2900,
	SCSI_ASC_BUS_RESET              = 0x2902,
	SCSI_ASC_DEVICE_RESET           = 0x2903,
	SCSI_ASC_MODE_PARAMS_CHANGED    = 0x2a01,
	SCSI_ASC_CAPACITY_CHANGED       = 0x2a09,
	SCSI_ASC_COMMANDS_CLEARED       = 0x2f00,
	SCSI_ASC_SAVING_NOT_SUPPORTED   = 0x3900,
	SCSI_ASC_INTERNAL_FAILURE       = 0x4400,
	SCSI_ASC_DEFECT_LIST_NOT_FOUND  = 0x1c00,
	SCSI_ASC_OUT_OF_RESOURCES       = 0x5503,
};

/* Sense data formats (SPC-4 4.5) */
#define SCSI_SENSE_FIXED        0x70u
#define SCSI_SENSE_DESC         0x72u
#define SCSI_SENSE_MAX          32u

/* Peripheral device type and versions */
#define SCSI_TYPE_DISK          0x00u
#define SCSI_VERSION_SPC4       0x06u
#define SCSI_LUN_NOT_PRESENT    0x7fu   /* peripheral qualifier 3, type 1fh */

/* VPD pages (SPC-4 7.8, SBC-3 6.6) */
enum {
	SCSI_VPD_SUPPORTED              = 0x00,
	SCSI_VPD_SERIAL                 = 0x80,
	SCSI_VPD_DEVICE_ID              = 0x83,
	SCSI_VPD_EXTENDED_INQUIRY       = 0x86,
	SCSI_VPD_BLOCK_LIMITS           = 0xb0,
	SCSI_VPD_BLOCK_CHARACTERISTICS  = 0xb1,
	SCSI_VPD_LB_PROVISIONING        = 0xb2,
};

/* Designators (SPC-4 7.8.6) */
enum {
	SCSI_CODESET_BINARY             = 0x1,
	SCSI_CODESET_ASCII              = 0x2,
	SCSI_CODESET_UTF8               = 0x3,
	SCSI_DESIG_T10                  = 0x1,
	SCSI_DESIG_NAA                  = 0x3,
	SCSI_DESIG_REL_PORT             = 0x4,
	SCSI_DESIG_TPG                  = 0x5,
	SCSI_DESIG_SCSI_NAME            = 0x8,
	SCSI_ASSOC_LU                   = 0x0,
	SCSI_ASSOC_PORT                 = 0x1,
	SCSI_ASSOC_TARGET               = 0x2,
	SCSI_PROTO_ISCSI                = 0x5,
};

/* Mode pages (SPC-4 7.5, SBC-3 6.5) */
enum {
	SCSI_MODE_PAGE_CACHING          = 0x08,
	SCSI_MODE_PAGE_CONTROL          = 0x0a,
	SCSI_MODE_PAGE_ALL              = 0x3f,
};
#define SCSI_MODE_PC_CURRENT    0u
#define SCSI_MODE_PC_CHANGEABLE 1u
#define SCSI_MODE_PC_DEFAULT    2u
#define SCSI_MODE_PC_SAVED      3u
#define SCSI_MODE_DEV_WP        0x80u
#define SCSI_MODE_DEV_DPOFUA    0x10u

/* Task management functions reported by REPORT SUPPORTED TMFs (SPC-4 6.37) */
#define SCSI_TMF_ATS            0x80u   /* byte 0 */
#define SCSI_TMF_ATSS           0x40u
#define SCSI_TMF_CACAS          0x20u
#define SCSI_TMF_CTSS           0x10u
#define SCSI_TMF_LURS           0x08u
#define SCSI_TMF_TRS            0x01u

#endif
