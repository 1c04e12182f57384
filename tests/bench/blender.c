/* tests/bench/blender.c: the "VM I/O blender" load generator, an iSCSI
 * initiator on libiscsi's asynchronous API.
 *
 * N "VMs" each own an equal region of the LUN and run their own stream
 * in it: sequential within the region, random, or a mix (each I/O random
 * with a given probability). What reaches the target is those streams
 * interleaved, as a hypervisor host sends them: the blender. A total
 * queue depth of --qd commands is kept in flight; a completion hands its
 * slot to the next VM in turn, so each VM has about qd/N outstanding.
 * VMs are spread over --sessions sessions (VM i on session i % S), each
 * its own TCP connection, all served by one poll() loop.
 *
 * --verify: every logical block written carries a header (magic, LBA,
 * generation, seed, VM) and a fill derived from them, so any read checks
 * the block exactly against the last acknowledged write; two commands in
 * flight never overlap, so "last acknowledged" is well defined. After the
 * run every block written is read back and checked. --state FILE keeps
 * the generations across runs (loaded if it exists, saved at the end):
 * write, restart the target, then --readback-only verifies what the first
 * run wrote.
 *
 * Prints IOPS, MiB/s, latency percentiles and errors, then one
 * "result:" line of key=value figures for scripts. Exit status 1 on any
 * I/O error or verify mismatch, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define BLD_MAGIC        0x424c4e44u    /* "BLND" */
#define BLD_STATE_MAGIC  0x424c4e53u    /* "BLNS" */
#define SESSIONS_MAX     64
#define QD_MAX           1024
#define READBACK_BYTES   (256u << 10)   /* read-back pass: bytes a command */
#define HIST_SUB         32             /* latency buckets per power of two */
#define HIST_N           (2 * HIST_SUB + 58 * HIST_SUB)
#define REPORT_MAX       10             /* errors and mismatches printed */

/* The header at the start of every block written. */
struct bld_hdr {
	uint32_t magic;
	uint32_t seed;
	uint64_t lba;
	uint32_t gen;
	uint16_t vm;
	uint16_t pad;
};

enum pattern { PAT_SEQ, PAT_RAND, PAT_MIX };

struct opts {
	const char  *url, *initiator, *state;
	unsigned     vms, qd, sessions, read_pct, rand_pct;
	enum pattern pattern;
	uint64_t     bs_min, bs_max;    /* bytes */
	uint64_t     span;              /* bytes of the LUN used, 0: all */
	double       seconds;
	uint64_t     ops;               /* 0: no limit */
	uint32_t     seed;
	bool         verify, fill, unaligned, readback_only, seed_set;
};

struct session {
	struct iscsi_context *iscsi;
	int                   lun;
};

struct vm {
	uint64_t        start, nblk;    /* region, in blocks */
	uint64_t        cursor;         /* sequential position in the region */
	uint64_t        rng;
	struct session *s;
	unsigned        idx;
	bool            done;           /* --fill: region written once */
};

struct slot {
	struct bld     *b;
	struct vm      *vm;
	struct session *s;
	uint64_t        lba;
	uint32_t        nblk, gen;
	bool            write, busy;
	uint64_t        t0;
	unsigned char  *buf;
};

struct stats {
	uint64_t ops, rd, wr, bytes, errors, mismatches, checked, unknown;
	uint64_t lat_max, hist[HIST_N];
};

struct bld {
	struct opts     o;
	struct session  sess[SESSIONS_MAX];
	struct vm      *vms;
	struct slot    *slots;
	uint32_t        blk;            /* logical block size */
	uint64_t        nblk;           /* blocks in the span */
	uint32_t       *gen;            /* --verify: last written, 0: never */
	unsigned char  *lock;           /* --verify: block in flight */
	uint32_t        gen_next;
	unsigned        vm_next, inflight, idle;
	uint64_t        deadline, issued;
	uint64_t        rb_cursor;      /* read-back pass position */
	bool            readback, stop, fatal;
	uint64_t        rng;
	struct stats    st;
};

