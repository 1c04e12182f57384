/* store/check.c: offline consistency check (sluice-fsck, sluiced --check).
 *
 * Opening the pool already proved the superblock, the checkpoint and the log
 * tail. This goes further: every map is structurally sound and inside its
 * volume, every extent's data is in the address table, everything in the
 * table is referenced by some map, the live-space accounting matches, and
 * every extent's data lies inside a log record whose header and data CRCs
 * still hold, so a bit that rotted in data written long ago is found here
 * rather than by a reader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

struct range {
	uint64_t start, end;            /* sectors */
};

struct check {
	struct store_pool *p;
	store_log_fn      *report;
	void              *arg;
	int                problems;
	uint64_t          *live;        /* recomputed, per segment */
	struct store_addr  seen;        /* the address table, counting map views */
	struct range     **ranges;      /* valid record data, per segment */
	uint32_t          *nranges;
	struct store_vol  *vol;
};

static void check_problem(struct check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void check_problem(struct check *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	c->problems++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->report)
		c->report(c->arg, STORE_LOG_ERR, msg);
}

/* Walks the records of one segment from offset 0, in seq order, and notes
 * where their data is. Stops at the first record that does not hold. */
static int check_scan_segment(struct check *c, uint32_t seg, char *buf)
{
	struct store_pool *p = c->p;
	uint64_t prev = 0;
	uint32_t off = 0;

	while ((uint64_t)off + 4096 <= p->seg_bytes) {
		struct fmt_rec_hdr *h = (void *)buf, copy;
		uint64_t at = FMT_DATA_OFF + (uint64_t)seg * p->seg_bytes + off;
		struct range *r;

		if (p->be->ops->read_sync(p->be, buf, 4096, at) ||
		    store_rec_check_hdr(p, h, off, STORE_ANY_SEQ) || h->seq <= prev ||
		    p->be->ops->read_sync(p->be, buf + 4096, h->hdr_bytes + h->data_bytes - 4096,
		                          at + 4096))
			break;
		copy = *h;
		h->hdr_crc = 0;
		if (store_crc(buf, copy.hdr_bytes) != copy.hdr_crc ||
		    store_crc(buf + copy.hdr_bytes, copy.data_bytes) != copy.data_crc)
			break;
		r = realloc(c->ranges[seg], (c->nranges[seg] + 1) * sizeof(*r));
		if (!r)
			return -ENOMEM;
		c->ranges[seg] = r;
		r[c->nranges[seg]].start = (at + copy.hdr_bytes) / STORE_SECTOR;
		r[c->nranges[seg]].end = (at + copy.hdr_bytes + copy.data_bytes) / STORE_SECTOR;
		c->nranges[seg]++;
		prev = copy.seq;
		off += copy.hdr_bytes + copy.data_bytes;
	}
	return 0;
}

static bool check_in_record(const struct check *c, uint32_t seg, uint64_t pba, uint64_t len)
{
	for (uint32_t i = 0; i < c->nranges[seg]; i++)
		if (pba >= c->ranges[seg][i].start && pba + len <= c->ranges[seg][i].end)
			return true;
	return false;
}

static void check_seen_live(void *arg, uint64_t la, uint64_t pba, uint64_t len, int sign)
{
	(void)la;
	struct check *c = arg;
	uint32_t s;

	if (sign > 0 && store_seg_of_sector(c->p, pba, &s))
		c->live[s] += len;
}

struct piece_ctx {
	struct check *c;
	uint64_t      lba, la;
};

