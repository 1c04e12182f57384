/* iscsi/scsi.c: the command table that drives dispatch, CDB checking and
 * REPORT SUPPORTED OPERATION CODES (FreeBSD CTL's idea), sense data, the
 * one translation of store errors into sense, unit attentions and task
 * buffers.
 *
 * Dispatch (scsi_task_prepare): LUN mapped? -> unit attention pending?
 * -> opcode (and service action) supported? -> every CDB bit set is one
 * the command defines (usage mask; a reserved bit is INVALID FIELD IN CDB
 * pointing at it, SPC-4 4.5.2.4.2) -> decode LBA/length/flags once and
 * check the range. Handlers leave through scsi_good() or one of the
 * scsi_sense*() builders; nothing else writes status or sense.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/pr.h"
#include "iscsi/scsi.h"

/* Task buffers */

int scsi_buf_init(struct scsi_buf *b, uint32_t len, uint64_t *acct)
{
	uint32_t n = (len + SCSI_BUF_CHUNK - 1) / SCSI_BUF_CHUNK;

	scsi_buf_fini(b);
	b->acct = acct;
	b->len = len;
	b->n = n;
	if (n == 0)
		return 0;
	b->iov = calloc(n, sizeof(*b->iov));
	if (!b->iov) {
		b->n = b->len = 0;
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++)
		b->iov[i].iov_len = i + 1 < n ? SCSI_BUF_CHUNK : len - i * SCSI_BUF_CHUNK;
	return 0;
}

static int scsi_buf_chunk(struct scsi_buf *b, uint32_t i, bool zero)
{
	if (b->iov[i].iov_base)
		return 0;
	/* page aligned: the store reads into it directly (O_DIRECT) */
	b->iov[i].iov_base = aligned_alloc(4096, (b->iov[i].iov_len + 4095) & ~(size_t)4095);
	if (!b->iov[i].iov_base)
		return -ENOMEM;
	if (zero)
		memset(b->iov[i].iov_base, 0, b->iov[i].iov_len);
	if (b->acct)
		*b->acct += b->iov[i].iov_len;
	return 0;
}

int scsi_buf_alloc_all(struct scsi_buf *b, bool zero)
{
	for (uint32_t i = 0; i < b->n; i++)
		if (scsi_buf_chunk(b, i, zero) < 0)
			return -ENOMEM;
	return 0;
}

void scsi_buf_fini(struct scsi_buf *b)
{
	for (uint32_t i = 0; i < b->n; i++) {
		if (!b->iov[i].iov_base)
			continue;
		if (b->acct)
			*b->acct -= b->iov[i].iov_len;
		free(b->iov[i].iov_base);
	}
	free(b->iov);
	b->iov = NULL;
	b->n = b->len = 0;
}

/* src NULL: only make sure the chunks exist (before an R2T). */
int scsi_buf_copy_in(struct scsi_buf *b, uint32_t off, const void *src, uint32_t len)
{
	while (len > 0) {
		uint32_t i = off / SCSI_BUF_CHUNK, in = off % SCSI_BUF_CHUNK;
		uint32_t n = b->iov[i].iov_len - in;

		n = n < len ? n : len;
		if (scsi_buf_chunk(b, i, true) < 0)
			return -ENOMEM;
		if (src) {
			memcpy((char *)b->iov[i].iov_base + in, src, n);
			src = (const char *)src + n;
		}
		off += n;
		len -= n;
	}
	return 0;
}

void scsi_buf_copy_out(const struct scsi_buf *b, uint32_t off, void *dst, uint32_t len)
{
	while (len > 0) {
		uint32_t i = off / SCSI_BUF_CHUNK, in = off % SCSI_BUF_CHUNK;
		uint32_t n = b->iov[i].iov_len - in;

		n = n < len ? n : len;
		if (b->iov[i].iov_base)
			memcpy(dst, (char *)b->iov[i].iov_base + in, n);
		else
			memset(dst, 0, n);
		dst = (char *)dst + n;
		off += n;
		len -= n;
	}
}

void *scsi_buf_at(const struct scsi_buf *b, uint32_t off, uint32_t *len)
{
	uint32_t i = off / SCSI_BUF_CHUNK, in = off % SCSI_BUF_CHUNK;

	*len = (uint32_t)b->iov[i].iov_len - in;
	return (char *)b->iov[i].iov_base + in;
}

