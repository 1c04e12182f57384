/* store/addr.c: the address table (store/addr.h says what and why). */
#include "store/addr.h"
#include "store/thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define OFF_MASK        ((1ull << ADDR_OFF_BITS) - 1)

struct addr_run {
	uint16_t off, len;              /* sectors into the record's data */
	uint32_t refs;
	uint64_t pba;
};

struct addr_rec {
	struct addr_rec *next;          /* hash chain */
	uint64_t         seq;
	uint32_t         n, cap;
	struct addr_run *run;
	uint32_t         gen;           /* a running save's: written, or made since */
};

/* ---- replay's second thread ------------------------------------------------ *
 *
 * Replay applies hundreds of thousands of entries, each a map change and a
 * few address table changes, both bound by cache misses. While deferred,
 * the adds and reference changes (all the maps report) go in order to a
 * worker thread in batches, so the two halves run on two cores; the
 * caller goes on without their results (errors are sticky and surface at
 * the end). Any other call first waits until the worker has caught up and
 * then runs on the caller's thread, the worker idle: the table has one user
 * at a time. */
#define DQ_BATCH   4096
#define DQ_BATCHES 4

struct addr_op {
	uint64_t la, pba;               /* pba: an add's */
	uint32_t len;
	int32_t  delta;                 /* 0: an add */
};

struct addr_defer {
	pthread_t        thread;
	pthread_mutex_t  mu;
	pthread_cond_t   cv;
	struct addr_op  *batch[DQ_BATCHES];
	uint32_t         n[DQ_BATCHES];
	uint64_t         head, tail;    /* batches done by the worker, handed to it */
	bool             stop;
	int              err;           /* the worker's, until merged into t->err */
};

static _Thread_local bool dq_worker;    /* this thread is a table's worker */

static void addr_fail(struct store_addr *t, int err)
{
	if (dq_worker)
		t->dq->err = err;       /* t->err is the caller's to read meanwhile */
	else
		t->err = err;
}

static uint64_t seq_hash(uint64_t seq)
{
	return seq * 0x9e3779b97f4a7c15ull >> 20;
}

int store_addr_init(struct store_addr *t, addr_live_fn *live, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->mask = 1023;
	t->bucket = calloc(t->mask + 1, sizeof(*t->bucket));
	t->live_fn = live;
	t->live_arg = arg;
	return t->bucket ? 0 : -ENOMEM;
}

void store_addr_fini(struct store_addr *t)
{
	store_addr_defer_stop(t);
	for (uint64_t b = 0; t->bucket && b <= t->mask; b++) {
		struct addr_rec *r = t->bucket[b], *next;

		for (; r; r = next) {
			next = r->next;
			free(r->run);
			free(r);
		}
	}
	free(t->bucket);
	t->bucket = NULL;
}

static struct addr_rec **rec_slot(const struct store_addr *t, uint64_t seq)
{
	struct addr_rec **pp = &t->bucket[seq_hash(seq) & t->mask];

	while (*pp && (*pp)->seq != seq)
		pp = &(*pp)->next;
	return pp;
}

static void table_grow(struct store_addr *t)
{
	uint64_t mask = t->mask * 2 + 1;
	struct addr_rec **b = calloc(mask + 1, sizeof(*b));

	if (!b)
		return;         /* longer chains, still correct */
	for (uint64_t i = 0; i <= t->mask; i++) {
		struct addr_rec *r = t->bucket[i], *next;

		for (; r; r = next) {
			next = r->next;
			r->next = b[seq_hash(r->seq) & mask];
			b[seq_hash(r->seq) & mask] = r;
		}
	}
	free(t->bucket);
	t->bucket = b;
	t->mask = mask;
}

static struct addr_rec *rec_get(struct store_addr *t, uint64_t seq, bool create)
{
	struct addr_rec **pp = rec_slot(t, seq), *r;

	if (*pp || !create)
		return *pp;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->seq = seq;
	r->gen = t->sv.active ? t->sv.gen : 0;  /* not part of a running save */
	*pp = r;
	/* chains of one: each link is a miss; a running save walks buckets */
	if (++t->nrecs > t->mask + 1 && !t->sv.active)
		table_grow(t);
	return r;
}