static int check_piece(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	struct piece_ctx *pc = arg;
	struct check *c = pc->c;
	struct store_pool *p = c->p;
	uint64_t lba = pc->lba + (la - pc->la);
	uint32_t s, e;

	if (!store_seg_of_sector(p, pba, &s) || !store_seg_of_sector(p, pba + len - 1, &e) ||
	    s != e) {
		check_problem(c, "volume %s: sectors %llu+%llu point outside any segment",
		              c->vol->name, (unsigned long long)lba, (unsigned long long)len);
		return 0;
	}
	if (p->segs[s].state != SEG_LOG)
		check_problem(c, "volume %s: sectors %llu+%llu live in segment %u, "
		              "which is not a log segment", c->vol->name,
		              (unsigned long long)lba, (unsigned long long)len, s);
	else if (!check_in_record(c, s, pba, len))
		check_problem(c, "volume %s: sectors %llu+%llu: their log record in "
		              "segment %u fails its checksum", c->vol->name,
		              (unsigned long long)lba, (unsigned long long)len, s);
	return 0;
}

static int check_extent(void *arg, uint64_t lba, uint64_t len, uint64_t la)
{
	struct check *c = arg;
	struct piece_ctx pc = { .c = c, .lba = lba, .la = la };

	if (lba + len > c->vol->sectors)
		check_problem(c, "volume %s: extent at sector %llu runs past the end",
		              c->vol->name, (unsigned long long)lba);
	c->seen.err = 0;
	store_addr_ref(&c->seen, la, len, +1);
	if (c->seen.err || store_addr_visit(&c->p->addr, la, len, check_piece, &pc))
		check_problem(c, "volume %s: sectors %llu+%llu: their data is missing from "
		              "the address table", c->vol->name, (unsigned long long)lba,
		              (unsigned long long)len);
	return 0;
}

/* c->seen: a copy of the address table with every count at zero. */
static int check_copy_table(struct check *c)
{
	size_t n = store_addr_save_bytes(&c->p->addr), used;
	char *buf = malloc(n ? n : 1);
	int rc;

	if (!buf)
		return -ENOMEM;
	store_addr_save(&c->p->addr, buf);
	rc = store_addr_init(&c->seen, check_seen_live, c);
	if (rc == 0)
		rc = store_addr_load(&c->seen, buf, n, c->p->addr.nrecs, store_pba_ok, c->p, &used);
	free(buf);
	return rc;
}

static int check_run(struct check *c)
{
	struct store_pool *p = c->p;
	char *buf = store_alloc_aligned(STORE_BATCH_MAX_BYTES + (256u << 10));
	struct store_vol *v;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (uint32_t s = 0; s < p->nsegs && !rc; s++)
		if (p->segs[s].state == SEG_LOG && p->segs[s].live > 0)
			rc = check_scan_segment(c, s, buf);
	free(buf);
	if (rc || (rc = check_copy_table(c)))
		return rc;
	TAILQ_FOREACH(v, &p->vols, link) {
		c->vol = v;
		if (store_map_verify(&v->map))
			check_problem(c, "volume %s: map structure is inconsistent", v->name);
		store_map_visit(&v->map, 0, UINT64_MAX >> 1, check_extent, c);
	}
	if (store_addr_prune(&c->seen))
		check_problem(c, "the address table holds data that no map references");
	for (uint32_t s = 0; s < p->nsegs; s++)
		if (c->live[s] != p->segs[s].live)
			check_problem(c, "segment %u: %llu live sectors accounted, maps hold %llu",
			              s, (unsigned long long)p->segs[s].live,
			              (unsigned long long)c->live[s]);
	return 0;
}

int store_pool_check(struct store_pool *p, store_log_fn *report, void *arg)
{
	struct check c = { .p = p, .report = report, .arg = arg };
	int rc = -ENOMEM;

	c.live = calloc(p->nsegs, sizeof(*c.live));
	c.ranges = calloc(p->nsegs, sizeof(*c.ranges));
	c.nranges = calloc(p->nsegs, sizeof(*c.nranges));
	if (c.live && c.ranges && c.nranges)
		rc = check_run(&c);
	for (uint32_t s = 0; c.ranges && s < p->nsegs; s++)
		free(c.ranges[s]);
	free(c.ranges);
	free(c.nranges);
	free(c.live);
	if (c.seen.bucket)
		store_addr_fini(&c.seen);
	return rc ? rc : c.problems;
}
