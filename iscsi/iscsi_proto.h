/* iscsi/iscsi_proto.h: RFC 7143 wire format, constants only (no behaviour).
 *
 * Every PDU starts with a 48-byte Basic Header Segment (RFC 7143 11.2.1);
 * the layouts below are one struct per opcode over the same 48 bytes, all
 * multi-byte fields big-endian (read them with be32toh/be16toh).
 */
#ifndef SLUICE_ISCSI_PROTO_H
#define SLUICE_ISCSI_PROTO_H

#include <stdint.h>

#define ISCSI_BHS_LEN           48u
#define ISCSI_DIGEST_LEN        4u
#define ISCSI_AHS_MAX           (255u * 4u)     /* TotalAHSLength is in words */
#define ISCSI_DSL_MAX           ((1u << 24) - 1)
#define ISCSI_RSVD_TAG          0xffffffffu     /* RFC 7143 11.2.1.8 */

/* RFC 7143 11.2.1.2: initiator opcodes */
enum {
	ISCSI_OP_NOP_OUT        = 0x00,
	ISCSI_OP_SCSI_CMD       = 0x01,
	ISCSI_OP_TMF_REQ        = 0x02,
	ISCSI_OP_LOGIN_REQ      = 0x03,
	ISCSI_OP_TEXT_REQ       = 0x04,
	ISCSI_OP_DATA_OUT       = 0x05,
	ISCSI_OP_LOGOUT_REQ     = 0x06,
	ISCSI_OP_SNACK          = 0x10,
	/* target opcodes */
	ISCSI_OP_NOP_IN         = 0x20,
	ISCSI_OP_SCSI_RSP       = 0x21,
	ISCSI_OP_TMF_RSP        = 0x22,
	ISCSI_OP_LOGIN_RSP      = 0x23,
	ISCSI_OP_TEXT_RSP       = 0x24,
	ISCSI_OP_DATA_IN        = 0x25,
	ISCSI_OP_LOGOUT_RSP     = 0x26,
	ISCSI_OP_R2T            = 0x31,
	ISCSI_OP_ASYNC          = 0x32,
	ISCSI_OP_REJECT         = 0x3f,
};

#define ISCSI_OP_MASK           0x3fu
#define ISCSI_OP_IMMEDIATE      0x40u
#define ISCSI_FLAG_FINAL        0x80u

/* SCSI Command flags (RFC 7143 11.3.1) */
#define ISCSI_CMD_READ          0x40u
#define ISCSI_CMD_WRITE         0x20u
#define ISCSI_CMD_ATTR_MASK     0x07u

/* SCSI Response / Data-In flags (RFC 7143 11.4.5, 11.7.5) */
#define ISCSI_RSP_BIDI_OVER     0x10u
#define ISCSI_RSP_BIDI_UNDER    0x08u
#define ISCSI_RSP_OVER          0x04u
#define ISCSI_RSP_UNDER         0x02u
#define ISCSI_DATA_ACK          0x40u
#define ISCSI_DATA_STATUS       0x01u
#define ISCSI_RSP_COMPLETED     0x00u   /* Response: command completed at target */

/* Login (RFC 7143 11.12) */
#define ISCSI_LOGIN_TRANSIT     0x80u
#define ISCSI_LOGIN_CONTINUE    0x40u
#define ISCSI_LOGIN_CSG(f)      (((f) >> 2) & 3u)
#define ISCSI_LOGIN_NSG(f)      ((f) & 3u)
enum {
	ISCSI_STAGE_SECURITY    = 0,
	ISCSI_STAGE_OPERATIONAL = 1,
	ISCSI_STAGE_FULL        = 3,
};
#define ISCSI_TEXT_CONTINUE     0x40u

/* Login status class/detail (RFC 7143 11.13.5), as 0xCCDD */
enum {
	ISCSI_LOGIN_OK                  = 0x0000,
	ISCSI_LOGIN_INITIATOR_ERROR     = 0x0200,
	ISCSI_LOGIN_AUTH_FAILED         = 0x0201,
	ISCSI_LOGIN_FORBIDDEN           = 0x0202,
	ISCSI_LOGIN_NOT_FOUND           = 0x0203,
	ISCSI_LOGIN_TARGET_REMOVED      = 0x0204,
	ISCSI_LOGIN_UNSUPPORTED_VERSION = 0x0205,
	ISCSI_LOGIN_TOO_MANY_CONNS      = 0x0206,
	ISCSI_LOGIN_MISSING_PARAM       = 0x0207,
	ISCSI_LOGIN_CANT_INCLUDE        = 0x0208,
	ISCSI_LOGIN_SESSION_TYPE        = 0x0209,
	ISCSI_LOGIN_NO_SESSION          = 0x020a,
	ISCSI_LOGIN_INVALID_REQUEST     = 0x020b,
	ISCSI_LOGIN_TARGET_ERROR        = 0x0300,
	ISCSI_LOGIN_UNAVAILABLE         = 0x0301,
	ISCSI_LOGIN_NO_RESOURCES        = 0x0302,
};