struct iovec *scsi_buf_iov(const struct scsi_buf *b, uint32_t off, uint32_t len, int *iovcnt)
{
	struct iovec *iov = calloc(b->n + 1, sizeof(*iov));
	int n = 0;

	if (!iov)
		return NULL;
	while (len > 0) {
		uint32_t have;
		void *p = scsi_buf_at(b, off, &have);

		iov[n].iov_base = p;
		iov[n].iov_len = have < len ? have : len;
		off += (uint32_t)iov[n].iov_len;
		len -= (uint32_t)iov[n].iov_len;
		n++;
	}
	*iovcnt = n;
	return iov;
}

/* Status and sense (SPC-4 4.5) */

int scsi_good(struct scsi_task *t)
{
	t->status = SCSI_STATUS_GOOD;
	t->sense_len = 0;
	return SCSI_DONE;
}

int scsi_reservation_conflict(struct scsi_task *t)
{
	t->status = SCSI_STATUS_RESERVATION_CONFLICT;
	t->sense_len = 0;
	return SCSI_DONE;
}

static bool scsi_task_d_sense(const struct scsi_task *t)
{
	return t->itl && t->itl->lu->d_sense;
}

/* Builds fixed (70h) or descriptor (72h) sense as the control mode page
 * says; sks is the 3-byte sense-key specific field (0: none). */
static int scsi_sense_build(struct scsi_task *t, uint8_t key, uint16_t asc, bool info_valid,
                            uint64_t info, uint32_t sks)
{
	uint8_t *s = t->sense;

	memset(s, 0, sizeof(t->sense));
	t->status = SCSI_STATUS_CHECK_CONDITION;
	if (scsi_task_d_sense(t)) {
		uint8_t n = 8;

		s[0] = SCSI_SENSE_DESC;
		s[1] = key;
		s[2] = (uint8_t)(asc >> 8);
		s[3] = (uint8_t)asc;
		if (info_valid) {       /* information descriptor (SPC-4 4.5.2.2) */
			uint64_t be = htobe64(info);

			s[n] = 0x00;
			s[n + 1] = 0x0a;
			s[n + 2] = 0x80;
			memcpy(s + n + 4, &be, 8);
			n += 12;
		}
		if (sks) {              /* sense key specific descriptor (4.5.2.3) */
			s[n] = 0x02;
			s[n + 1] = 0x06;
			s[n + 4] = (uint8_t)(sks >> 16);
			s[n + 5] = (uint8_t)(sks >> 8);
			s[n + 6] = (uint8_t)sks;
			n += 8;
		}
		s[7] = n - 8;
		t->sense_len = n;
		return SCSI_DONE;
	}
	s[0] = SCSI_SENSE_FIXED | (info_valid ? 0x80 : 0);
	s[2] = key;
	if (info_valid) {
		uint32_t be = htobe32((uint32_t)info);

		memcpy(s + 3, &be, 4);
	}
	s[7] = 10;
	s[12] = (uint8_t)(asc >> 8);
	s[13] = (uint8_t)asc;
	s[15] = (uint8_t)(sks >> 16);
	s[16] = (uint8_t)(sks >> 8);
	s[17] = (uint8_t)sks;
	t->sense_len = 18;
	return SCSI_DONE;
}

int scsi_sense(struct scsi_task *t, uint8_t key, uint16_t asc)
{
	return scsi_sense_build(t, key, asc, false, 0, 0);
}

int scsi_sense_info(struct scsi_task *t, uint8_t key, uint16_t asc, uint64_t info)
{
	return scsi_sense_build(t, key, asc, true, info, 0);
}

/* SPC-4 4.5.2.4.2: field pointer; cdb says CDB (C/D=1) or parameter data;
 * bit < 0: no bit pointer. */
int scsi_sense_field(struct scsi_task *t, uint8_t key, uint16_t asc, bool cdb,
                     uint16_t field, int bit)
{
	uint32_t sks = 0x800000u | (cdb ? 0x400000u : 0) | field;

	if (bit >= 0)
		sks |= 0x080000u | (uint32_t)(bit & 7) << 16;
	return scsi_sense_build(t, key, asc, false, 0, sks);
}

