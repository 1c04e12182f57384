/* iscsi/spc.c: SPC-4 primary commands: TEST UNIT READY, REQUEST SENSE,
 * INQUIRY with its VPD pages, REPORT LUNS, MODE SENSE/SELECT (caching and
 * control pages), REPORT SUPPORTED OPERATION CODES and TASK MANAGEMENT
 * FUNCTIONS, START STOP UNIT, LOG SENSE.
 *
 * VPD and mode pages are tables; the Supported VPD Pages page is built
 * from the table, so it is sorted by construction (SPC-4 7.8.14).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/scsi.h"

#define SPC_VENDOR              "SLUICE  "
#define SPC_PRODUCT             "sluice volume   "
#define SPC_REVISION            "0001"
#define SPC_INQ_MAX             1024

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	uint32_t be = htobe32(v);

	memcpy(p, &be, 4);
}

static uint32_t get16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t be;

	memcpy(&be, p, 4);
	return be32toh(be);
}

int spc_test_unit_ready(struct scsi_task *t)
{
	return scsi_good(t);
}

/* SPC-4 6.39: the pending unit attention, or NO SENSE, as parameter data */
int spc_request_sense(struct scsi_task *t)
{
	bool desc = t->cdb[1] & 0x01;
	struct scsi_task tmp = { .itl = t->itl };
	uint8_t out[SCSI_SENSE_MAX];
	uint32_t n;

	if (!t->itl) {
		scsi_sense(&tmp, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_LUN_NOT_SUPPORTED);
	} else if (t->itl->ua) {
		struct scsi_task probe = { .itl = t->itl, .cdb = { SCSI_TEST_UNIT_READY } };

		scsi_task_prepare(&probe);     /* reports and clears the first UA */
		tmp = probe;
	} else {
		scsi_sense(&tmp, SCSI_SK_NO_SENSE, SCSI_ASC_NONE);
	}
	/* convert to the format the DESC bit asks for */
	memset(out, 0, sizeof(out));
	if (desc) {
		out[0] = SCSI_SENSE_DESC;
		out[1] = tmp.sense[0] == SCSI_SENSE_DESC ? tmp.sense[1] : tmp.sense[2] & 0x0f;
		out[2] = tmp.sense[0] == SCSI_SENSE_DESC ? tmp.sense[2] : tmp.sense[12];
		out[3] = tmp.sense[0] == SCSI_SENSE_DESC ? tmp.sense[3] : tmp.sense[13];
		n = 8;
	} else {
		out[0] = SCSI_SENSE_FIXED;
		out[2] = tmp.sense[0] == SCSI_SENSE_DESC ? tmp.sense[1] : tmp.sense[2] & 0x0f;
		out[7] = 10;
		out[12] = tmp.sense[0] == SCSI_SENSE_DESC ? tmp.sense[2] : tmp.sense[12];
		out[13] = tmp.sense[0] == SCSI_SENSE_DESC ? tmp.sense[3] : tmp.sense[13];
		n = 18;
	}
	scsi_task_fini(&tmp);
	return scsi_data_in(t, out, n, t->cdb[4]);
}

/* INQUIRY (SPC-4 6.6) */

static uint32_t spc_inq_standard(const struct scsi_task *t, uint8_t *d)
{
	static const uint16_t versions[] = {
		0x00a0,         /* SAM-5 */
		0x0960,         /* iSCSI */
		0x0460,         /* SPC-4 */
		0x04c0,         /* SBC-3 */
	};

	d[0] = t->itl ? SCSI_TYPE_DISK : SCSI_LUN_NOT_PRESENT;
	d[2] = SCSI_VERSION_SPC4;
	d[3] = 0x12;                    /* HISUP, response data format 2 */
	d[4] = 96 - 5;
	d[5] |= 0x10;                   /* TPGS 01b: implicit ALUA only (SPC-4 6.4.2) */
	d[5] |= 0x08;                   /* 3PC: third-party copy (copy.c) */
	d[6] = 0x10;                    /* MULTIP: one port per portal group */
	d[7] = 0x02;                    /* CMDQUE */
	memcpy(d + 8, SPC_VENDOR, 8);
	memcpy(d + 16, SPC_PRODUCT, 16);
	memcpy(d + 32, SPC_REVISION, 4);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		put16(d + 58 + 2 * i, versions[i]);
	return 96;
}

typedef uint32_t spc_vpd_fn(const struct scsi_task *t, uint8_t *d);

