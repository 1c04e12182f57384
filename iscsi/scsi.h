/* iscsi/scsi.h: the SCSI command set (SPC-4, SBC-3) over store volumes,
 * private to iscsi/. The transport (session.c) hands it a task with a CDB
 * and, for data-out commands, the data; it answers with status, sense and
 * data-in. It knows nothing of PDUs.
 *
 * Task life:  scsi_task_prepare()  decode the CDB once, check the LUN and
 *                                  unit attentions, say how much data-out
 *                                  the command needs
 *             (transport collects data-out into t->buf)
 *             scsi_task_exec()     run; SCSI_DONE or SCSI_ASYNC, then
 *                                  t->done(t) exactly once on the loop
 */
#ifndef SLUICE_ISCSI_SCSI_H
#define SLUICE_ISCSI_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "iscsi/scsi_spec.h"
#include "store/store.h"

/* Big-endian fields of CDBs and parameter data */
static inline uint32_t scsi_get16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static inline uint32_t scsi_get32(const uint8_t *p)
{
	return scsi_get16(p) << 16 | scsi_get16(p + 2);
}

static inline uint64_t scsi_get64(const uint8_t *p)
{
	return (uint64_t)scsi_get32(p) << 32 | scsi_get32(p + 4);
}

static inline void scsi_put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void scsi_put32(uint8_t *p, uint32_t v)
{
	scsi_put16(p, v >> 16);
	scsi_put16(p + 2, v & 0xffff);
}

static inline void scsi_put64(uint8_t *p, uint64_t v)
{
	scsi_put32(p, (uint32_t)(v >> 32));
	scsi_put32(p + 4, (uint32_t)v);
}

#ifndef TAILQ_FOREACH_SAFE      /* BSD's, missing from glibc's sys/queue.h */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                      \
	for ((var) = TAILQ_FIRST(head);                                 \
	     (var) && ((tvar) = TAILQ_NEXT(var, field), 1);             \
	     (var) = (tvar))
#endif

#define SCSI_BLOCK              512u            /* logical block */
#define SCSI_BUF_CHUNK          (256u << 10)    /* task buffers come in chunks */
#define SCSI_MAX_XFER_BLOCKS    65536u          /* 32 MiB: VPD B0 MAXIMUM TRANSFER LENGTH */
#define SCSI_OPT_XFER_BLOCKS    2048u           /* 1 MiB */
#define SCSI_MAX_UNMAP_BLOCKS   (1u << 20)      /* per UNMAP command: 512 MiB */
#define SCSI_MAX_UNMAP_DESCS    256u
#define SCSI_MAX_WS_BLOCKS      SCSI_MAX_XFER_BLOCKS
#define SCSI_NAA_OUI            0x02534cu       /* locally administered "SL" */
#define SCSI_MAX_CAW_BLOCKS     128u            /* VPD B0 MAXIMUM COMPARE AND WRITE LENGTH */

/* The copy offload and atomic commands (copy.c, sbc.c; SPC-4 6.4, 6.18,
 * SBC-3 5.3, 5.7, 5.48) */
#define SCSI_EXTENDED_COPY      0x83u           /* THIRD-PARTY COPY OUT */
#define SCSI_RECEIVE_COPY       0x84u           /* THIRD-PARTY COPY IN */
#define SCSI_COMPARE_AND_WRITE  0x89u
#define SCSI_TPC_XCOPY_LID1     0x00u           /* service actions of 83h */
#define SCSI_TPC_POPULATE_TOKEN 0x10u
#define SCSI_TPC_WRITE_USING_TOKEN 0x11u
#define SCSI_TPC_COPY_STATUS    0x00u           /* service actions of 84h */
#define SCSI_TPC_OP_PARAMS      0x03u
#define SCSI_TPC_ROD_TOKEN_INFO 0x07u
#define SCSI_VPD_TPC            0x8fu           /* third-party copy VPD page */

/* Thin provisioning (SBC-3 4.7.3): the pool is every LU's LBA mapping
 * resource; LOG SENSE page 0Ch counts it in threshold sets of
 * 2^SCSI_THIN_EXP blocks (1 MiB), VPD B2h says so. */