/* ---- small helpers ---------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(uint64_t *x, uint64_t n)
{
	return n ? splitmix(x) % n : 0;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	*out = v;
	return *end ? -1 : 0;
}

/* ---- latency histogram: log-linear, ~3 % wide buckets ------------------ */

static unsigned hist_idx(uint64_t v)
{
	unsigned msb;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	return (msb - 4) * HIST_SUB + (unsigned)(v >> (msb - 5)) - HIST_SUB;
}

static uint64_t hist_val(unsigned i)       /* the bucket's upper bound */
{
	unsigned msb;

	if (i < 2 * HIST_SUB)
		return i;
	msb = i / HIST_SUB + 4;
	return (((uint64_t)(i % HIST_SUB) + HIST_SUB + 1) << (msb - 5)) - 1;
}

static uint64_t hist_pct(const struct stats *st, double p)
{
	uint64_t n = 0, want = (uint64_t)(p / 100.0 * (double)st->ops + 0.5), v;
	unsigned i;

	if (want == 0)
		want = 1;
	for (i = 0; i < HIST_N; i++) {
		n += st->hist[i];
		if (n >= want) {
			v = hist_val(i);
			return v < st->lat_max ? v : st->lat_max;
		}
	}
	return st->lat_max;
}

/* ---- block contents ------------------------------------------------------ */

static void blk_fill(unsigned char *p, uint32_t blk, uint64_t lba, uint32_t gen,
                     uint32_t seed, unsigned vm, bool full)
{
	struct bld_hdr h = { BLD_MAGIC, seed, lba, gen, (uint16_t)vm, 0 };
	uint64_t x = lba * 0x2545f4914f6cdd1dull ^ ((uint64_t)gen << 32 | seed), w;
	uint32_t off;

	memcpy(p, &h, sizeof(h));
	if (!full)
		return;
	for (off = sizeof(h); off + 8 <= blk; off += 8) {
		w = splitmix(&x);
		memcpy(p + off, &w, 8);
	}
}

/* Checks one block read against what was last written there. */
static void blk_check(struct bld *b, const unsigned char *p, uint64_t lba)
{
	static unsigned char want[65536];
	uint32_t gen = b->gen[lba];
	struct bld_hdr h;

	if (gen == 0) {                 /* never written by us: unknown */
		b->st.unknown++;
		return;
	}
	b->st.checked++;
	blk_fill(want, b->blk, lba, gen, b->o.seed, 0, true);
	memcpy(&h, p, sizeof(h));
	/* the VM field is not part of the comparison: it is informative */
	if (memcmp(p, want, 16) == 0 && h.gen == gen &&
	    memcmp(p + sizeof(h), want + sizeof(h), b->blk - sizeof(h)) == 0)
		return;
	if (b->st.mismatches++ < REPORT_MAX)
		fprintf(stderr, "blender: MISMATCH lba %" PRIu64 ": expected gen %u seed %u, "
		        "found magic %08x lba %" PRIu64 " gen %u seed %u vm %u%s\n",
		        lba, gen, b->o.seed, h.magic, h.lba, h.gen, h.seed, h.vm,
		        h.magic == BLD_MAGIC && h.lba == lba && h.gen == gen ?
		        " (header right, data wrong)" : "");
}

/* ---- picking the next command -------------------------------------------- */

static bool range_free(struct bld *b, uint64_t lba, uint32_t n)
{
	uint32_t i;

	if (!b->lock)
		return true;
	for (i = 0; i < n; i++)
		if (b->lock[lba + i])
			return false;
	return true;
}

static void range_lock(struct bld *b, uint64_t lba, uint32_t n, unsigned char v)
{
	if (b->lock)
		memset(b->lock + lba, v, n);
}

/* A VM's next command; false if it has none now (its picks are in flight,
 * or --fill has written its region). */