static uint32_t vpd_supported(const struct scsi_task *t, uint8_t *d);

static uint32_t vpd_serial(const struct scsi_task *t, uint8_t *d)
{
	size_t n = strlen(t->itl->lu->serial);

	memcpy(d + 4, t->itl->lu->serial, n);
	return 4 + (uint32_t)n;
}

/* One designation descriptor (SPC-4 7.8.6.1); returns its length. */
static uint32_t vpd_desig(uint8_t *d, uint8_t codeset, uint8_t assoc, uint8_t type,
                          const void *id, uint32_t len, uint32_t padded)
{
	bool port = assoc != SCSI_ASSOC_LU;

	d[0] = (uint8_t)((port ? SCSI_PROTO_ISCSI << 4 : 0) | codeset);
	d[1] = (uint8_t)((port ? 0x80 : 0) | assoc << 4 | type);       /* PIV */
	d[3] = (uint8_t)padded;
	memset(d + 4, 0, padded);
	memcpy(d + 4, id, len);
	return 4 + padded;
}

static uint32_t vpd_name(uint8_t *d, uint8_t assoc, const char *name)
{
	uint32_t len = (uint32_t)strlen(name) + 1;      /* NUL-terminated */

	return vpd_desig(d, SCSI_CODESET_UTF8, assoc, SCSI_DESIG_SCSI_NAME, name, len - 1,
	                 (len + 3) & ~3u);
}

/* SPC-4 7.8.6: the LU's NAA and T10 IDs, the target port's relative
 * port, port group and name, the target device's name. */
static uint32_t vpd_device_id(const struct scsi_task *t, uint8_t *d)
{
	const struct scsi_lu *lu = t->itl->lu;
	uint8_t port[4] = { 0, 0, (uint8_t)(t->port->tpgt >> 8), (uint8_t)t->port->tpgt };
	char t10[8 + sizeof(lu->serial)], pname[256];
	uint32_t n = 4;

	n += vpd_desig(d + n, SCSI_CODESET_BINARY, SCSI_ASSOC_LU, SCSI_DESIG_NAA, lu->naa, 16, 16);
	snprintf(t10, sizeof(t10), "%s%s", SPC_VENDOR, lu->serial);
	n += vpd_desig(d + n, SCSI_CODESET_ASCII, SCSI_ASSOC_LU, SCSI_DESIG_T10, t10,
	               (uint32_t)strlen(t10), (uint32_t)strlen(t10));
	n += vpd_desig(d + n, SCSI_CODESET_BINARY, SCSI_ASSOC_PORT, SCSI_DESIG_REL_PORT, port, 4, 4);
	n += vpd_desig(d + n, SCSI_CODESET_BINARY, SCSI_ASSOC_PORT, SCSI_DESIG_TPG, port, 4, 4);
	if (t->port->target) {
		snprintf(pname, sizeof(pname), "%s,t,0x%04x", t->port->target, t->port->tpgt);
		n += vpd_name(d + n, SCSI_ASSOC_PORT, pname);
		n += vpd_name(d + n, SCSI_ASSOC_TARGET, t->port->target);
	}
	return n;
}

static uint32_t vpd_extended(const struct scsi_task *t, uint8_t *d)
{
	(void)t;
	d[5] = 0x01;                    /* SIMPSUP */
	return 64;
}

/* SBC-3 6.6.4: every limit here is what the code really accepts. */
static uint32_t vpd_block_limits(const struct scsi_task *t, uint8_t *d)
{
	uint64_t ws = htobe64(SCSI_MAX_WS_BLOCKS);

	(void)t;
	d[5] = SCSI_MAX_CAW_BLOCKS;             /* what COMPARE AND WRITE takes */
	put16(d + 6, STORE_BLOCK / SCSI_BLOCK); /* optimal granularity */
	put32(d + 8, SCSI_MAX_XFER_BLOCKS);
	put32(d + 12, SCSI_OPT_XFER_BLOCKS);
	put32(d + 16, SCSI_MAX_XFER_BLOCKS);    /* maximum prefetch */
	put32(d + 20, SCSI_MAX_UNMAP_BLOCKS);
	put32(d + 24, SCSI_MAX_UNMAP_DESCS);
	put32(d + 28, STORE_BLOCK / SCSI_BLOCK); /* optimal unmap granularity */
	d[32] = 0x80;                           /* UGAVALID, alignment 0 */
	memcpy(d + 36, &ws, 8);
	return 64;
}