#define SCSI_LOG_SENSE          0x4du
#define SCSI_LOG_PAGE_SUPPORTED 0x00u
#define SCSI_LOG_PAGE_LBP       0x0cu
#define SCSI_ASC_THIN_THRESHOLD 0x3807u         /* THIN PROVISIONING SOFT THRESHOLD REACHED */
#define SCSI_THIN_EXP           11u

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

/* A task's data: chunks of SCSI_BUF_CHUNK, allocated when first touched,
 * counted in *acct (the connection's budget). */
struct scsi_buf {
	struct iovec *iov;
	uint32_t      n;        /* chunks */
	uint32_t      len;      /* bytes */
	uint64_t     *acct;     /* may be NULL */
};

int  scsi_buf_init(struct scsi_buf *b, uint32_t len, uint64_t *acct);
int  scsi_buf_alloc_all(struct scsi_buf *b, bool zero);
void scsi_buf_fini(struct scsi_buf *b);
int  scsi_buf_copy_in(struct scsi_buf *b, uint32_t off, const void *src, uint32_t len);
void scsi_buf_copy_out(const struct scsi_buf *b, uint32_t off, void *dst, uint32_t len);
/* The chunk holding off: *len is set to what is left of it (<= max). */
void *scsi_buf_at(const struct scsi_buf *b, uint32_t off, uint32_t *len);
/* A new iovec array for [off, off + len) of b; caller frees it. */
struct iovec *scsi_buf_iov(const struct scsi_buf *b, uint32_t off, uint32_t len,
                           int *iovcnt);

/* Unit attention conditions, one bit each, reported in this order
 * (SAM-5 5.14: power on/reset first). */
enum {
	SCSI_UA_POWER_ON        = 1u << 0,      /* 29/00 */
	SCSI_UA_BUS_RESET       = 1u << 1,      /* 29/02: target reset */
	SCSI_UA_DEVICE_RESET    = 1u << 2,      /* 29/03: LUN reset */
	SCSI_UA_CMDS_CLEARED    = 1u << 3,      /* 2F/00 */
	SCSI_UA_MODE_CHANGED    = 1u << 4,      /* 2A/01 */
	SCSI_UA_CAPACITY        = 1u << 5,      /* 2A/09 */
	SCSI_UA_RES_PREEMPTED   = 1u << 6,      /* 2A/03 (SPC-4 5.13.11.2) */
	SCSI_UA_RES_RELEASED    = 1u << 7,      /* 2A/04 */
	SCSI_UA_REG_PREEMPTED   = 1u << 8,      /* 2A/05 */
	SCSI_UA_THIN_THRESHOLD  = 1u << 9,      /* 38/07 */
	SCSI_UA_ALL             = (1u << 10) - 1,
};

/* A range of a LU's blocks held by a command that writes them (sbc.c).
 * Writes share ranges; an exclusive holder (COMPARE AND WRITE) waits for
 * the writes in flight over its blocks, and later writes over them wait
 * for it, in arrival order. */
struct scsi_range;
typedef void scsi_range_fn(struct scsi_range *r);
struct scsi_range {
	TAILQ_ENTRY(scsi_range) link;           /* lu->ranges or lu->range_wait */
	struct scsi_range      *next_grant;
	struct scsi_lu         *lu;             /* NULL: neither held nor waiting */
	uint64_t                lba, end;
	bool                    excl, held;
	scsi_range_fn          *granted;        /* called once held, if it waited */
};
TAILQ_HEAD(scsi_range_list, scsi_range);

/* A ROD token of POPULATE TOKEN (copy.c), kept by the LU it describes:
 * bound to the data, so a write over any of its ranges revokes it. */
#define SCSI_TOKEN_RANGES       16u
#define SCSI_TOKENS_PER_LU      32u
struct scsi_token {
	uint64_t                id;             /* 0: free slot */
	uint8_t                 secret[16];     /* a token must come from us */
	uint64_t                used_ns;        /* for the inactivity timeout */
	uint32_t                timeout;        /* seconds */
	uint32_t                rod_type;
	bool                    revoked;        /* its data was written */
	uint64_t                blocks;
	uint32_t                nranges;
	struct { uint64_t lba; uint32_t n; } ranges[SCSI_TOKEN_RANGES];
};