static bool vm_pick(struct bld *b, struct vm *v, struct slot *sl)
{
	const struct opts *o = &b->o;
	uint32_t bmin = (uint32_t)(o->bs_min / b->blk), bmax = (uint32_t)(o->bs_max / b->blk);
	uint32_t n;
	uint64_t off;
	bool rand;
	int tries;

	if (v->done)
		return false;
	for (tries = 0; tries < 8; tries++) {
		n = bmin + (uint32_t)rnd(&v->rng, bmax - bmin + 1);
		rand = o->pattern == PAT_RAND ||
		       (o->pattern == PAT_MIX && rnd(&v->rng, 100) < o->rand_pct);
		if (rand) {
			off = rnd(&v->rng, v->nblk - n + 1);
			if (!o->unaligned && bmin == bmax)
				off -= off % n;
		} else {
			if (v->cursor + n > v->nblk) {
				if (o->fill) {
					v->done = true;
					return false;
				}
				v->cursor = 0;
			}
			off = v->cursor;
			v->cursor += n;
		}
		if (!range_free(b, v->start + off, n))
			continue;
		sl->lba = v->start + off;
		sl->nblk = n;
		sl->write = o->fill || rnd(&v->rng, 100) >= o->read_pct;
		return true;
	}
	return false;
}

/* The read-back pass: the next chunk holding a block we wrote. */
static bool readback_pick(struct bld *b, struct slot *sl)
{
	uint32_t max = READBACK_BYTES / b->blk, n;

	while (b->rb_cursor < b->nblk && b->gen[b->rb_cursor] == 0)
		b->rb_cursor++;
	if (b->rb_cursor >= b->nblk)
		return false;
	n = b->nblk - b->rb_cursor < max ? (uint32_t)(b->nblk - b->rb_cursor) : max;
	sl->lba = b->rb_cursor;
	sl->nblk = n;
	sl->write = false;
	b->rb_cursor += n;
	return true;
}

/* ---- issuing and completing ---------------------------------------------- */

static void slot_done(struct iscsi_context *iscsi, int status, void *data, void *priv);
static void slot_issue(struct slot *sl);

static void slot_report(struct slot *sl, int status, struct scsi_task *t)
{
	struct bld *b = sl->b;

	if (b->st.errors++ >= REPORT_MAX)
		return;
	if (status == SCSI_STATUS_CHECK_CONDITION && t)
		fprintf(stderr, "blender: %s lba %" PRIu64 " x %u: CHECK CONDITION %s (%s)\n",
		        sl->write ? "WRITE" : "READ", sl->lba, sl->nblk,
		        scsi_sense_key_str(t->sense.key), scsi_sense_ascq_str(t->sense.ascq));
	else
		fprintf(stderr, "blender: %s lba %" PRIu64 " x %u: status 0x%x: %s\n",
		        sl->write ? "WRITE" : "READ", sl->lba, sl->nblk, (unsigned)status,
		        iscsi_get_error(sl->s->iscsi));
}

static bool slot_next(struct slot *sl)
{
	struct bld *b = sl->b;
	unsigned i;

	if (b->readback) {
		sl->vm = NULL;
		sl->s = &b->sess[(sl - b->slots) % b->o.sessions];
		return readback_pick(b, sl);
	}
	if (b->o.ops && b->issued >= b->o.ops)
		return false;
	if (b->deadline && now_ns() >= b->deadline)
		return false;
	for (i = 0; i < b->o.vms; i++) {
		struct vm *v = &b->vms[b->vm_next];

		b->vm_next = (b->vm_next + 1) % b->o.vms;
		if (vm_pick(b, v, sl)) {
			sl->vm = v;
			sl->s = v->s;
			return true;
		}
	}
	return false;
}