static uint32_t vpd_block_chars(const struct scsi_task *t, uint8_t *d)
{
	(void)t;
	put16(d + 4, 1);                        /* non-rotating medium */
	d[7] = 0x40;    /* WABEREQ 01b: reads after BLOCK ERASE return zeros */
	return 64;
}

/* SBC-3 6.6.5: thin, UNMAP and WRITE SAME(10/16) unmap, zeros after;
 * the resource counts of LOG SENSE page 0Ch are in sets of 2^exponent
 * blocks; SBC-4's THRESHOLD PERCENTAGE is the soft threshold. */
static uint32_t vpd_lbp(const struct scsi_task *t, uint8_t *d)
{
	d[4] = SCSI_THIN_EXP;                   /* THRESHOLD EXPONENT */
	d[5] = 0x80 | 0x40 | 0x20 | 0x04;       /* LBPU LBPWS LBPWS10 LBPRZ */
	d[6] = 0x02;                            /* provisioning type: thin */
	d[7] = (uint8_t)t->itl->lu->thin_pct;   /* THRESHOLD PERCENTAGE */
	return 8;
}

static const struct {
	uint8_t     page;
	spc_vpd_fn *fn;
} spc_vpds[] = {
	{ SCSI_VPD_SUPPORTED,             vpd_supported },
	{ SCSI_VPD_SERIAL,                vpd_serial },
	{ SCSI_VPD_DEVICE_ID,             vpd_device_id },
	{ SCSI_VPD_EXTENDED_INQUIRY,      vpd_extended },
	{ SCSI_VPD_TPC,                   tpc_vpd },
	{ SCSI_VPD_BLOCK_LIMITS,          vpd_block_limits },
	{ SCSI_VPD_BLOCK_CHARACTERISTICS, vpd_block_chars },
	{ SCSI_VPD_LB_PROVISIONING,       vpd_lbp },
};
#define SPC_NVPDS (sizeof(spc_vpds) / sizeof(spc_vpds[0]))

static uint32_t vpd_supported(const struct scsi_task *t, uint8_t *d)
{
	(void)t;
	for (size_t i = 0; i < SPC_NVPDS; i++)
		d[4 + i] = spc_vpds[i].page;
	return 4 + SPC_NVPDS;
}

int spc_inquiry(struct scsi_task *t)
{
	uint8_t d[SPC_INQ_MAX] = { 0 };
	uint32_t alloc = get16(t->cdb + 3), n;

	if (!(t->cdb[1] & 0x01)) {
		if (t->cdb[2])
			return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST,
			                        SCSI_ASC_INVALID_FIELD_CDB, true, 2, 7);
		n = spc_inq_standard(t, d);
		return scsi_data_in(t, d, n, alloc);
	}
	if (!t->itl)            /* no VPD for a LUN that is not there */
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_LUN_NOT_SUPPORTED);
	for (size_t i = 0; i < SPC_NVPDS; i++) {
		if (spc_vpds[i].page != t->cdb[2])
			continue;
		n = spc_vpds[i].fn(t, d);
		d[0] = SCSI_TYPE_DISK;
		d[1] = spc_vpds[i].page;
		put16(d + 2, n - 4);
		return scsi_data_in(t, d, n, alloc);
	}
	return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB, true, 2, 7);
}

/* REPORT LUNS (SPC-4 6.33) */
int spc_report_luns(struct scsi_task *t)
{
	const struct scsi_port *p = t->port;
	uint32_t n = 8 + 8 * (uint32_t)p->nitls;
	uint8_t *d;
	int rc;

	if (t->cdb[2] > 0x02)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 2, 7);
	d = calloc(1, n);
	if (!d)
		return scsi_sense_store(t, -ENOMEM, false);
	if (t->cdb[2] == 0x01)
		n = 8;                  /* well known LUNs only: we have none */
	put32(d, n - 8);
	for (size_t i = 0; n > 8 && i < p->nitls; i++) {
		uint64_t lun = p->itls[i].lun;

		/* SAM-5 4.7: peripheral addressing below 256, flat above */
		d[8 + 8 * i] = lun < 256 ? 0 : (uint8_t)(0x40 | (lun >> 8));
		d[9 + 8 * i] = (uint8_t)lun;
	}
	rc = scsi_data_in(t, d, n, get32(t->cdb + 6));
	free(d);
	return rc;
}