/* A volume as a logical unit, shared by every session that maps it. */
/* Who hears of each READ and WRITE done on a LUN (the daemon feeds the
 * API's per-volume statistics with it). */
struct scsi_io_hook {
	void  (*fn)(void *arg, const char *volume, bool write, uint64_t bytes,
	            uint64_t latency_ns);
	void   *arg;
};

struct scsi_lu {
	LIST_ENTRY(scsi_lu)     link;           /* the server's open LUs */
	TAILQ_HEAD(, scsi_itl)  itls;           /* nexuses, for unit attentions */
	int                     refs;
	struct store_pool      *pool;
	struct store_vol       *vol;
	char                    name[STORE_FULL_NAME_MAX + 1];  /* a snapshot's is vol@snap */
	const struct scsi_io_hook *io;          /* the server's; fn may be NULL */
	uint32_t                vol_id;
	uint8_t                 naa[16];        /* NAA-6 (SPC-4 7.8.6.6.5) */
	char                    serial[40];
	uint64_t                sectors;        /* last seen: a change is a UA */
	bool                    write_back;     /* last seen */
	uint32_t                wb_changing;    /* MODE SELECTs changing it, in flight */
	bool                    d_sense;        /* control mode page D_SENSE */
	bool                    swp;            /* control mode page SWP: read-only */
	bool                    snapshot;       /* a snapshot: read-only whatever SWP says */
	struct pr_lu           *pr;             /* reservations (pr.h): outlive the LU */
	/* sbc.c: the pool's soft threshold, looked at after writes */
	uint32_t                thin_pct;       /* % of the pool left; 0: never */
	bool                    thin_low;       /* below it: its UA was raised */
	uint64_t                thin_bytes;     /* written since the last look */
	uint64_t                thin_next_ns;   /* look again from then on, */
	uint64_t                thin_step;      /* or after this many bytes */
	/* sbc.c: ranges held by writes in flight, and those waiting */
	struct scsi_range_list  ranges, range_wait;
	uint32_t                range_excl;     /* exclusive holders */
	bool                    range_init;
	/* copy.c: ROD tokens */
	uint32_t                ntokens;        /* slots in use */
	struct scsi_token       tokens[SCSI_TOKENS_PER_LU];
};
LIST_HEAD(scsi_lu_list, scsi_lu);

/* An I_T_L nexus: one session's view of one LUN. */
struct scsi_itl {
	TAILQ_ENTRY(scsi_itl)   lu_link;
	struct scsi_lu         *lu;
	uint64_t                lun;
	uint32_t                ua;             /* pending SCSI_UA_* */
	const struct scsi_port *port;           /* its I_T nexus */
	/* copy.c: results of the nexus's last copies, by list identifier
	 * (RECEIVE COPY RESULTS, RECEIVE ROD TOKEN INFORMATION) */
	struct scsi_copy_rec {
		uint32_t        list_id;
		uint8_t         sa;             /* 83h service action */
		uint8_t         state;          /* SPC-4 copy operation status; 0: free */
		uint8_t         status;         /* SCSI status it ended with */
		uint8_t         sense_len;
		uint16_t        segments;       /* processed */
		uint64_t        blocks;         /* transferred */
		uint64_t        token;          /* POPULATE TOKEN: its id */
		uint8_t         sense[SCSI_SENSE_MAX];
	} copies[4];
	uint32_t                copy_next;      /* ring of copies[] */
};

/* The I_T nexus a task arrived on: what INQUIRY and REPORT LUNS describe. */
#define SCSI_IPORT_MAX          255
struct scsi_port {
	const char             *target;         /* iqn */
	uint16_t                tpgt;           /* relative port = port group */
	uint16_t                nports;         /* the target's ports: 1..nports */
	struct scsi_itl        *itls;
	size_t                  nitls;
	char                    iport[SCSI_IPORT_MAX + 1]; /* initiator port (pr.h) */
	/* Aborts the nexus's tasks on lu (PREEMPT AND ABORT); 1 if some are
	 * still in store I/O: done(arg) runs, on the loop, once they are
	 * gone. May be NULL. */
	int                   (*abort)(const struct scsi_port *p, struct scsi_lu *lu,
	                               void (*done)(void *arg), void *arg);
};