static void slot_issue(struct slot *sl)
{
	struct bld *b = sl->b;
	struct scsi_task *t;
	uint32_t len, i;
	bool full = b->gen != NULL;

	if (b->stop || b->fatal || !slot_next(sl)) {
		if (!sl->busy)
			return;
		sl->busy = false;
		b->idle++;
		return;
	}
	if (!sl->busy) {
		sl->busy = true;
		b->idle--;
	}
	len = sl->nblk * b->blk;
	range_lock(b, sl->lba, sl->nblk, 1);
	b->issued++;
	b->inflight++;
	sl->t0 = now_ns();
	if (sl->write) {
		sl->gen = b->gen_next++;
		if (b->gen_next == 0)
			b->gen_next = 1;
		for (i = 0; i < sl->nblk; i++)
			blk_fill(sl->buf + (size_t)i * b->blk, b->blk, sl->lba + i, sl->gen,
			         b->o.seed, sl->vm ? sl->vm->idx : 0, full);
		t = iscsi_write16_task(sl->s->iscsi, sl->s->lun, sl->lba, sl->buf, len, (int)b->blk,
		                       0, 0, 0, 0, 0, slot_done, sl);
	} else {
		t = iscsi_read16_task(sl->s->iscsi, sl->s->lun, sl->lba, len, (int)b->blk,
		                      0, 0, 0, 0, 0, slot_done, sl);
		if (t && scsi_task_add_data_in_buffer(t, (int)len, sl->buf) != 0) {
			fprintf(stderr, "blender: no memory for a read buffer\n");
			b->fatal = true;
		}
	}
	if (!t) {
		fprintf(stderr, "blender: cannot queue a command: %s\n",
		        iscsi_get_error(sl->s->iscsi));
		b->fatal = true;
		b->inflight--;
		range_lock(b, sl->lba, sl->nblk, 0);
		sl->busy = false;
		b->idle++;
	}
}

static void slot_done(struct iscsi_context *iscsi, int status, void *data, void *priv)
{
	struct slot *sl = priv;
	struct bld *b = sl->b;
	struct scsi_task *t = data;
	uint64_t lat = now_ns() - sl->t0, i;

	(void)iscsi;
	b->inflight--;
	if (status != SCSI_STATUS_GOOD) {
		slot_report(sl, status, t);
	} else if (sl->write) {
		if (b->gen)
			for (i = 0; i < sl->nblk; i++)
				b->gen[sl->lba + i] = sl->gen;
		b->st.wr++;
	} else {
		if (b->gen)
			for (i = 0; i < sl->nblk; i++)
				blk_check(b, sl->buf + i * b->blk, sl->lba + i);
		b->st.rd++;
	}
	if (status == SCSI_STATUS_GOOD) {
		b->st.ops++;
		b->st.bytes += (uint64_t)sl->nblk * b->blk;
		b->st.hist[hist_idx(lat / 1000)]++;
		if (lat / 1000 > b->st.lat_max)
			b->st.lat_max = lat / 1000;
	}
	range_lock(b, sl->lba, sl->nblk, 0);
	if (t)
		scsi_free_scsi_task(t);
	slot_issue(sl);
	if (b->idle)            /* blocks this slot held may free a waiting one */
		for (i = 0; i < b->o.qd; i++)
			if (!b->slots[i].busy)
				slot_issue(&b->slots[i]);
}

/* ---- the loop -------------------------------------------------------------- */

static int loop_run(struct bld *b)
{
	struct pollfd pfd[SESSIONS_MAX];
	uint64_t last_tick = now_ns(), t;
	unsigned i;
	int n;

	b->idle = b->o.qd;
	for (i = 0; i < b->o.qd; i++)
		slot_issue(&b->slots[i]);
	while (b->inflight > 0) {
		for (i = 0; i < b->o.sessions; i++) {
			pfd[i].fd = iscsi_get_fd(b->sess[i].iscsi);
			pfd[i].events = (short)iscsi_which_events(b->sess[i].iscsi);
			pfd[i].revents = 0;
		}
		n = poll(pfd, b->o.sessions, 1000);
		if (n < 0 && errno != EINTR) {
			perror("blender: poll");
			return -1;
		}
		t = now_ns();
		for (i = 0; i < b->o.sessions; i++) {
			bool tick = t - last_tick > 1000000000u;

			if (!pfd[i].revents && !tick)
				continue;
			/* revents 0 once a second: libiscsi's own timeouts */
			if (iscsi_service(b->sess[i].iscsi, pfd[i].revents) < 0) {
				fprintf(stderr, "blender: session %u: %s\n", i,
				        iscsi_get_error(b->sess[i].iscsi));
				return -1;
			}
		}
		if (t - last_tick > 1000000000u)
			last_tick = t;
	}
	return b->fatal ? -1 : 0;
}