/* Mode pages (SPC-4 7.5, SBC-3 6.5): caching and control. */

typedef void spc_page_fn(const struct scsi_lu *lu, unsigned pc, uint8_t *p);

static void page_caching(const struct scsi_lu *lu, unsigned pc, uint8_t *p)
{
	p[0] = SCSI_MODE_PAGE_CACHING;
	p[1] = 0x12;
	if (pc == SCSI_MODE_PC_CHANGEABLE)
		p[2] = 0x04;                            /* WCE */
	else if (pc == SCSI_MODE_PC_CURRENT)
		p[2] = lu->write_back ? 0x04 : 0;
}

static void page_control(const struct scsi_lu *lu, unsigned pc, uint8_t *p)
{
	p[0] = SCSI_MODE_PAGE_CONTROL;
	p[1] = 0x0a;
	if (pc == SCSI_MODE_PC_CHANGEABLE) {
		p[2] = 0x04;                            /* D_SENSE */
		p[4] = 0x08;                            /* SWP */
		return;
	}
	p[2] = pc == SCSI_MODE_PC_CURRENT && lu->d_sense ? 0x04 : 0;
	p[4] = pc == SCSI_MODE_PC_CURRENT && lu->swp ? 0x08 : 0;
	p[3] = 0x10;            /* QUEUE ALGORITHM MODIFIER 1: unrestricted */
	put16(p + 8, 0xffff);   /* busy timeout: unlimited */
}

static const struct {
	uint8_t      page;
	uint8_t      len;
	spc_page_fn *fn;
} spc_pages[] = {
	{ SCSI_MODE_PAGE_CACHING, 20, page_caching },
	{ SCSI_MODE_PAGE_CONTROL, 12, page_control },
};
#define SPC_NPAGES (sizeof(spc_pages) / sizeof(spc_pages[0]))

/* SBC-3 6.5.6 Logical Block Provisioning (1Ch/02h, subpage format): one
 * soft threshold on the pool's available resource count, armed on a
 * decrease, its unit attention for every nexus (SITUA 0). Read-only: the
 * threshold is the daemon's thin_threshold_percent. */
#define SPC_LBP_PAGE_LEN        24u

static void page_lbp(const struct scsi_lu *lu, unsigned pc, uint8_t *p)
{
	struct store_pool_stats st;
	uint64_t sets;

	p[0] = 0x40 | 0x1c;                     /* SPF */
	p[1] = 0x02;
	put16(p + 2, SPC_LBP_PAGE_LEN - 4);
	if (pc == SCSI_MODE_PC_CHANGEABLE || !lu->thin_pct)
		return;
	store_pool_get_stats(lu->pool, &st);
	sets = st.capacity_bytes / 100 * lu->thin_pct / (SCSI_BLOCK << SCSI_THIN_EXP);
	p[16] = 0x80;           /* ENABLED; type 0 soft, arming 0 on a decrease */
	p[17] = 0x01;           /* THRESHOLD RESOURCE: available resource count */
	put32(p + 20, sets > UINT32_MAX ? UINT32_MAX : (uint32_t)sets);
}

int spc_mode_sense(struct scsi_task *t)
{
	bool ten = t->cdb[0] == SCSI_MODE_SENSE_10, dbd = t->cdb[1] & 0x08;
	unsigned pc = t->cdb[2] >> 6, page = t->cdb[2] & 0x3f, sub = t->cdb[3];
	uint32_t hdr = ten ? 8 : 4, n, alloc = ten ? get16(t->cdb + 7) : t->cdb[4];
	const struct scsi_lu *lu = t->itl->lu;
	uint8_t d[256] = { 0 };
	bool found = false;

	if (pc == SCSI_MODE_PC_SAVED)
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_SAVING_NOT_SUPPORTED);
	if (sub != 0 && !(page == SCSI_MODE_PAGE_ALL && sub == 0xff) &&
	    !(page == 0x1c && sub == 0x02))
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 3, 7);
	n = hdr;
	if (!dbd) {             /* short block descriptor (SBC-3 6.4.2) */
		uint64_t blocks = scsi_lu_blocks(lu);

		put32(d + n, blocks > 0xffffffffu ? 0xffffffffu : (uint32_t)blocks);
		put32(d + n + 4, SCSI_BLOCK);
		n += 8;
	}
	for (size_t i = 0; i < SPC_NPAGES && sub != 0x02; i++) {
		if (page != SCSI_MODE_PAGE_ALL && page != spc_pages[i].page)
			continue;
		spc_pages[i].fn(lu, pc, d + n);
		n += spc_pages[i].len;
		found = true;
	}
	if (sub == 0xff || sub == 0x02) {       /* all pages and subpages, or it */
		page_lbp(lu, pc, d + n);
		n += SPC_LBP_PAGE_LEN;
		found = true;
	}
	if (!found)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 2, 5);
	if (ten) {
		put16(d, n - 2);
		d[3] = SCSI_MODE_DEV_DPOFUA | (lu->swp || lu->snapshot ? SCSI_MODE_DEV_WP : 0);
		put16(d + 6, dbd ? 0 : 8);
	} else {
		d[0] = (uint8_t)(n - 1);
		d[2] = SCSI_MODE_DEV_DPOFUA | (lu->swp || lu->snapshot ? SCSI_MODE_DEV_WP : 0);
		d[3] = dbd ? 0 : 8;
	}
	return scsi_data_in(t, d, n, alloc);
}