/* The one table from store errors to SCSI (SPC-4 annex D). */
static const struct {
	int      err;
	uint8_t  status;
	uint8_t  key;
	uint16_t asc_write, asc_read;
} scsi_store_errors[] = {
	{ -ENOSPC, SCSI_STATUS_CHECK_CONDITION, SCSI_SK_DATA_PROTECT,
	  SCSI_ASC_SPACE_ALLOC_FAILED_WP, SCSI_ASC_SPACE_ALLOC_FAILED_WP },
	{ -ERANGE, SCSI_STATUS_CHECK_CONDITION, SCSI_SK_ILLEGAL_REQUEST,
	  SCSI_ASC_LBA_OUT_OF_RANGE, SCSI_ASC_LBA_OUT_OF_RANGE },
	{ STORE_EFAILED, SCSI_STATUS_CHECK_CONDITION, SCSI_SK_MEDIUM_ERROR,
	  SCSI_ASC_WRITE_ERROR, SCSI_ASC_UNRECOVERED_READ },
	{ STORE_ECORRUPT, SCSI_STATUS_CHECK_CONDITION, SCSI_SK_MEDIUM_ERROR,
	  SCSI_ASC_WRITE_ERROR, SCSI_ASC_UNRECOVERED_READ },
	{ -EIO, SCSI_STATUS_CHECK_CONDITION, SCSI_SK_MEDIUM_ERROR,
	  SCSI_ASC_WRITE_ERROR, SCSI_ASC_UNRECOVERED_READ },
	{ STORE_EREADONLY, SCSI_STATUS_CHECK_CONDITION, SCSI_SK_DATA_PROTECT,
	  SCSI_ASC_WRITE_PROTECTED, SCSI_ASC_WRITE_PROTECTED },
	{ -EROFS, SCSI_STATUS_CHECK_CONDITION, SCSI_SK_DATA_PROTECT,
	  SCSI_ASC_WRITE_PROTECTED, SCSI_ASC_WRITE_PROTECTED },
	{ -ESHUTDOWN, SCSI_STATUS_CHECK_CONDITION, SCSI_SK_NOT_READY,
	  0x0400 /* NOT READY, CAUSE NOT REPORTABLE */, 0x0400 },
	{ -ENOMEM, SCSI_STATUS_TASK_SET_FULL, 0, 0, 0 },      /* never an abort */
	{ -EAGAIN, SCSI_STATUS_TASK_SET_FULL, 0, 0, 0 },
	{ -EBUSY, SCSI_STATUS_BUSY, 0, 0, 0 },
};

int scsi_sense_store(struct scsi_task *t, int err, bool write)
{
	for (size_t i = 0; i < sizeof(scsi_store_errors) / sizeof(scsi_store_errors[0]); i++) {
		if (scsi_store_errors[i].err != err)
			continue;
		if (scsi_store_errors[i].status != SCSI_STATUS_CHECK_CONDITION) {
			t->status = scsi_store_errors[i].status;
			t->sense_len = 0;
			return SCSI_DONE;
		}
		return scsi_sense(t, scsi_store_errors[i].key, write ?
		                  scsi_store_errors[i].asc_write : scsi_store_errors[i].asc_read);
	}
	return scsi_sense(t, SCSI_SK_HARDWARE_ERROR, SCSI_ASC_INTERNAL_FAILURE);
}

int scsi_data_in(struct scsi_task *t, const void *data, uint32_t len, uint32_t alloc)
{
	uint32_t n = len < alloc ? len : alloc;

	if (scsi_buf_init(&t->buf, n, t->buf.acct) < 0 || scsi_buf_copy_in(&t->buf, 0, data, n) < 0)
		return scsi_sense_store(t, -ENOMEM, false);
	t->data_in = n;
	t->xfer = n;
	return scsi_good(t);
}

/* Unit attentions (SAM-5 5.14, SPC-4 7.4.2: what each condition reports) */