static void rec_drop(struct store_addr *t, struct addr_rec *r)
{
	struct addr_rec **pp = rec_slot(t, r->seq);

	*pp = r->next;
	t->nrecs--;
	free(r->run);
	free(r);
}

/* Writes r as a checkpoint saves it: seq, run count, runs. */
static size_t rec_write(const struct addr_rec *r, char *buf)
{
	uint32_t hdr[2] = { r->n, 0 };
	size_t off = 16;

	memcpy(buf, &r->seq, 8);
	memcpy(buf + 8, hdr, 8);
	for (uint32_t i = 0; i < r->n; i++) {
		uint16_t w[4] = { r->run[i].off, r->run[i].len, 0, 0 };

		memcpy(buf + off, w, 8);
		memcpy(buf + off + 8, &r->run[i].pba, 8);
		off += 16;
	}
	return off;
}

/* r is about to change: a running save takes it first, as it is. */
static void rec_keep(struct store_addr *t, struct addr_rec *r)
{
	if (!t->sv.active || r->gen == t->sv.gen)
		return;
	t->sv.len += rec_write(r, t->sv.buf + t->sv.len);
	t->sv.recs++;
	r->gen = t->sv.gen;
}

static int rec_room(struct addr_rec *r, uint32_t more)
{
	struct addr_run *v;
	uint32_t cap;

	if (r->n + more <= r->cap)
		return 0;
	cap = r->cap ? r->cap * 2 : 4;
	while (cap < r->n + more)
		cap *= 2;
	v = realloc(r->run, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	r->run = v;
	r->cap = cap;
	return 0;
}

/* Index of the first run ending after off. */
static uint32_t run_find(const struct addr_rec *r, uint64_t off)
{
	uint32_t lo = 0, hi = r->n;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if ((uint64_t)r->run[mid].off + r->run[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Cuts run i in two at off (strictly inside it); room must be there. */
static void run_split(struct addr_rec *r, uint32_t i, uint64_t off)
{
	struct addr_run *a = &r->run[i];
	uint16_t head = (uint16_t)(off - a->off);

	memmove(&r->run[i + 1], &r->run[i], (r->n - i) * sizeof(*a));
	r->n++;
	a->len = head;
	r->run[i + 1].off = (uint16_t)off;
	r->run[i + 1].len -= head;
	r->run[i + 1].pba += head;
}

/* Index of the run starting at o, cutting the run around o in two if o
 * falls inside it (room for one more run must be there). */
static uint32_t run_start(struct store_addr *t, struct addr_rec *r, uint64_t o)
{
	uint32_t i = run_find(r, o);

	if (i < r->n && r->run[i].off < o) {
		run_split(r, i, o);
		t->nruns++;
		i++;
	}
	return i;
}

static bool runs_join(const struct addr_run *a, const struct addr_run *b)
{
	return a->off + a->len == b->off && a->pba + a->len == b->pba &&
	       a->refs == b->refs && (uint32_t)a->len + b->len <= UINT16_MAX;
}

/* Merges neighbours among runs [lo, hi]. */
static void runs_merge(struct store_addr *t, struct addr_rec *r, uint32_t lo, uint32_t hi)
{
	uint32_t i = lo ? lo - 1 : 0;

	if (hi >= r->n)
		hi = r->n ? r->n - 1 : 0;
	while (i < hi && i + 1 < r->n) {
		if (!runs_join(&r->run[i], &r->run[i + 1])) {
			i++;
			continue;
		}
		r->run[i].len += r->run[i + 1].len;
		memmove(&r->run[i + 1], &r->run[i + 2], (r->n - i - 2) * sizeof(r->run[0]));
		r->n--;
		t->nruns--;
		hi--;
	}
}

static int addr_add_now(struct store_addr *t, uint64_t la, uint64_t len, uint64_t pba)
{
	uint64_t off = la & OFF_MASK;
	struct addr_rec *r;
	uint32_t i;

	r = rec_get(t, la >> ADDR_OFF_BITS, true);
	if (!r)
		return -ENOMEM;
	rec_keep(t, r);
	if (rec_room(r, 1)) {
		if (r->n == 0)
			rec_drop(t, r);         /* leave no empty record behind */
		return -ENOMEM;
	}
	i = run_find(r, off);
	if (i < r->n && r->run[i].off < off + len)
		return -EEXIST;         /* a log address is written once */
	memmove(&r->run[i + 1], &r->run[i], (r->n - i) * sizeof(r->run[0]));
	r->run[i] = (struct addr_run){ .off = (uint16_t)off, .len = (uint16_t)len, .pba = pba };
	r->n++;
	t->nruns++;
	return 0;
}

static void run_live(struct store_addr *t, const struct addr_rec *r,
                     const struct addr_run *a, int sign)
{
	t->live += sign > 0 ? a->len : -(uint64_t)a->len;
	if (t->live_fn)
		t->live_fn(t->live_arg, addr_la(r->seq, a->off), a->pba, a->len, sign);
}

/* The common death, of sectors [o, e) strictly inside a run only one leaf
 * holds (an overwrite in the middle of older data): the run becomes head
 * and tail with one move of the runs after it, where splitting twice and
 * dropping the middle moves them three times. Room for one more run must
 * be there. False when that is not the case (nothing has changed). */
static bool ref_punch(struct store_addr *t, struct addr_rec *r, uint64_t o, uint64_t e)
{
	uint32_t i = run_find(r, o);
	struct addr_run *a = &r->run[i], dead, tail;

	if (i >= r->n || a->off >= o || (uint64_t)a->off + a->len <= e || a->refs != 1)
		return false;
	dead = (struct addr_run){ .off = (uint16_t)o, .len = (uint16_t)(e - o),
	                          .pba = a->pba + (o - a->off) };
	tail = (struct addr_run){ .off = (uint16_t)e, .len = (uint16_t)(a->off + a->len - e),
	                          .refs = 1, .pba = a->pba + (e - a->off) };
	memmove(&r->run[i + 2], &r->run[i + 1], (r->n - i - 1) * sizeof(*a));
	a->len = (uint16_t)(o - a->off);
	r->run[i + 1] = tail;
	r->n++;
	t->nruns++;
	run_live(t, r, &dead, -1);
	return true;
}

static void addr_ref_now(struct store_addr *t, uint64_t la, uint64_t len, int delta)
{
	struct addr_rec *r = rec_get(t, la >> ADDR_OFF_BITS, false);
	uint64_t o = la & OFF_MASK, e = o + len;
	uint32_t i, first;

	if (!r || e > OFF_MASK + 1) {
		addr_fail(t, -EUCLEAN);
		return;
	}
	rec_keep(t, r);
	if (rec_room(r, 2)) {
		addr_fail(t, -ENOMEM);
		return;
	}
	if (delta < 0 && ref_punch(t, r, o, e))
		return;
	i = first = run_start(t, r, o);
	while (o < e) {
		struct addr_run *a;

		if (i >= r->n || r->run[i].off != o) {
			addr_fail(t, -EUCLEAN);      /* part of the range is not in the table */
			break;
		}
		if ((uint64_t)r->run[i].off + r->run[i].len > e) {
			if (rec_room(r, 1)) {
				addr_fail(t, -ENOMEM);
				break;
			}
			run_split(r, i, e);
			t->nruns++;
		}
		a = &r->run[i];
		o += a->len;
		if (delta > 0) {
			if (a->refs++ == 0)
				run_live(t, r, a, +1);
			i++;
			continue;
		}
		if (a->refs == 0) {
			addr_fail(t, -EUCLEAN);      /* dropped more often than taken */
			break;
		}
		if (--a->refs > 0) {
			i++;
			continue;
		}
		run_live(t, r, a, -1);
		memmove(&r->run[i], &r->run[i + 1], (r->n - i - 1) * sizeof(*a));
		r->n--;
		t->nruns--;
	}
	if (r->n == 0)
		rec_drop(t, r);
	else
		runs_merge(t, r, first, i);
}

static void addr_prefetch_now(const struct store_addr *t, uint64_t la, bool runs);

static void dq_run(struct store_addr *t, const struct addr_op *op, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (i + 12 < n)
			addr_prefetch_now(t, op[i + 12].la, false);
		if (i + 6 < n)
			addr_prefetch_now(t, op[i + 6].la, true);
		if (op[i].delta == 0) {
			int rc = addr_add_now(t, op[i].la, op[i].len, op[i].pba);

			if (rc)
				addr_fail(t, rc == -ENOMEM ? rc : -EUCLEAN);
		} else {
			addr_ref_now(t, op[i].la, op[i].len, op[i].delta);
		}
	}
}

static void *dq_main(void *arg)
{
	struct store_addr *t = arg;
	struct addr_defer *d = t->dq;

	dq_worker = true;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		uint32_t s;

		while (d->head == d->tail && !d->stop)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->head == d->tail)
			break;
		s = d->head % DQ_BATCHES;
		pthread_mutex_unlock(&d->mu);
		dq_run(t, d->batch[s], d->n[s]);
		pthread_mutex_lock(&d->mu);
		d->n[s] = 0;
		d->head++;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Hands the batch being filled to the worker, and waits for a free one. */
static void dq_publish(struct addr_defer *d)
{
	pthread_mutex_lock(&d->mu);
	if (d->n[d->tail % DQ_BATCHES] > 0) {
		d->tail++;
		pthread_cond_broadcast(&d->cv);
		while (d->tail - d->head == DQ_BATCHES)
			pthread_cond_wait(&d->cv, &d->mu);
	}
	pthread_mutex_unlock(&d->mu);
}

/* Waits until the worker has done everything handed to it. */
static void dq_quiesce(const struct store_addr *ct)
{
	struct store_addr *t = (struct store_addr *)ct;
	struct addr_defer *d = t->dq;

	if (!d)
		return;
	dq_publish(d);
	pthread_mutex_lock(&d->mu);
	while (d->head != d->tail)
		pthread_cond_wait(&d->cv, &d->mu);
	pthread_mutex_unlock(&d->mu);
	if (d->err && !t->err)
		t->err = d->err;
	d->err = 0;
}

static void dq_push(struct addr_defer *d, uint64_t la, uint64_t len, uint64_t pba, int delta)
{
	uint32_t s = d->tail % DQ_BATCHES;

	d->batch[s][d->n[s]++] = (struct addr_op){ .la = la, .pba = pba, .len = (uint32_t)len,
	                                          .delta = delta };
	if (d->n[s] == DQ_BATCH)
		dq_publish(d);
}

static void dq_free(struct addr_defer *d)
{
	for (int i = 0; i < DQ_BATCHES; i++)
		free(d->batch[i]);
	free(d);
}

int store_addr_defer_start(struct store_addr *t)
{
	struct addr_defer *d = calloc(1, sizeof(*d));
	int rc = -ENOMEM;

	if (!d)
		return rc;
	for (int i = 0; i < DQ_BATCHES; i++)
		if (!(d->batch[i] = malloc(DQ_BATCH * sizeof(*d->batch[i]))))
			goto fail;
	rc = -pthread_mutex_init(&d->mu, NULL);
	if (rc)
		goto fail;
	if ((rc = -pthread_cond_init(&d->cv, NULL))) {
		pthread_mutex_destroy(&d->mu);
		goto fail;
	}
	t->dq = d;
	rc = store_thread_start(&d->thread, dq_main, t);
	if (rc == 0)
		return 0;
	t->dq = NULL;
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
fail:
	dq_free(d);
	return rc;
}

void store_addr_defer_stop(struct store_addr *t)
{
	struct addr_defer *d = t->dq;

	if (!d)
		return;
	dq_quiesce(t);
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	t->dq = NULL;
	dq_free(d);
}

int store_addr_add(struct store_addr *t, uint64_t la, uint64_t len, uint64_t pba)
{
	if (len == 0 || len > UINT16_MAX || (la & OFF_MASK) + len > OFF_MASK + 1)
		return -EINVAL;
	if (t->dq) {
		dq_push(t->dq, la, len, pba, 0);
		return 0;
	}
	return addr_add_now(t, la, len, pba);
}

void store_addr_ref(void *arg, uint64_t la, uint64_t len, int delta)
{
	struct store_addr *t = arg;

	if (t->dq)
		dq_push(t->dq, la, len, 0, delta);
	else
		addr_ref_now(t, la, len, delta);
}

void store_addr_move(struct store_addr *t, uint64_t la, uint64_t len, uint64_t from,
                     uint64_t to)
{
	struct addr_rec *r;
	uint64_t o = la & OFF_MASK, e = o + len;
	uint32_t i, first;

	dq_quiesce(t);
	r = rec_get(t, la >> ADDR_OFF_BITS, false);
	if (!r)
		return;                 /* all of it died */
	rec_keep(t, r);
	if (rec_room(r, 2)) {
		addr_fail(t, -ENOMEM);
		return;
	}
	i = first = run_start(t, r, o);
	for (; i < r->n && r->run[i].off < e; i++) {
		struct addr_run *a;

		if ((uint64_t)r->run[i].off + r->run[i].len > e) {
			if (rec_room(r, 1)) {
				addr_fail(t, -ENOMEM);
				break;
			}
			run_split(r, i, e);
			t->nruns++;
		}
		a = &r->run[i];
		if (a->pba != from + (a->off - o))
			continue;       /* not where the cleaner copied it from */
		if (a->refs)    /* only referenced data counts as live anywhere */
			run_live(t, r, a, -1);
		a->pba = to + (a->off - o);
		if (a->refs)
			run_live(t, r, a, +1);
	}
	runs_merge(t, r, first, i);
}

int store_addr_visit_record(const struct store_addr *t, uint64_t seq, uint64_t lo,
                            uint64_t hi, addr_visit_fn *visit, void *arg)
{
	const struct addr_rec *r;

	dq_quiesce(t);
	r = rec_get((struct store_addr *)t, seq, false);
	for (uint32_t i = 0; r && i < r->n; i++) {
		const struct addr_run *a = &r->run[i];
		int rc;

		if (a->pba < lo || a->pba + a->len > hi)
			continue;
		rc = visit(arg, addr_la(seq, a->off), a->len, a->pba);
		if (rc)
			return rc;
	}
	return 0;
}

void store_addr_prefetch(const struct store_addr *t, uint64_t la, bool runs)
{
	if (!t->dq)     /* else the worker's table: it looks ahead itself */
		addr_prefetch_now(t, la, runs);
}

static void addr_prefetch_now(const struct store_addr *t, uint64_t la, bool runs)
{
	const struct addr_rec *r;
	size_t bytes, step;

	if (!runs) {    /* the record, without waiting for the bucket's first */
		r = t->bucket[seq_hash(la >> ADDR_OFF_BITS) & t->mask];
		if (r)
			__builtin_prefetch(r, 1, 1);
		return;
	}
	r = rec_get((struct store_addr *)t, la >> ADDR_OFF_BITS, false);
	if (!r || !r->n)
		return;
	/* all the lines a search for the offset may probe, up to 64 of them */
	bytes = r->n * sizeof(r->run[0]);
	step = bytes > 64 * 64 ? bytes / 64 : 64;
	for (size_t o = 0; o < bytes; o += step)
		__builtin_prefetch((const char *)r->run + o, 1, 1);
}

uint64_t store_addr_only(void *arg, uint64_t la, uint64_t len)
{
	const struct store_addr *t = arg;
	const struct addr_rec *r;
	uint64_t o = la & OFF_MASK, e = o + len, n = 0;

	dq_quiesce(t);
	r = rec_get((struct store_addr *)t, la >> ADDR_OFF_BITS, false);
	for (uint32_t i = r ? run_find(r, o) : 0; r && i < r->n && r->run[i].off < e; i++) {
		const struct addr_run *a = &r->run[i];
		uint64_t s = a->off > o ? a->off : o;
		uint64_t end = (uint64_t)a->off + a->len < e ? (uint64_t)a->off + a->len : e;

		if (a->refs == 1)
			n += end - s;
	}
	return n;
}

int store_addr_visit(const struct store_addr *t, uint64_t la, uint64_t len,
                     addr_visit_fn *visit, void *arg)
{
	const struct addr_rec *r;
	uint64_t o = la & OFF_MASK, e = o + len;
	uint32_t i;

	dq_quiesce(t);
	r = rec_get((struct store_addr *)t, la >> ADDR_OFF_BITS, false);
	i = r ? run_find(r, o) : 0;
	while (o < e) {
		const struct addr_run *a;
		uint64_t end;
		int rc;

		if (!r || i >= r->n || r->run[i].off > o)
			return -EUCLEAN;
		a = &r->run[i++];
		end = (uint64_t)a->off + a->len < e ? (uint64_t)a->off + a->len : e;
		rc = visit(arg, (la & ~OFF_MASK) | o, end - o, a->pba + (o - a->off));
		if (rc)
			return rc;
		o = end;
	}
	return 0;
}

uint64_t store_addr_prune(struct store_addr *t)
{
	uint64_t pruned = 0;

	dq_quiesce(t);
	for (uint64_t b = 0; b <= t->mask; b++) {
		struct addr_rec *r = t->bucket[b], *next;

		for (; r; r = next) {
			uint32_t out = 0;

			next = r->next;
			rec_keep(t, r);
			for (uint32_t i = 0; i < r->n; i++) {
				if (r->run[i].refs == 0) {
					pruned += r->run[i].len;
					t->nruns--;
				} else {
					r->run[out++] = r->run[i];
				}
			}
			r->n = out;
			if (r->n == 0)
				rec_drop(t, r);
		}
	}
	return pruned;
}

/* ---- checkpoints ---------------------------------------------------------- */

size_t store_addr_save_bytes(const struct store_addr *t)
{
	return 16 * t->nrecs + 16 * t->nruns;
}

size_t store_addr_save(const struct store_addr *t, char *buf)
{
	size_t off = 0;

	dq_quiesce(t);
	for (uint64_t b = 0; b <= t->mask; b++)
		for (const struct addr_rec *r = t->bucket[b]; r; r = r->next)
			off += rec_write(r, buf + off);
	return off;
}

void store_addr_save_begin(struct store_addr *t, uint32_t gen, char *buf)
{
	dq_quiesce(t);
	t->sv = (struct addr_save){ .active = true, .gen = gen, .buf = buf,
	                            .cap = store_addr_save_bytes(t) };
}

bool store_addr_save_some(struct store_addr *t, uint64_t max)
{
	for (; max > 0 && t->sv.bucket <= t->mask; max--, t->sv.bucket++)
		for (struct addr_rec *r = t->bucket[t->sv.bucket]; r; r = r->next)
			rec_keep(t, r);
	return t->sv.bucket > t->mask;
}

void store_addr_save_end(struct store_addr *t)
{
	t->sv.active = false;
	if (t->nrecs > t->mask + 1)
		table_grow(t);
}

int store_addr_load(struct store_addr *t, const char *buf, size_t len, uint64_t count,
                    addr_pba_ok_fn *ok, void *arg, size_t *used)
{
	dq_quiesce(t);
	size_t off = 0;

	for (uint64_t k = 0; k < count; k++) {
		uint64_t seq, end = 0;
		uint32_t hdr[2];

		if (len - off < 16)
			return -EUCLEAN;
		memcpy(&seq, buf + off, 8);
		memcpy(hdr, buf + off + 8, 8);
		off += 16;
		if (hdr[0] == 0 || hdr[0] > (len - off) / 16 || rec_get(t, seq, false) ||
		    seq >> (64 - ADDR_OFF_BITS))
			return -EUCLEAN;
		for (uint32_t i = 0; i < hdr[0]; i++) {
			uint16_t w[4];
			uint64_t pba;
			int rc;

			memcpy(w, buf + off, 8);
			memcpy(&pba, buf + off + 8, 8);
			off += 16;
			if (w[1] == 0 || w[0] < end || !ok(arg, pba, w[1]))
				return -EUCLEAN;
			end = (uint64_t)w[0] + w[1];
			rc = store_addr_add(t, addr_la(seq, w[0]), w[1], pba);
			if (rc)
				return rc == -ENOMEM ? rc : -EUCLEAN;
		}
	}
	*used = off;
	return 0;
}