int spc_decode_mode_select(struct scsi_task *t)
{
	bool ten = t->cdb[0] == SCSI_MODE_SELECT_10;

	if (t->cdb[1] & 0x01)   /* SP: no saved pages */
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 1, 0), 1;
	t->xfer = ten ? get16(t->cdb + 7) : t->cdb[4];
	return 0;
}

static void spc_ws_done(void *arg, int err)
{
	struct scsi_task *t = arg;

	t->itl->lu->wb_changing--;
	if (err < 0)
		scsi_sense_store(t, err, true);
	else
		scsi_good(t);
	scsi_task_async_done(t);
}

/* One page of MODE SELECT: only changeable bits may differ (SPC-4 6.11). */
struct spc_select {
	bool wce, dsense, swp;
};

static int spc_select_page(struct scsi_task *t, const uint8_t *p, uint32_t off,
                           struct spc_select *sel)
{
	struct scsi_lu *lu = t->itl->lu;

	for (size_t i = 0; i < SPC_NPAGES; i++) {
		uint8_t cur[32] = { 0 }, chg[32] = { 0 };

		if ((p[0] & 0x3f) != spc_pages[i].page)
			continue;
		if (p[1] + 2u != spc_pages[i].len || (p[0] & 0x40))
			return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST,
			                        SCSI_ASC_INVALID_FIELD_PARAM, false,
			                        (uint16_t)(off + 1), 7);
		spc_pages[i].fn(lu, SCSI_MODE_PC_CURRENT, cur);
		spc_pages[i].fn(lu, SCSI_MODE_PC_CHANGEABLE, chg);
		for (uint32_t b = 2; b < spc_pages[i].len; b++)
			if ((p[b] ^ cur[b]) & ~chg[b])
				return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST,
				                        SCSI_ASC_INVALID_FIELD_PARAM, false,
				                        (uint16_t)(off + b), 7);
		if (spc_pages[i].page == SCSI_MODE_PAGE_CACHING) {
			sel->wce = p[2] & 0x04;
		} else {
			sel->dsense = p[2] & 0x04;
			sel->swp = p[4] & 0x08;
		}
		return 0;
	}
	return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_PARAM, false,
	                        (uint16_t)off, 5);
}

int spc_mode_select(struct scsi_task *t)
{
	bool ten = t->cdb[0] == SCSI_MODE_SELECT_10;
	uint32_t len = t->data_out, hdr = ten ? 8 : 4, bdl, off;
	struct scsi_lu *lu = t->itl->lu;
	struct spc_select sel = { lu->write_back, lu->d_sense, lu->swp };
	uint8_t d[256];

	if (len == 0)
		return scsi_good(t);
	if (len < hdr || len > sizeof(d))
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	scsi_buf_copy_out(&t->buf, 0, d, len);
	bdl = ten ? get16(d + 6) : d[3];
	if ((bdl != 0 && bdl != 8) || hdr + bdl > len)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_PARAM,
		                        false, ten ? 6 : 3, 7);
	for (off = hdr + bdl; off + 2 <= len; off += d[off + 1] + 2u) {
		if (off + 2u + d[off + 1] > len)
			return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
		if (spc_select_page(t, d + off, off, &sel) != 0)
			return SCSI_DONE;
	}
	if (sel.dsense != lu->d_sense || sel.wce != lu->write_back || sel.swp != lu->swp)
		scsi_lu_ua_set(lu, SCSI_UA_MODE_CHANGED, t->itl);       /* SPC-4 6.11 */
	lu->d_sense = sel.dsense;
	lu->swp = sel.swp;
	if (sel.wce == lu->write_back)
		return scsi_good(t);
	lu->write_back = sel.wce;
	lu->wb_changing++;
	store_vol_set_write_back(lu->pool, lu->name, sel.wce, spc_ws_done, t);
	return SCSI_ASYNC;
}