static const struct {
	uint32_t bit;
	uint16_t asc;
} scsi_uas[] = {
	{ SCSI_UA_POWER_ON,     SCSI_ASC_POWER_ON_RESET },
	{ SCSI_UA_BUS_RESET,    SCSI_ASC_BUS_RESET },
	{ SCSI_UA_DEVICE_RESET, SCSI_ASC_DEVICE_RESET },
	{ SCSI_UA_CMDS_CLEARED, SCSI_ASC_COMMANDS_CLEARED },
	{ SCSI_UA_MODE_CHANGED, SCSI_ASC_MODE_PARAMS_CHANGED },
	{ SCSI_UA_CAPACITY,     SCSI_ASC_CAPACITY_CHANGED },
	{ SCSI_UA_RES_PREEMPTED, 0x2a03 },     /* RESERVATIONS PREEMPTED */
	{ SCSI_UA_RES_RELEASED, 0x2a04 },      /* RESERVATIONS RELEASED */
	{ SCSI_UA_REG_PREEMPTED, 0x2a05 },     /* REGISTRATIONS PREEMPTED */
	{ SCSI_UA_THIN_THRESHOLD, SCSI_ASC_THIN_THRESHOLD },   /* SBC-3 4.7.3.7 */
};

/* Reports (and clears) the first pending UA of the nexus. A reset
 * condition supersedes the lesser ones it implies. */
static int scsi_ua_report(struct scsi_task *t)
{
	struct scsi_itl *itl = t->itl;

	for (size_t i = 0; i < sizeof(scsi_uas) / sizeof(scsi_uas[0]); i++) {
		if (!(itl->ua & scsi_uas[i].bit))
			continue;
		itl->ua &= ~scsi_uas[i].bit;
		if (scsi_uas[i].bit <= SCSI_UA_DEVICE_RESET)
			itl->ua &= ~(SCSI_UA_POWER_ON | SCSI_UA_BUS_RESET | SCSI_UA_DEVICE_RESET);
		return scsi_sense(t, SCSI_SK_UNIT_ATTENTION, scsi_uas[i].asc);
	}
	return SCSI_DONE;
}

void scsi_lu_ua_set(struct scsi_lu *lu, uint32_t ua, const struct scsi_itl *except)
{
	struct scsi_itl *itl;

	TAILQ_FOREACH(itl, &lu->itls, lu_link)
		if (itl != except)
			itl->ua |= ua;
}

void scsi_lu_refresh(struct scsi_lu *lu, const struct scsi_itl *itl)
{
	struct store_vol_info info;

	store_vol_get_info(lu->vol, &info);
	if (info.sectors != lu->sectors) {
		lu->sectors = info.sectors;
		scsi_lu_ua_set(lu, SCSI_UA_CAPACITY, NULL);
	}
	/* a MODE SELECT's change is in the store once durable: not ours to undo */
	if (info.write_back != lu->write_back && lu->wb_changing == 0) {
		lu->write_back = info.write_back;
		scsi_lu_ua_set(lu, SCSI_UA_MODE_CHANGED, itl);
	}
}

/* Dispatch */

const struct scsi_cmd_desc *scsi_cmd_lookup(const uint8_t *cdb)
{
	const struct scsi_cmd_desc *d = &scsi_cmds[cdb[0]];

	if (d->flags & SCMD_SA)
		d = &d->sa[cdb[1] & 0x1f];
	return d;
}

static int scsi_cdb_check(struct scsi_task *t, const struct scsi_cmd_desc *d)
{
	for (unsigned i = 1; i < d->cdb_len; i++) {
		unsigned bad = t->cdb[i] & ~d->usage[i - 1];

		if (bad)
			return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST,
			                        SCSI_ASC_INVALID_FIELD_CDB, true, (uint16_t)i,
			                        31 - __builtin_clz(bad)), 1;
	}
	return 0;
}

int scsi_task_prepare(struct scsi_task *t)
{
	const struct scsi_cmd_desc *top = &scsi_cmds[t->cdb[0]];
	const struct scsi_cmd_desc *d = scsi_cmd_lookup(t->cdb);

	t->desc = d;
	t->xfer = 0;
	if (!t->itl && !(d->flags & SCMD_NO_LUN)) {
		t->desc = NULL;
		scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_LUN_NOT_SUPPORTED);
		return 1;
	}
	if (t->itl) {
		scsi_lu_refresh(t->itl->lu, NULL);
		if (t->itl->ua && !(d->flags & SCMD_NO_UA)) {
			t->desc = NULL;
			scsi_ua_report(t);
			return 1;
		}
	}
	if (!d->exec) {
		t->desc = NULL;
		if (top->flags & SCMD_SA)       /* SPC-4: unknown service action */
			scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
			                 true, 1, 4);
		else
			scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_OPCODE);
		return 1;
	}
	if (scsi_cdb_check(t, d) != 0 || (d->decode && d->decode(t) != 0)) {
		t->desc = NULL;
		t->xfer = 0;
		return 1;
	}
	if (t->itl && pr_check(t) != 0) {
		t->desc = NULL;
		t->xfer = 0;
		return 1;
	}
	if ((d->flags & SCMD_WRITE) && (t->itl->lu->swp || t->itl->lu->snapshot)) {
		/* SPC-4 7.5.8 SWP; a snapshot is read-only */
		t->desc = NULL;
		t->xfer = 0;
		scsi_sense(t, SCSI_SK_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);
		return 1;
	}
	return 0;
}