/* CDB decoded once (CTL's ctl_lba_len_flags). */
struct scsi_req {
	uint64_t lba;
	uint32_t nblocks;
	uint32_t flags;
};
#define SCSI_RQ_FUA             0x01u
#define SCSI_RQ_DPO             0x02u
#define SCSI_RQ_UNMAP           0x04u
#define SCSI_RQ_NDOB            0x08u
#define SCSI_RQ_BYTCHK          0x10u
#define SCSI_RQ_IMMED           0x20u

struct scsi_task;
struct pr_lu;
typedef void scsi_done_fn(struct scsi_task *t);

struct scsi_task {
	/* set by the transport */
	uint8_t                 cdb[16];
	uint64_t                lun;
	struct scsi_itl        *itl;            /* NULL: LUN not mapped */
	const struct scsi_port *port;
	uint32_t                edtl;           /* iSCSI Expected Data Transfer Length */
	struct scsi_buf         buf;            /* data-out received, or data-in */
	uint32_t                data_out;       /* bytes of data-out in buf */
	scsi_done_fn           *done;
	/* set by the command set */
	const struct scsi_cmd_desc *desc;
	struct scsi_req         req;
	uint32_t                xfer;           /* bytes the CDB moves: residuals */
	uint32_t                data_in;        /* bytes of data-in in buf */
	uint8_t                 status;
	uint8_t                 sense_len;
	uint8_t                 sense[SCSI_SENSE_MAX];
	/* private to the command set */
	struct iovec           *iov;
	uint64_t                pos, end;       /* progress of multi-step commands */
	uint64_t                started_ns;     /* READ, WRITE: for the I/O hook */
	int                     err;
	void                   *priv;
	struct scsi_range       range;          /* blocks held while a write runs */
};

/* Command descriptor flags */
#define SCMD_DATA_OUT           0x01u   /* takes data-out (xfer set by prepare) */
#define SCMD_DATA_IN            0x02u
#define SCMD_SA                 0x04u   /* look up cdb[1] & 0x1f in .sa */
#define SCMD_NO_UA              0x08u   /* runs with a unit attention pending */
#define SCMD_NO_LUN             0x10u   /* runs on an unmapped LUN */
#define SCMD_WRITE              0x20u   /* changes the medium */
#define SCMD_PR_OK              0x0400u /* allowed under any persistent reservation */
#define SCMD_RESV_OK            0x0800u /* allowed under another's RESERVE (SPC-2) */
#define SCMD_ATOMIC             0x1000u /* holds its blocks alone (sbc.c ranges) */

enum { SCSI_DONE = 0, SCSI_ASYNC = 1 };

typedef int scsi_exec_fn(struct scsi_task *t);
/* 0: decoded; 1: refused, with the sense already set. */
typedef int scsi_decode_fn(struct scsi_task *t);

struct scsi_cmd_desc {
	const char                 *name;   /* logs */
	scsi_exec_fn               *exec;   /* NULL: not supported */
	scsi_decode_fn             *decode; /* NULL: nothing to decode */
	const struct scsi_cmd_desc *sa;     /* service actions, 32 entries */
	uint16_t                    flags;
	uint8_t                     cdb_len;
	uint8_t                     usage[15]; /* allowed bits of CDB bytes 1.. */
};

/* scsi.c: dispatch, sense, errors */
extern const struct scsi_cmd_desc scsi_cmds[256];
/* 0: go on (t->xfer is the data-out needed if SCMD_DATA_OUT); 1: t is
 * complete already (status and sense set), send it. */
int  scsi_task_prepare(struct scsi_task *t);
int  scsi_task_exec(struct scsi_task *t);
void scsi_task_fini(struct scsi_task *t);
const struct scsi_cmd_desc *scsi_cmd_lookup(const uint8_t *cdb);
int  scsi_sense(struct scsi_task *t, uint8_t key, uint16_t asc);
int  scsi_sense_field(struct scsi_task *t, uint8_t key, uint16_t asc, bool cdb,
                      uint16_t field, int bit);