/* REPORT SUPPORTED OPERATION CODES (SPC-4 6.35), from the table */

static uint32_t rsoc_desc(uint8_t *d, uint8_t op, const struct scsi_cmd_desc *c, bool sa,
                          uint8_t sanum, bool rctd)
{
	d[0] = op;
	put16(d + 2, sa ? sanum : 0);
	d[5] = (uint8_t)((sa ? 0x01 : 0) | (rctd ? 0x02 : 0));   /* SERVACTV, CTDP */
	put16(d + 6, c->cdb_len);
	if (!rctd)
		return 8;
	put16(d + 8, 10);       /* command timeouts descriptor: none given */
	return 20;
}

static int rsoc_all(struct scsi_task *t, bool rctd, uint32_t alloc)
{
	uint8_t *d = calloc(1, 4 + 300 * 20);
	uint32_t n = 4;
	int rc;

	if (!d)
		return scsi_sense_store(t, -ENOMEM, false);
	for (unsigned op = 0; op < 256; op++) {
		const struct scsi_cmd_desc *c = &scsi_cmds[op];

		if (c->exec)
			n += rsoc_desc(d + n, (uint8_t)op, c, false, 0, rctd);
		for (unsigned sa = 0; (c->flags & SCMD_SA) && sa < 32; sa++)
			if (c->sa[sa].exec)
				n += rsoc_desc(d + n, (uint8_t)op, &c->sa[sa], true, (uint8_t)sa, rctd);
	}
	put32(d, n - 4);
	rc = scsi_data_in(t, d, n, alloc);
	free(d);
	return rc;
}

static int rsoc_one(struct scsi_task *t, unsigned opts, bool rctd, uint32_t alloc)
{
	const struct scsi_cmd_desc *c = &scsi_cmds[t->cdb[3]];
	uint32_t sa = get16(t->cdb + 4);
	uint8_t d[64] = { 0 };
	uint32_t n = 4;

	if ((opts == 1 && (c->flags & SCMD_SA)) || (opts == 2 && !(c->flags & SCMD_SA)))
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 2, 2);
	if (c->flags & SCMD_SA)
		c = sa < 32 ? &c->sa[sa] : NULL;
	if (c && c->exec) {
		d[1] = 0x03;                            /* supported as the standard says */
		put16(d + 2, c->cdb_len);
		d[4] = t->cdb[3];
		memcpy(d + 5, c->usage, c->cdb_len - 1u);
		n += c->cdb_len;
		if (rctd) {
			d[1] |= 0x80;                   /* CTDP */
			put16(d + n, 10);
			n += 12;
		}
	} else {
		d[1] = 0x01;                            /* not supported */
	}
	return scsi_data_in(t, d, n, alloc);
}

int spc_report_opcodes(struct scsi_task *t)
{
	unsigned opts = t->cdb[2] & 0x07;
	bool rctd = t->cdb[2] & 0x80;
	uint32_t alloc = get32(t->cdb + 6);

	if (opts == 0)
		return rsoc_all(t, rctd, alloc);
	if (opts <= 3)
		return rsoc_one(t, opts, rctd, alloc);
	return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB, true, 2, 2);
}

/* LOG SENSE (SPC-4 6.6): the supported pages (7.3.18; subpage FFh: with
 * their subpages) and Logical Block Provisioning (SBC-3 6.4.3). Counters
 * are not saveable (DS) and every page control gets the current values. */
static uint32_t log_supported(uint8_t sub, uint8_t *d)
{
	static const uint8_t pages[][2] = {
		{ SCSI_LOG_PAGE_SUPPORTED, 0x00 }, { SCSI_LOG_PAGE_SUPPORTED, 0xff },
		{ SCSI_LOG_PAGE_LBP, 0x00 },
	};
	uint32_t n = 4;

	d[0] = sub ? 0x40 : 0;                  /* SPF */
	d[1] = sub;
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		if (!sub && pages[i][1])
			continue;
		d[n++] = pages[i][0];
		if (sub)
			d[n++] = pages[i][1];
	}
	return n;
}