/* A write that waited for its blocks (sbc.c ranges) runs now. */
static void scsi_task_granted(struct scsi_range *r)
{
	struct scsi_task *t = container_of(r, struct scsi_task, range);

	if (t->desc->exec(t) == SCSI_DONE)
		scsi_task_async_done(t);
}

int scsi_task_exec(struct scsi_task *t)
{
	int rc;

	if ((t->desc->flags & SCMD_WRITE) && sbc_task_lock(t, scsi_task_granted) != 0)
		return SCSI_ASYNC;
	rc = t->desc->exec(t);
	if (rc == SCSI_DONE)
		scsi_range_unlock(&t->range);
	return rc;
}

void scsi_task_async_done(struct scsi_task *t)
{
	free(t->iov);
	t->iov = NULL;
	scsi_range_unlock(&t->range);
	t->done(t);
}

void scsi_task_fini(struct scsi_task *t)
{
	free(t->iov);
	t->iov = NULL;
	scsi_buf_fini(&t->buf);
}

/* The command table (SPC-4 and SBC-3 CDB layouts; usage[i] is the set of
 * bits that may be 1 in CDB byte i + 1; the control byte allows none:
 * NACA is not supported). */
#define RW_LBA4         0xff, 0xff, 0xff, 0xff
#define RW_LBA8         RW_LBA4, RW_LBA4

static const struct scsi_cmd_desc scsi_sai16[32] = {
	[SCSI_SAI_READ_CAPACITY_16] = { "READ CAPACITY(16)", sbc_read_capacity16, NULL, NULL,
		SCMD_DATA_IN | SCMD_PR_OK, 16, { 0x1f, RW_LBA8, RW_LBA4, 0x01, 0 } },
	[SCSI_SAI_GET_LBA_STATUS] = { "GET LBA STATUS", sbc_get_lba_status, NULL, NULL,
		SCMD_DATA_IN, 16, { 0x1f, RW_LBA8, RW_LBA4, 0, 0 } },
};

static const struct scsi_cmd_desc scsi_maint_in[32] = {
	[SCSI_MI_REPORT_OPCODES] = { "REPORT SUPPORTED OPERATION CODES", spc_report_opcodes,
		NULL, NULL, SCMD_DATA_IN | SCMD_PR_OK | SCMD_RESV_OK, 12,
		{ 0x1f, 0x87, 0xff, 0xff, 0xff, RW_LBA4, 0, 0 } },
	[SCSI_MI_REPORT_TMFS] = { "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS",
		spc_report_tmfs, NULL, NULL, SCMD_DATA_IN | SCMD_PR_OK | SCMD_RESV_OK, 12,
		{ 0x1f, 0x80, 0, 0, 0, RW_LBA4, 0, 0 } },
	[SCSI_MI_REPORT_TPGS] = { "REPORT TARGET PORT GROUPS", spc_report_tpgs, NULL, NULL,
		SCMD_DATA_IN | SCMD_PR_OK | SCMD_RESV_OK, 12,
		{ 0x3f, 0, 0, 0, 0, RW_LBA4, 0, 0 } },
};