/* Task management functions and responses (RFC 7143 11.5.1, 11.6.1) */
enum {
	ISCSI_TMF_ABORT_TASK            = 1,
	ISCSI_TMF_ABORT_TASK_SET        = 2,
	ISCSI_TMF_CLEAR_ACA             = 3,
	ISCSI_TMF_CLEAR_TASK_SET        = 4,
	ISCSI_TMF_LUN_RESET             = 5,
	ISCSI_TMF_TARGET_WARM_RESET     = 6,
	ISCSI_TMF_TARGET_COLD_RESET     = 7,
	ISCSI_TMF_TASK_REASSIGN         = 8,
};
enum {
	ISCSI_TMF_RSP_COMPLETE          = 0,
	ISCSI_TMF_RSP_NO_TASK           = 1,
	ISCSI_TMF_RSP_NO_LUN            = 2,
	ISCSI_TMF_RSP_ALLEGIANT         = 3,
	ISCSI_TMF_RSP_NO_REASSIGN       = 4,
	ISCSI_TMF_RSP_NOT_SUPPORTED     = 5,
	ISCSI_TMF_RSP_AUTH_FAILED       = 6,
	ISCSI_TMF_RSP_REJECTED          = 255,
};

/* Logout reasons and responses (RFC 7143 11.14.1, 11.15.1) */
enum {
	ISCSI_LOGOUT_SESSION            = 0,
	ISCSI_LOGOUT_CONNECTION         = 1,
	ISCSI_LOGOUT_RECOVERY           = 2,
};
enum {
	ISCSI_LOGOUT_RSP_OK             = 0,
	ISCSI_LOGOUT_RSP_NO_CID         = 1,
	ISCSI_LOGOUT_RSP_NO_RECOVERY    = 2,
	ISCSI_LOGOUT_RSP_FAILED         = 3,
};

/* Reject reasons (RFC 7143 11.17.1) */
enum {
	ISCSI_REJECT_DIGEST             = 0x02,
	ISCSI_REJECT_SNACK              = 0x03,
	ISCSI_REJECT_PROTOCOL           = 0x04,
	ISCSI_REJECT_NOT_SUPPORTED      = 0x05,
	ISCSI_REJECT_IMMEDIATE          = 0x06,
	ISCSI_REJECT_TASK_IN_PROGRESS   = 0x07,
	ISCSI_REJECT_INVALID_ACK        = 0x08,
	ISCSI_REJECT_INVALID_FIELD      = 0x09,
	ISCSI_REJECT_LONG_OP            = 0x0a,
	ISCSI_REJECT_WAITING_LOGOUT     = 0x0c,
};

/* Asynchronous events (RFC 7143 11.9.1) */
enum {
	ISCSI_ASYNC_SCSI                = 0,
	ISCSI_ASYNC_LOGOUT_REQUEST      = 1,
	ISCSI_ASYNC_DROP_CONNECTION     = 2,
	ISCSI_ASYNC_DROP_SESSION        = 3,
	ISCSI_ASYNC_NEGOTIATE           = 4,
};

/* AHS types (RFC 7143 11.2.2) */
#define ISCSI_AHS_EXTENDED_CDB  1u

/* The layouts. Reserved bytes are named rsvd*; offsets in comments. */
struct iscsi_bhs {                      /* fields common to every PDU */
	uint8_t  op;                    /* 0: I bit, opcode */
	uint8_t  flags;                 /* 1: F bit, opcode-specific */
	uint8_t  spec2[2];              /* 2 */
	uint8_t  ahs_len;               /* 4: words */
	uint8_t  dlen[3];               /* 5: DataSegmentLength */
	uint8_t  lun[8];                /* 8 */
	uint32_t itt;                   /* 16 */
	uint32_t ttt;                   /* 20 (most opcodes) */
	uint32_t sn;                    /* 24: CmdSN (initiator) / StatSN (target) */
	uint32_t exp_sn;                /* 28: ExpStatSN / ExpCmdSN */
	uint32_t max_cmdsn;             /* 32: target PDUs */
	uint32_t w36, w40, w44;
};

struct iscsi_bhs_cmd {                  /* RFC 7143 11.3 */
	uint8_t  op, flags, rsvd2[2];
	uint8_t  ahs_len, dlen[3];
	uint8_t  lun[8];
	uint32_t itt;
	uint32_t edtl;                  /* 20: Expected Data Transfer Length */
	uint32_t cmdsn;                 /* 24 */
	uint32_t exp_statsn;            /* 28 */
	uint8_t  cdb[16];               /* 32 */
};

struct iscsi_bhs_rsp {                  /* RFC 7143 11.4 */
	uint8_t  op, flags, response, status;
	uint8_t  ahs_len, dlen[3];
	uint8_t  rsvd8[8];
	uint32_t itt;
	uint32_t snack_tag;
	uint32_t statsn, exp_cmdsn, max_cmdsn;
	uint32_t exp_datasn;            /* 36 */
	uint32_t bidi_resid;            /* 40 */
	uint32_t resid;                 /* 44 */
};