int  scsi_sense_info(struct scsi_task *t, uint8_t key, uint16_t asc, uint64_t info);
/* A store error as sense (the one table); write says which way it failed. */
int  scsi_sense_store(struct scsi_task *t, int err, bool write);
int  scsi_good(struct scsi_task *t);
int  scsi_reservation_conflict(struct scsi_task *t);
/* Copies len bytes of data-in, cut to the allocation length alloc. */
int  scsi_data_in(struct scsi_task *t, const void *data, uint32_t len, uint32_t alloc);
void scsi_task_async_done(struct scsi_task *t);
/* Sets ua on every nexus of lu but except (may be NULL). */
void scsi_lu_ua_set(struct scsi_lu *lu, uint32_t ua, const struct scsi_itl *except);
/* Notices a resize or a write-cache change made elsewhere. */
void scsi_lu_refresh(struct scsi_lu *lu, const struct scsi_itl *itl);

/* lu.c: logical units */
int  scsi_lu_get(struct store_pool *p, const uint8_t uuid[16], const struct scsi_io_hook *io,
                 struct scsi_lu_list *lus,
                 const char *vol, struct scsi_lu **out);
void scsi_lu_put(struct scsi_lu *lu);
void scsi_itl_attach(struct scsi_itl *itl, struct scsi_lu *lu, uint64_t lun);
void scsi_itl_detach(struct scsi_itl *itl);
uint64_t scsi_lu_blocks(const struct scsi_lu *lu);

/* spc.c and sbc.c: command handlers and decoders named in scsi_cmds[] */
scsi_exec_fn spc_test_unit_ready, spc_request_sense, spc_inquiry, spc_report_luns,
	spc_mode_sense, spc_mode_select, spc_report_opcodes, spc_report_tmfs,
	spc_start_stop_unit, spc_report_tpgs, spc_log_sense;
scsi_decode_fn spc_decode_mode_select;
scsi_exec_fn sbc_read, sbc_write, sbc_verify, sbc_sync_cache, sbc_prefetch,
	sbc_read_capacity10, sbc_read_capacity16, sbc_get_lba_status, sbc_unmap,
	sbc_write_same, sbc_sanitize, sbc_read_defect, sbc_compare_and_write;
scsi_decode_fn sbc_decode_rw6, sbc_decode_rw10, sbc_decode_rw12, sbc_decode_rw16,
	sbc_decode_ws10, sbc_decode_ws16, sbc_decode_unmap, sbc_decode_sanitize,
	sbc_decode_caw;

/* sbc.c: compares the pool's free space with lu->thin_pct after bytes
 * were written (force: now, as after an UNMAP); raises the soft threshold
 * UA on every nexus when it falls below, re-arms once it is above. */
void sbc_thin_check(struct scsi_lu *lu, uint64_t bytes, bool force);

/* sbc.c: block ranges. scsi_range_lock(): 0 held now, 1 queued (granted()
 * runs once held); a SCSI_RANGE_WRITE lock revokes the ROD tokens it
 * overlaps. */
#define SCSI_RANGE_EXCL         0x1u    /* alone on its blocks */
#define SCSI_RANGE_WRITE        0x2u    /* its holder writes them */
int  scsi_range_lock(struct scsi_lu *lu, struct scsi_range *r, uint64_t lba, uint64_t n,
                     unsigned flags, scsi_range_fn *granted);
void scsi_range_unlock(struct scsi_range *r);
/* The range a write-like task holds while it runs: 0 go, 1 queued. */
int  sbc_task_lock(struct scsi_task *t, scsi_range_fn *granted);

/* copy.c: EXTENDED COPY (LID1), POPULATE TOKEN, WRITE USING TOKEN,
 * RECEIVE COPY RESULTS, RECEIVE ROD TOKEN INFORMATION, VPD 8Fh */
scsi_exec_fn tpc_extended_copy, tpc_populate_token, tpc_write_using_token,
	tpc_copy_status, tpc_op_params, tpc_rod_token_info;
scsi_decode_fn tpc_decode_out;
uint32_t tpc_vpd(const struct scsi_task *t, uint8_t *d);
/* Revokes lu's tokens over [lba, end): their data is being written. */
void tpc_lu_written(struct scsi_lu *lu, uint64_t lba, uint64_t end);

#endif