/* SPC-4 6.4, SBC-3 5.7, 5.48: third-party copy out and in */
static const struct scsi_cmd_desc scsi_tpc_out[32] = {
	[SCSI_TPC_XCOPY_LID1] = { "EXTENDED COPY(LID1)", tpc_extended_copy, tpc_decode_out,
		NULL, SCMD_DATA_OUT, 16, { 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, RW_LBA4, 0, 0 } },
	[SCSI_TPC_POPULATE_TOKEN] = { "POPULATE TOKEN", tpc_populate_token, tpc_decode_out,
		NULL, SCMD_DATA_OUT, 16, { 0x1f, 0, 0, 0, 0, RW_LBA4, RW_LBA4, 0x1f, 0 } },
	[SCSI_TPC_WRITE_USING_TOKEN] = { "WRITE USING TOKEN", tpc_write_using_token,
		tpc_decode_out, NULL, SCMD_DATA_OUT | SCMD_WRITE, 16,
		{ 0x1f, 0, 0, 0, 0, RW_LBA4, RW_LBA4, 0x1f, 0 } },
};

static const struct scsi_cmd_desc scsi_tpc_in[32] = {
	[SCSI_TPC_COPY_STATUS] = { "RECEIVE COPY STATUS(LID1)", tpc_copy_status, NULL, NULL,
		SCMD_DATA_IN, 16, { 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, RW_LBA4, 0, 0 } },
	[SCSI_TPC_OP_PARAMS] = { "RECEIVE COPY OPERATING PARAMETERS", tpc_op_params, NULL,
		NULL, SCMD_DATA_IN, 16, { 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, RW_LBA4, 0, 0 } },
	[SCSI_TPC_ROD_TOKEN_INFO] = { "RECEIVE ROD TOKEN INFORMATION", tpc_rod_token_info,
		NULL, NULL, SCMD_DATA_IN, 16, { 0x1f, RW_LBA4, 0, 0, 0, 0, RW_LBA4, 0, 0 } },
};

static const struct scsi_cmd_desc scsi_sanitize[32] = {
	[SCSI_SANITIZE_BLOCK_ERASE] = { "SANITIZE", sbc_sanitize, sbc_decode_sanitize, NULL,
		SCMD_WRITE | SCMD_DATA_OUT, 10, { 0xbf, 0, 0, 0, 0, 0, 0xff, 0xff, 0 } },
	[SCSI_SANITIZE_EXIT_FAILURE] = { "SANITIZE", sbc_sanitize, sbc_decode_sanitize, NULL,
		SCMD_DATA_OUT, 10, { 0xbf, 0, 0, 0, 0, 0, 0xff, 0xff, 0 } },
};