static uint32_t log_lbp(const struct scsi_lu *lu, uint16_t from, uint8_t *d)
{
	struct store_pool_stats st;
	uint64_t used, left, v;
	uint32_t n = 4;

	store_pool_get_stats(lu->pool, &st);
	used = st.used_bytes < st.capacity_bytes ? st.used_bytes : st.capacity_bytes;
	left = st.capacity_bytes - used;
	d[0] = 0x80 | SCSI_LOG_PAGE_LBP;        /* DS */
	for (uint16_t code = 1; code <= 2; code++) {
		if (code < from)
			continue;
		v = (code == 1 ? left : used) / (SCSI_BLOCK << SCSI_THIN_EXP);
		put16(d + n, code);     /* 1: available, 2: used resource count */
		d[n + 2] = 0x03;        /* FORMAT AND LINKING: binary */
		d[n + 3] = 8;
		put32(d + n + 4, v > UINT32_MAX ? UINT32_MAX : (uint32_t)v);
		d[n + 8] = 0x02;        /* SCOPE: the pool, not this LU's alone */
		n += 12;
	}
	return n;
}

int spc_log_sense(struct scsi_task *t)
{
	uint8_t page = t->cdb[2] & 0x3f, sub = t->cdb[3], d[64] = { 0 };
	uint16_t from = (uint16_t)scsi_get16(t->cdb + 5);
	uint32_t n;

	if (page == SCSI_LOG_PAGE_SUPPORTED && (sub == 0 || sub == 0xff) && from == 0)
		n = log_supported(sub, d);
	else if (page == SCSI_LOG_PAGE_LBP && sub == 0 && from <= 2)
		n = log_lbp(t->itl->lu, from, d);
	else if (from != 0 && (page == SCSI_LOG_PAGE_SUPPORTED || page == SCSI_LOG_PAGE_LBP))
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 5, 7);            /* PARAMETER POINTER */
	else if (page == SCSI_LOG_PAGE_SUPPORTED || page == SCSI_LOG_PAGE_LBP)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 3, 7);            /* SUBPAGE CODE */
	else
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 2, 5);            /* PAGE CODE */
	put16(d + 2, n - 4);
	return scsi_data_in(t, d, n, scsi_get16(t->cdb + 7));
}

/* REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 6.37) */
int spc_report_tmfs(struct scsi_task *t)
{
	uint8_t d[16] = { 0 };
	bool repd = t->cdb[2] & 0x80;

	d[0] = SCSI_TMF_ATS | SCSI_TMF_ATSS | SCSI_TMF_CTSS | SCSI_TMF_LURS | SCSI_TMF_TRS;
	if (repd)
		d[3] = 0x0c;    /* additional data length */
	return scsi_data_in(t, d, repd ? 16 : 4, get32(t->cdb + 6));
}

/* REPORT TARGET PORT GROUPS (SPC-4 6.36): every portal is its own port
 * group with one port (relative port id = group id = portal group tag),
 * all active/optimized, the only state supported: implicit ALUA, nothing
 * to switch (SET TARGET PORT GROUPS is not supported: invalid opcode). */
int spc_report_tpgs(struct scsi_task *t)
{
	bool ext = (t->cdb[1] >> 5) == 1;
	uint32_t hdr = ext ? 8 : 4, n = hdr;
	uint8_t d[8 + 12 * 64] = { 0 };
	uint16_t nports = t->port->nports ? t->port->nports : t->port->tpgt;

	for (uint16_t g = 1; g <= nports && g <= 64; g++) {
		d[n] = 0x00;                    /* state 0h: active/optimized */
		d[n + 1] = 0x01;                /* AO_SUP */
		put16(d + n + 2, g);
		d[n + 7] = 1;                   /* target port count */
		put16(d + n + 10, g);           /* relative target port identifier */
		n += 12;
	}
	put32(d, n - 4);
	if (ext)
		d[4] = 0x10;                    /* format type 1, no transition time */
	return scsi_data_in(t, d, n, get32(t->cdb + 6));
}

/* START STOP UNIT (SBC-3 5.25): the medium is always there; a no-op. */
int spc_start_stop_unit(struct scsi_task *t)
{
	return scsi_good(t);
}