struct iscsi_bhs_data {                 /* Data-In (11.7) and Data-Out (11.8) */
	uint8_t  op, flags, rsvd2, status;
	uint8_t  ahs_len, dlen[3];
	uint8_t  lun[8];
	uint32_t itt;
	uint32_t ttt;
	uint32_t statsn;                /* 24: Data-Out: reserved */
	uint32_t exp_sn;                /* 28: ExpCmdSN / ExpStatSN */
	uint32_t max_cmdsn;             /* 32: Data-Out: reserved */
	uint32_t datasn;                /* 36 */
	uint32_t offset;                /* 40: Buffer Offset */
	uint32_t resid;                 /* 44: Data-In only */
};

struct iscsi_bhs_r2t {                  /* RFC 7143 11.8 */
	uint8_t  op, flags, rsvd2[2];
	uint8_t  ahs_len, dlen[3];
	uint8_t  lun[8];
	uint32_t itt, ttt;
	uint32_t statsn, exp_cmdsn, max_cmdsn;
	uint32_t r2tsn;                 /* 36 */
	uint32_t offset;                /* 40 */
	uint32_t length;                /* 44: Desired Data Transfer Length */
};

struct iscsi_bhs_tmf {                  /* request 11.5, response 11.6 */
	uint8_t  op, flags, response, rsvd3;
	uint8_t  ahs_len, dlen[3];
	uint8_t  lun[8];
	uint32_t itt;
	uint32_t rtt;                   /* 20: Referenced Task Tag */
	uint32_t sn;                    /* 24: CmdSN / StatSN */
	uint32_t exp_sn;                /* 28 */
	uint32_t ref_cmdsn;             /* 32: request; MaxCmdSN in the response */
	uint32_t exp_datasn;            /* 36 */
	uint32_t rsvd40[2];
};

struct iscsi_bhs_login {                /* request 11.12, response 11.13 */
	uint8_t  op, flags;
	uint8_t  vmax;                  /* 2: Version-max */
	uint8_t  vmin;                  /* 3: Version-min / Version-active */
	uint8_t  ahs_len, dlen[3];
	uint8_t  isid[6];               /* 8 */
	uint16_t tsih;                  /* 14 */
	uint32_t itt;
	uint16_t cid;                   /* 20: request */
	uint16_t rsvd22;
	uint32_t sn;                    /* 24: CmdSN / StatSN */
	uint32_t exp_sn;                /* 28: ExpStatSN / ExpCmdSN */
	uint32_t max_cmdsn;             /* 32: response */
	uint8_t  status_class;          /* 36: response */
	uint8_t  status_detail;         /* 37 */
	uint8_t  rsvd38[10];
};

struct iscsi_bhs_logout {               /* request 11.14, response 11.15 */
	uint8_t  op, flags, response, rsvd3;
	uint8_t  ahs_len, dlen[3];
	uint8_t  rsvd8[8];
	uint32_t itt;
	uint16_t cid;                   /* 20: request */
	uint16_t rsvd22;
	uint32_t sn, exp_sn, max_cmdsn;
	uint32_t rsvd36;
	uint16_t time2wait, time2retain;        /* 40: response */
	uint32_t rsvd44;
};

struct iscsi_bhs_async {                /* RFC 7143 11.9 */
	uint8_t  op, flags, rsvd2[2];
	uint8_t  ahs_len, dlen[3];
	uint8_t  lun[8];
	uint32_t itt;                   /* 0xffffffff */
	uint32_t rsvd20;
	uint32_t statsn, exp_cmdsn, max_cmdsn;
	uint8_t  event, vcode;          /* 36 */
	uint16_t param1, param2, param3;/* 38 */
	uint32_t rsvd44;
};

struct iscsi_bhs_reject {               /* RFC 7143 11.17 */
	uint8_t  op, flags, reason, rsvd3;
	uint8_t  ahs_len, dlen[3];
	uint8_t  rsvd8[8];
	uint32_t itt;                   /* 0xffffffff */
	uint32_t rsvd20;
	uint32_t statsn, exp_cmdsn, max_cmdsn;
	uint32_t datasn;
	uint32_t rsvd40[2];
};

union iscsi_hdr {
	struct iscsi_bhs        bhs;
	struct iscsi_bhs_cmd    cmd;
	struct iscsi_bhs_rsp    rsp;
	struct iscsi_bhs_data   data;
	struct iscsi_bhs_r2t    r2t;
	struct iscsi_bhs_tmf    tmf;
	struct iscsi_bhs_login  login;
	struct iscsi_bhs_logout logout;
	struct iscsi_bhs_async  async;
	struct iscsi_bhs_reject reject;
	uint8_t                 raw[ISCSI_BHS_LEN];
};

_Static_assert(sizeof(union iscsi_hdr) == ISCSI_BHS_LEN, "BHS is 48 bytes");
_Static_assert(sizeof(struct iscsi_bhs_login) == ISCSI_BHS_LEN, "login BHS");
_Static_assert(sizeof(struct iscsi_bhs_logout) == ISCSI_BHS_LEN, "logout BHS");
_Static_assert(sizeof(struct iscsi_bhs_async) == ISCSI_BHS_LEN, "async BHS");

#endif