const struct scsi_cmd_desc scsi_cmds[256] = {
	[SCSI_TEST_UNIT_READY] = { "TEST UNIT READY", spc_test_unit_ready, NULL, NULL,
		SCMD_PR_OK, 6, { 0, 0, 0, 0, 0 } },
	[SCSI_REQUEST_SENSE] = { "REQUEST SENSE", spc_request_sense, NULL, NULL,
		SCMD_DATA_IN | SCMD_NO_UA | SCMD_NO_LUN | SCMD_PR_OK | SCMD_RESV_OK, 6,
		{ 0x01, 0, 0, 0xff, 0 } },
	[SCSI_READ_6] = { "READ(6)", sbc_read, sbc_decode_rw6, NULL,
		SCMD_DATA_IN, 6, { 0x1f, 0xff, 0xff, 0xff, 0 } },
	[SCSI_WRITE_6] = { "WRITE(6)", sbc_write, sbc_decode_rw6, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 6, { 0x1f, 0xff, 0xff, 0xff, 0 } },
	[SCSI_INQUIRY] = { "INQUIRY", spc_inquiry, NULL, NULL,
		SCMD_DATA_IN | SCMD_NO_UA | SCMD_NO_LUN | SCMD_PR_OK | SCMD_RESV_OK, 6,
		{ 0x01, 0xff, 0xff, 0xff, 0 } },
	[SCSI_MODE_SELECT_6] = { "MODE SELECT(6)", spc_mode_select, spc_decode_mode_select,
		NULL, SCMD_DATA_OUT, 6, { 0x11, 0, 0, 0xff, 0 } },
	[SCSI_RESERVE_6] = { "RESERVE(6)", pr_reserve, NULL, NULL, 0, 6, { 0, 0, 0, 0, 0 } },
	[SCSI_RELEASE_6] = { "RELEASE(6)", pr_release, NULL, NULL, SCMD_RESV_OK, 6,
		{ 0, 0, 0, 0, 0 } },
	[SCSI_MODE_SENSE_6] = { "MODE SENSE(6)", spc_mode_sense, NULL, NULL,
		SCMD_DATA_IN, 6, { 0x08, 0xff, 0xff, 0xff, 0 } },
	[SCSI_START_STOP_UNIT] = { "START STOP UNIT", spc_start_stop_unit, NULL, NULL,
		0, 6, { 0x01, 0, 0x0f, 0xf7, 0 } },
	[SCSI_READ_CAPACITY_10] = { "READ CAPACITY(10)", sbc_read_capacity10, NULL, NULL,
		SCMD_DATA_IN | SCMD_PR_OK, 10, { 0, RW_LBA4, 0, 0, 0x01, 0 } },
	[SCSI_READ_10] = { "READ(10)", sbc_read, sbc_decode_rw10, NULL,
		SCMD_DATA_IN, 10, { 0x1e, RW_LBA4, 0x1f, 0xff, 0xff, 0 } },
	[SCSI_WRITE_10] = { "WRITE(10)", sbc_write, sbc_decode_rw10, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 10, { 0x1a, RW_LBA4, 0x1f, 0xff, 0xff, 0 } },
	[SCSI_WRITE_VERIFY_10] = { "WRITE AND VERIFY(10)", sbc_write, sbc_decode_rw10, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 10, { 0x16, RW_LBA4, 0x1f, 0xff, 0xff, 0 } },
	[SCSI_VERIFY_10] = { "VERIFY(10)", sbc_verify, sbc_decode_rw10, NULL,
		SCMD_DATA_OUT, 10, { 0x16, RW_LBA4, 0x1f, 0xff, 0xff, 0 } },
	[SCSI_PRE_FETCH_10] = { "PRE-FETCH(10)", sbc_prefetch, sbc_decode_rw10, NULL,
		0, 10, { 0x02, RW_LBA4, 0x1f, 0xff, 0xff, 0 } },
	[SCSI_SYNCHRONIZE_CACHE_10] = { "SYNCHRONIZE CACHE(10)", sbc_sync_cache,
		sbc_decode_rw10, NULL, 0, 10, { 0x06, RW_LBA4, 0x1f, 0xff, 0xff, 0 } },
	[SCSI_READ_DEFECT_DATA_10] = { "READ DEFECT DATA(10)", sbc_read_defect, NULL, NULL,
		SCMD_DATA_IN, 10, { 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0 } },
	[SCSI_WRITE_SAME_10] = { "WRITE SAME(10)", sbc_write_same, sbc_decode_ws10, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 10, { 0x08, RW_LBA4, 0x1f, 0xff, 0xff, 0 } },
	[SCSI_UNMAP] = { "UNMAP", sbc_unmap, sbc_decode_unmap, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 10, { 0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0 } },
	[SCSI_LOG_SENSE] = { "LOG SENSE", spc_log_sense, NULL, NULL,
		SCMD_DATA_IN | SCMD_PR_OK | SCMD_RESV_OK, 10,
		{ 0, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0 } },
	[SCSI_SANITIZE] = { "SANITIZE", NULL, NULL, scsi_sanitize, SCMD_SA, 10, { 0 } },
	[SCSI_MODE_SELECT_10] = { "MODE SELECT(10)", spc_mode_select, spc_decode_mode_select,
		NULL, SCMD_DATA_OUT, 10, { 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0 } },
	[SCSI_RESERVE_10] = { "RESERVE(10)", pr_reserve, NULL, NULL, 0, 10,
		{ 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0 } },
	[SCSI_RELEASE_10] = { "RELEASE(10)", pr_release, NULL, NULL, SCMD_RESV_OK, 10,
		{ 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0 } },
	[SCSI_MODE_SENSE_10] = { "MODE SENSE(10)", spc_mode_sense, NULL, NULL,
		SCMD_DATA_IN, 10, { 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0 } },
	[SCSI_PERSISTENT_RESERVE_IN] = { "PERSISTENT RESERVE IN", pr_in, NULL, NULL,
		SCMD_DATA_IN | SCMD_PR_OK, 10, { 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0 } },
	[SCSI_PERSISTENT_RESERVE_OUT] = { "PERSISTENT RESERVE OUT", pr_out, pr_decode_out, NULL,
		SCMD_DATA_OUT | SCMD_PR_OK, 10, { 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0 } },
	[SCSI_EXTENDED_COPY] = { "THIRD-PARTY COPY OUT", NULL, NULL, scsi_tpc_out,
		SCMD_SA, 16, { 0 } },
	[SCSI_RECEIVE_COPY] = { "THIRD-PARTY COPY IN", NULL, NULL, scsi_tpc_in,
		SCMD_SA, 16, { 0 } },
	[SCSI_READ_16] = { "READ(16)", sbc_read, sbc_decode_rw16, NULL,
		SCMD_DATA_IN, 16, { 0x1e, RW_LBA8, RW_LBA4, 0x1f, 0 } },
	[SCSI_COMPARE_AND_WRITE] = { "COMPARE AND WRITE", sbc_compare_and_write,
		sbc_decode_caw, NULL, SCMD_DATA_OUT | SCMD_WRITE | SCMD_ATOMIC, 16,
		{ 0x1a, RW_LBA8, 0, 0, 0, 0xff, 0x1f, 0 } },
	[SCSI_WRITE_16] = { "WRITE(16)", sbc_write, sbc_decode_rw16, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 16, { 0x1a, RW_LBA8, RW_LBA4, 0x1f, 0 } },
	[SCSI_WRITE_VERIFY_16] = { "WRITE AND VERIFY(16)", sbc_write, sbc_decode_rw16, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 16, { 0x16, RW_LBA8, RW_LBA4, 0x1f, 0 } },
	[SCSI_VERIFY_16] = { "VERIFY(16)", sbc_verify, sbc_decode_rw16, NULL,
		SCMD_DATA_OUT, 16, { 0x16, RW_LBA8, RW_LBA4, 0x1f, 0 } },
	[SCSI_PRE_FETCH_16] = { "PRE-FETCH(16)", sbc_prefetch, sbc_decode_rw16, NULL,
		0, 16, { 0x02, RW_LBA8, RW_LBA4, 0x1f, 0 } },
	[SCSI_SYNCHRONIZE_CACHE_16] = { "SYNCHRONIZE CACHE(16)", sbc_sync_cache,
		sbc_decode_rw16, NULL, 0, 16, { 0x06, RW_LBA8, RW_LBA4, 0x1f, 0 } },
	[SCSI_WRITE_SAME_16] = { "WRITE SAME(16)", sbc_write_same, sbc_decode_ws16, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 16, { 0x09, RW_LBA8, RW_LBA4, 0x1f, 0 } },
	[SCSI_SERVICE_ACTION_IN_16] = { "SERVICE ACTION IN(16)", NULL, NULL, scsi_sai16,
		SCMD_SA, 16, { 0 } },
	[SCSI_REPORT_LUNS] = { "REPORT LUNS", spc_report_luns, NULL, NULL,
		SCMD_DATA_IN | SCMD_NO_UA | SCMD_NO_LUN | SCMD_PR_OK | SCMD_RESV_OK, 12,
		{ 0, 0xff, 0, 0, 0, RW_LBA4, 0, 0 } },
	[SCSI_MAINTENANCE_IN] = { "MAINTENANCE IN", NULL, NULL, scsi_maint_in,
		SCMD_SA, 12, { 0 } },
	[SCSI_READ_12] = { "READ(12)", sbc_read, sbc_decode_rw12, NULL,
		SCMD_DATA_IN, 12, { 0x1e, RW_LBA4, RW_LBA4, 0x1f, 0 } },
	[SCSI_WRITE_12] = { "WRITE(12)", sbc_write, sbc_decode_rw12, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 12, { 0x1a, RW_LBA4, RW_LBA4, 0x1f, 0 } },
	[SCSI_WRITE_VERIFY_12] = { "WRITE AND VERIFY(12)", sbc_write, sbc_decode_rw12, NULL,
		SCMD_DATA_OUT | SCMD_WRITE, 12, { 0x16, RW_LBA4, RW_LBA4, 0x1f, 0 } },
	[SCSI_VERIFY_12] = { "VERIFY(12)", sbc_verify, sbc_decode_rw12, NULL,
		SCMD_DATA_OUT, 12, { 0x16, RW_LBA4, RW_LBA4, 0x1f, 0 } },
	[SCSI_READ_DEFECT_DATA_12] = { "READ DEFECT DATA(12)", sbc_read_defect, NULL, NULL,
		SCMD_DATA_IN, 12, { 0x1f, RW_LBA4, RW_LBA4, 0, 0 } },
};