/* ---- sessions and geometry --------------------------------------------- */

static int session_open(struct bld *b, struct session *s)
{
	struct iscsi_url *u;

	s->iscsi = iscsi_create_context(b->o.initiator);
	if (!s->iscsi) {
		fprintf(stderr, "blender: cannot create an iSCSI context\n");
		return -1;
	}
	u = iscsi_parse_full_url(s->iscsi, b->o.url);
	if (!u) {
		fprintf(stderr, "blender: %s: %s\n", b->o.url, iscsi_get_error(s->iscsi));
		return -1;
	}
	iscsi_set_targetname(s->iscsi, u->target);
	iscsi_set_session_type(s->iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(s->iscsi, ISCSI_HEADER_DIGEST_NONE);
	iscsi_set_noautoreconnect(s->iscsi, 1);
	iscsi_set_timeout(s->iscsi, 60);
	if (u->user[0])
		iscsi_set_initiator_username_pwd(s->iscsi, u->user, u->passwd);
	s->lun = u->lun;
	if (iscsi_full_connect_sync(s->iscsi, u->portal, u->lun) != 0) {
		fprintf(stderr, "blender: login to %s: %s\n", b->o.url, iscsi_get_error(s->iscsi));
		iscsi_destroy_url(u);
		return -1;
	}
	iscsi_destroy_url(u);
	return 0;
}

static int geometry(struct bld *b)
{
	struct scsi_task *t = iscsi_readcapacity16_sync(b->sess[0].iscsi, b->sess[0].lun);
	struct scsi_readcapacity16 *rc;
	uint64_t cap;

	if (!t || t->status != SCSI_STATUS_GOOD || !(rc = scsi_datain_unmarshall(t))) {
		fprintf(stderr, "blender: READ CAPACITY(16): %s\n", iscsi_get_error(b->sess[0].iscsi));
		if (t)
			scsi_free_scsi_task(t);
		return -1;
	}
	b->blk = rc->block_length;
	cap = (rc->returned_lba + 1) * b->blk;
	scsi_free_scsi_task(t);
	if (b->blk < sizeof(struct bld_hdr) + 8 || b->blk > 65536) {
		fprintf(stderr, "blender: block size %u is not supported\n", b->blk);
		return -1;
	}
	if (!b->o.span || b->o.span > cap)
		b->o.span = cap;
	if (b->o.bs_min % b->blk || b->o.bs_max % b->blk || !b->o.bs_min) {
		fprintf(stderr, "blender: --bs must be a multiple of the LUN's %u-byte block\n", b->blk);
		return -1;
	}
	b->nblk = b->o.span / b->blk;
	if (b->nblk / b->o.vms < b->o.bs_max / b->blk) {
		fprintf(stderr, "blender: %u VMs' regions of %" PRIu64 " bytes are smaller than --bs\n",
		        b->o.vms, b->nblk / b->o.vms * b->blk);
		return -1;
	}
	return 0;
}

/* ---- state file: the generations of one run for the next ------------- */

static int state_load(struct bld *b)
{
	FILE *f = fopen(b->o.state, "rb");
	uint32_t hdr[4];
	uint64_t n;

	if (!f)
		return errno == ENOENT ? 0 : -1;
	if (fread(hdr, sizeof(hdr), 1, f) != 1 || fread(&n, 8, 1, f) != 1 ||
	    hdr[0] != BLD_STATE_MAGIC || hdr[1] != b->blk || n != b->nblk ||
	    fread(b->gen, 4, n, f) != n) {
		fprintf(stderr, "blender: %s: not a state file of this LUN geometry\n", b->o.state);
		fclose(f);
		return -1;
	}
	fclose(f);
	b->o.seed = hdr[2];             /* blocks carry the writer's seed */
	b->gen_next = hdr[3];
	return 1;
}

static int state_save(struct bld *b)
{
	FILE *f = fopen(b->o.state, "wb");
	uint32_t hdr[4] = { BLD_STATE_MAGIC, b->blk, b->o.seed, b->gen_next };

	if (!f || fwrite(hdr, sizeof(hdr), 1, f) != 1 || fwrite(&b->nblk, 8, 1, f) != 1 ||
	    fwrite(b->gen, 4, b->nblk, f) != b->nblk || fclose(f) != 0) {
		fprintf(stderr, "blender: cannot write %s\n", b->o.state);
		return -1;
	}
	return 0;
}

/* ---- setup and report ---------------------------------------------------- */

static int bld_setup(struct bld *b)
{
	uint64_t region, buflen;
	unsigned i;
	int r;

	for (i = 0; i < b->o.sessions; i++)
		if (session_open(b, &b->sess[i]) < 0)
			return -1;
	if (geometry(b) < 0)
		return -1;
	if (b->o.verify) {
		b->gen = calloc(b->nblk, 4);
		b->lock = calloc(b->nblk, 1);
		if (!b->gen || !b->lock)
			return -1;
		b->gen_next = 1;
		if (b->o.state && (r = state_load(b)) != 0) {
			if (r < 0)
				return -1;
			printf("blender: state %s loaded: seed %u\n", b->o.state, b->o.seed);
		}
	}
	b->vms = calloc(b->o.vms, sizeof(*b->vms));
	b->slots = calloc(b->o.qd, sizeof(*b->slots));
	if (!b->vms || !b->slots)
		return -1;
	region = b->nblk / b->o.vms;
	for (i = 0; i < b->o.vms; i++) {
		struct vm *v = &b->vms[i];

		v->idx = i;
		v->start = region * i;
		v->nblk = region;
		v->rng = (uint64_t)b->o.seed << 20 ^ i;
		v->s = &b->sess[i % b->o.sessions];
	}
	buflen = b->o.bs_max > READBACK_BYTES ? b->o.bs_max : READBACK_BYTES;
	for (i = 0; i < b->o.qd; i++) {
		b->slots[i].b = b;
		b->slots[i].buf = malloc(buflen);
		if (!b->slots[i].buf)
			return -1;
		/* incompressible, unique per slot; headers make each block unique */
		for (uint64_t j = 0; j + 8 <= buflen; j += 8) {
			uint64_t w = splitmix(&b->rng);

			memcpy(b->slots[i].buf + j, &w, 8);
		}
	}
	return 0;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void report(const char *what, const struct stats *st, double secs, double cpu)
{
	double iops = secs > 0 ? (double)st->ops / secs : 0;
	double mib = secs > 0 ? (double)st->bytes / secs / 1048576.0 : 0;

	printf("%s: %.2f s, %" PRIu64 " ops (%" PRIu64 " reads, %" PRIu64 " writes), "
	       "%.0f IOPS, %.1f MiB/s\n", what, secs, st->ops, st->rd, st->wr, iops, mib);
	printf("%s: latency us: p50 %" PRIu64 ", p99 %" PRIu64 ", p99.9 %" PRIu64
	       ", max %" PRIu64 "; errors %" PRIu64 "\n", what, hist_pct(st, 50),
	       hist_pct(st, 99), hist_pct(st, 99.9), st->lat_max, st->errors);
	printf("result: phase=%s secs=%.3f ops=%" PRIu64 " iops=%.0f mib_s=%.2f p50_us=%" PRIu64
	       " p99_us=%" PRIu64 " p999_us=%" PRIu64 " max_us=%" PRIu64 " errors=%" PRIu64
	       " mismatches=%" PRIu64 " checked=%" PRIu64 " cpu_s=%.3f\n", what, secs, st->ops,
	       iops, mib, hist_pct(st, 50), hist_pct(st, 99), hist_pct(st, 99.9), st->lat_max,
	       st->errors, st->mismatches, st->checked, cpu);
}

/* One phase: the workload (b->readback false) or the read-back pass. */
static int bld_phase(struct bld *b, const char *what)
{
	uint64_t t0 = now_ns();
	double cpu0 = cpu_seconds();
	struct stats keep = b->st;
	int r;

	memset(&b->st, 0, sizeof(b->st));
	b->deadline = !b->readback && b->o.seconds > 0 ?
	              t0 + (uint64_t)(b->o.seconds * 1e9) : 0;
	r = loop_run(b);
	report(what, &b->st, (double)(now_ns() - t0) / 1e9, cpu_seconds() - cpu0);
	if (b->gen)
		printf("%s: verify: %" PRIu64 " blocks checked, %" PRIu64 " mismatches, "
		       "%" PRIu64 " not written by blender\n", what, b->st.checked,
		       b->st.mismatches, b->st.unknown);
	b->st.errors += keep.errors;
	b->st.mismatches += keep.mismatches;
	return r;
}

/* ---- options ------------------------------------------------------------- */

static void usage(void)
{
	fputs("usage: blender [options] iscsi://HOST[:PORT]/IQN/LUN\n"
	      "  --vms N            streams, each in its own region (16)\n"
	      "  --qd N             commands in flight in all (32)\n"
	      "  --sessions N       sessions, VMs spread over them (1)\n"
	      "  --bs SIZE[-SIZE]   I/O size, or a range picked at random (4k)\n"
	      "  --pattern P        seq | rand | mix:PCT (PCT %% random) (rand)\n"
	      "  --read-pct PCT     share of reads (0)\n"
	      "  --unaligned        random offsets at any block, not multiples of --bs\n"
	      "  --time SEC         run for SEC seconds (10; 0: no limit)\n"
	      "  --ops N            stop after N commands\n"
	      "  --fill             each VM writes its region once, sequentially\n"
	      "  --span SIZE        use the first SIZE bytes of the LUN (all)\n"
	      "  --verify           stamp and check every block; read all back at the end\n"
	      "  --state FILE       --verify: generations loaded from / saved to FILE\n"
	      "  --readback-only    --verify: no workload, only the read-back pass\n"
	      "  --seed N           random seed (printed; default from the clock)\n"
	      "  --initiator IQN    initiator name\n", stderr);
	exit(2);
}

static int parse_pattern(struct opts *o, const char *s)
{
	char *end;

	if (strcmp(s, "seq") == 0)
		o->pattern = PAT_SEQ;
	else if (strcmp(s, "rand") == 0)
		o->pattern = PAT_RAND;
	else if (strncmp(s, "mix:", 4) == 0) {
		o->pattern = PAT_MIX;
		o->rand_pct = (unsigned)strtoul(s + 4, &end, 10);
		if (*end || end == s + 4 || o->rand_pct > 100)
			return -1;
	} else
		return -1;
	return 0;
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vms", 1, 0, 'v' }, { "qd", 1, 0, 'q' }, { "sessions", 1, 0, 'S' },
		{ "bs", 1, 0, 'b' }, { "pattern", 1, 0, 'p' }, { "read-pct", 1, 0, 'r' },
		{ "unaligned", 0, 0, 'u' }, { "time", 1, 0, 't' }, { "ops", 1, 0, 'n' },
		{ "fill", 0, 0, 'f' }, { "span", 1, 0, 'z' }, { "verify", 0, 0, 'V' },
		{ "state", 1, 0, 's' }, { "readback-only", 0, 0, 'R' }, { "seed", 1, 0, 'x' },
		{ "initiator", 1, 0, 'i' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	char *dash;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'v': o->vms = (unsigned)atoi(optarg); break;
		case 'q': o->qd = (unsigned)atoi(optarg); break;
		case 'S': o->sessions = (unsigned)atoi(optarg); break;
		case 'b':
			dash = strchr(optarg, '-');
			if (dash)
				*dash++ = 0;
			if (parse_size(optarg, &o->bs_min) < 0 ||
			    parse_size(dash ? dash : optarg, &o->bs_max) < 0 || o->bs_max < o->bs_min)
				usage();
			break;
		case 'p': if (parse_pattern(o, optarg) < 0) usage(); break;
		case 'r': o->read_pct = (unsigned)atoi(optarg); break;
		case 'u': o->unaligned = true; break;
		case 't': o->seconds = atof(optarg); break;
		case 'n': o->ops = strtoull(optarg, NULL, 10); break;
		case 'f': o->fill = true; break;
		case 'z': if (parse_size(optarg, &o->span) < 0) usage(); break;
		case 'V': o->verify = true; break;
		case 's': o->state = optarg; break;
		case 'R': o->readback_only = true; break;
		case 'x': o->seed = (uint32_t)strtoul(optarg, NULL, 0); o->seed_set = true; break;
		case 'i': o->initiator = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || !o->vms || !o->qd || o->qd > QD_MAX || !o->sessions ||
	    o->sessions > SESSIONS_MAX || o->read_pct > 100 || o->bs_max > (16u << 20) ||
	    ((o->state || o->readback_only) && !o->verify))
		usage();
	if (o->fill) {
		o->pattern = PAT_SEQ;
		o->seconds = 0;
	}
	o->url = argv[optind];
}

int main(int argc, char **argv)
{
	static struct bld b;
	int r = 0;

	b.o = (struct opts){ .vms = 16, .qd = 32, .sessions = 1, .bs_min = 4096, .bs_max = 4096,
	                     .pattern = PAT_RAND, .seconds = 10,
	                     .initiator = "iqn.2024-01.org.sluice.test:blender" };
	parse_opts(&b.o, argc, argv);
	if (!b.o.seed_set)
		b.o.seed = (uint32_t)(now_ns() ^ (uint64_t)getpid() << 16);
	b.rng = b.o.seed;
	if (bld_setup(&b) < 0)
		return 1;
	printf("blender: seed %u, %u VMs, %u sessions, qd %u, bs %" PRIu64 "-%" PRIu64
	       ", %s%s, %u%% reads, span %" PRIu64 " bytes, block %u\n", b.o.seed, b.o.vms,
	       b.o.sessions, b.o.qd, b.o.bs_min, b.o.bs_max,
	       b.o.fill ? "fill" : b.o.pattern == PAT_SEQ ? "seq" : b.o.pattern == PAT_RAND ?
	       "rand" : "mix", b.o.unaligned ? " unaligned" : "", b.o.read_pct, b.o.span, b.blk);
	fflush(stdout);
	if (!b.o.readback_only)
		r = bld_phase(&b, "run");
	if (r == 0 && b.gen) {
		b.readback = true;
		r = bld_phase(&b, "readback");
	}
	if (r == 0 && b.o.state && state_save(&b) < 0)
		r = -1;
	for (unsigned i = 0; i < b.o.sessions; i++)
		if (b.sess[i].iscsi) {
			if (r == 0)
				iscsi_logout_sync(b.sess[i].iscsi);
			iscsi_destroy_context(b.sess[i].iscsi);
		}
	for (unsigned i = 0; i < b.o.qd; i++)
		free(b.slots[i].buf);
	free(b.slots);
	free(b.vms);
	free(b.gen);
	free(b.lock);
	if (r < 0 || b.st.errors || b.st.mismatches) {
		printf("blender: FAILED (seed %u)\n", b.o.seed);
		return 1;
	}
	return 0;
}
