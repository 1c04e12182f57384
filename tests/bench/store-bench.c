/* tests/bench/store-bench.c: throughput, map memory and recovery figures for
 * the store, driven through store/store.h alone.
 *
 * It prints figures and judges nothing: tests/bench/run-store-bench.sh runs
 * it next to fio baselines and compares the figures with their targets.
 * Every test works on a fresh sparse pool file in --dir and removes it
 * (--prealloc: zero-filled first, to measure overwrites of allocated blocks).
 *
 * Load model: --vols volumes, each with --qd writes in flight; a write's
 * completion issues that slot's next write, so the store always sees
 * vols * qd writes outstanding, like that many busy initiator queues.
 * Figures are deltas of store_pool_get_stats() and of the bench's own
 * counters over a window that starts after --warmup seconds, so the
 * start-up ramp (empty queues, first segment allocations) is not counted.
 *
 * Tests (one line of key=value figures each, or a JSON object with --json):
 *   randwrite4k   4 KiB random writes, write-through: IOPS, device write
 *                 size, flushes per acknowledged write
 *   randwrite64k  the same with 64 KiB writes: MiB/s
 *   mapmem        map RAM per extent and per TiB after a sequential fill
 *                 (one stream per volume), a many-stream sequential fill
 *                 (each slot its own region) and a random 4 KiB fill
 *                 (every block once)
 *   recovery      a child process fills a pool, checkpoints, writes
 *                 --log-gib of log and dies without closing it; the parent
 *                 times the replaying open, then a clean restart
 *   snapshots     two sets of --vols filled volumes in one pool, one with
 *                 100 snapshots each (taken between bursts of random
 *                 writes); 4 KiB random write and read windows alternate
 *                 between the sets: the ratio is the snapshots' cost
 *   clones        the same with plain filled volumes against fresh clones
 *                 of a filled volume's snapshot (writes: first writes to a
 *                 clone copy map nodes)
 *   cleaner       write amplification of steady-state 4 KiB overwrites at
 *                 --util of the pool (default 0.8): uniform, 90/10 and
 *                 95/5 skew (that share of writes to a tenth or a
 *                 twentieth of the blocks); device bytes over user bytes,
 *                 and the share of it that is the cleaner's copies and
 *                 the checkpoints
 *   snapcreate    time to create a snapshot and a clone (durable) of a
 *                 volume filled by 1 MiB writes and of volumes filled by
 *                 random 4 KiB writes (--fill-gib, many extents)
 *   cloneread     a filled --vol-mib image, 500 clones of its snapshot,
 *                 --qd 4 KiB random reads over all the clones from an
 *                 empty read cache: IOPS, hits, misses, hit rate and bytes
 *                 cached (the image once, not 500 times); then the same
 *                 with the cache off
 *   ckptstall     how long checkpoints of a big map hold the loop: every
 *                 4 KiB block of --fill-gib written once at random, then
 *                 --seconds of random 4 KiB writes with a checkpoint a
 *                 second; the longest loop iteration (wall and the loop
 *                 thread's CPU) and write latency, during checkpoints and
 *                 not (only run when named: --test ckptstall)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/lib/testlib.h"

#define KIB       1024ull
#define MIB       (1ull << 20)
#define GIB       (1ull << 30)
#define TIB       (1ull << 40)
#define VOLS_MAX  64
#define QD_MAX    1024

/* ---- options -------------------------------------------------------------- */

struct opts {
	const char       *test;
	enum store_engine engine;
	const char       *dir;          /* NULL: a fresh directory under /var/tmp */
	double            seconds, warmup;
	bool              json, keep, prealloc;
	unsigned          vols, qd;
	uint64_t          vol_bytes;    /* randwrite tests: size of each volume */
	double            pool_gib;     /* 0: chosen per test */
	double            seq_gib, rand_gib, fill_gib, log_gib;
	uint32_t          seq_bs;
	double            util;         /* cleaner: live data / capacity */
	uint32_t          seg_mib;      /* 0: the store's default */
};

static void usage(FILE *f)
{
	fprintf(f,
	"usage: store-bench --test randwrite4k|randwrite64k|mapmem|recovery|snapshots|\n"
	"                          clones|snapcreate|cleaner|cloneread|ckptstall|all\n"
	"                   [--engine uring|threads|auto] [--dir D] [--seconds S]\n"
	"                   [--warmup S] [--vols N] [--qd N] [--vol-mib M]\n"
	"                   [--pool-gib G] [--seq-gib G] [--seq-kib K] [--rand-gib G]\n"
	"                   [--fill-gib G] [--log-gib G] [--prealloc] [--json] [--keep]\n"
	"Prints one line of figures per test; asserts nothing about speed.\n");
}

static void die(const char *what, int err)
{
	fprintf(stderr, "store-bench: %s: %s\n", what, store_strerror(err));
	exit(1);
}

static enum store_engine parse_engine(const char *s)
{
	if (!strcmp(s, "uring") || !strcmp(s, "io_uring"))
		return STORE_ENGINE_URING;
	if (!strcmp(s, "threads"))
		return STORE_ENGINE_THREADS;
	if (!strcmp(s, "auto"))
		return STORE_ENGINE_AUTO;
	fprintf(stderr, "store-bench: unknown engine '%s'\n", s);
	exit(2);
}

static double parse_num(const char *s, const char *opt)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == 0 || *end != 0 || !(v >= 0)) {
		fprintf(stderr, "store-bench: %s wants a number >= 0, not '%s'\n", opt, s);
		exit(2);
	}
	return v;
}

static void parse_opt(struct opts *o, int c, const char *arg)
{
	switch (c) {
	case 't': o->test = arg; break;
	case 'e': o->engine = parse_engine(arg); break;
	case 'd': o->dir = arg; break;
	case 's': o->seconds = parse_num(arg, "--seconds"); break;
	case 'w': o->warmup = parse_num(arg, "--warmup"); break;
	case 'j': o->json = true; break;
	case 'k': o->keep = true; break;
	case 'P': o->prealloc = true; break;
	case 'V': o->vols = (unsigned)parse_num(arg, "--vols"); break;
	case 'q': o->qd = (unsigned)parse_num(arg, "--qd"); break;
	case 'm': o->vol_bytes = (uint64_t)parse_num(arg, "--vol-mib") * MIB; break;
	case 'p': o->pool_gib = parse_num(arg, "--pool-gib"); break;
	case 'S': o->seq_gib = parse_num(arg, "--seq-gib"); break;
	case 'B': o->seq_bs = (uint32_t)parse_num(arg, "--seq-kib") * 1024; break;
	case 'R': o->rand_gib = parse_num(arg, "--rand-gib"); break;
	case 'F': o->fill_gib = parse_num(arg, "--fill-gib"); break;
	case 'L': o->log_gib = parse_num(arg, "--log-gib"); break;
	case 'U': o->util = parse_num(arg, "--util"); break;
	case 'G': o->seg_mib = (uint32_t)parse_num(arg, "--seg-mib"); break;
	case 'h': usage(stdout); exit(0);
	default: usage(stderr); exit(2);
	}
}

static void parse_args(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "test", 1, NULL, 't' }, { "engine", 1, NULL, 'e' },
		{ "dir", 1, NULL, 'd' }, { "seconds", 1, NULL, 's' },
		{ "warmup", 1, NULL, 'w' }, { "json", 0, NULL, 'j' },
		{ "keep", 0, NULL, 'k' }, { "prealloc", 0, NULL, 'P' },
		{ "vols", 1, NULL, 'V' },
		{ "qd", 1, NULL, 'q' }, { "vol-mib", 1, NULL, 'm' },
		{ "pool-gib", 1, NULL, 'p' }, { "seq-gib", 1, NULL, 'S' },
		{ "seq-kib", 1, NULL, 'B' }, { "rand-gib", 1, NULL, 'R' },
		{ "fill-gib", 1, NULL, 'F' }, { "log-gib", 1, NULL, 'L' },
		{ "util", 1, NULL, 'U' }, { "seg-mib", 1, NULL, 'G' },
		{ "help", 0, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct opts){
		.test = "all", .engine = STORE_ENGINE_URING, .seconds = 10, .warmup = 3,
		.vols = 16, .qd = 32, .vol_bytes = GIB, .seq_gib = 4, .seq_bs = 128 * 1024,
		.rand_gib = 2, .fill_gib = 4, .log_gib = 1, .util = 0.8,
	};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1)
		parse_opt(o, c, optarg);
	if (optind < argc || o->vols == 0 || o->vols > VOLS_MAX || o->qd == 0 ||
	    o->qd > QD_MAX || o->seq_bs == 0 || o->seq_bs % 4096 || o->vol_bytes < MIB) {
		usage(stderr);
		exit(2);
	}
}

/* ---- output: one line per test ------------------------------------------- */

struct out {
	char   line[4096];
	size_t n;
	bool   json;
};

static void out_add(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void out_add(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(o->line + o->n, sizeof(o->line) - o->n, fmt, ap);
	va_end(ap);
	if (r > 0)
		o->n = o->n + (size_t)r < sizeof(o->line) ? o->n + (size_t)r : sizeof(o->line) - 1;
}

static void out_str(struct out *o, const char *key, const char *v)
{
	if (o->json)
		out_add(o, "%s\"%s\":\"%s\"", o->n > 1 ? "," : "", key, v);
	else
		out_add(o, "%s%s=%s", o->n ? " " : "", key, v);
}

static void out_num(struct out *o, const char *key, double v, int prec)
{
	if (!isfinite(v))
		v = 0;          /* an empty window: JSON has no inf or nan */
	if (o->json)
		out_add(o, "%s\"%s\":%.*f", o->n > 1 ? "," : "", key, prec, v);
	else
		out_add(o, "%s%s=%.*f", o->n ? " " : "", key, prec, v);
}

static void out_begin(struct out *o, bool json, const char *test, const char *engine)
{
	o->n = 0;
	o->json = json;
	if (json)
		out_add(o, "{");
	out_str(o, "test", test);
	out_str(o, "engine", engine);
}

static void out_end(struct out *o)
{
	printf("%s%s\n", o->line, o->json ? "}" : "");
	fflush(stdout);
}

/* ---- time ----------------------------------------------------------------- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds of this process, all threads (io_uring's io-wq workers and
 * the thread engine's workers included): with wall time it tells whether a
 * figure is bound by the CPU or by the device. */
static double cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- a pool on a file ----------------------------------------------------- */

static void *xmalloc_aligned(size_t bytes)
{
	void *p;

	if (posix_memalign(&p, 4096, bytes))
		die("allocating buffers", -ENOMEM);
	return p;
}

/* --prealloc: zeros written over the whole pool file before the store formats
 * it (an all-zero file counts as empty), so that log writes overwrite
 * allocated blocks, as on a block device or a pool whose log has wrapped,
 * instead of allocating file system blocks as they go. */
static void prealloc_file(const char *path, uint64_t bytes)
{
	const size_t chunk = 8 * MIB;
	char *zero = xmalloc_aligned(chunk);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
	double t0 = now();

	if (fd < 0)
		die("creating the pool file", -errno);
	memset(zero, 0, chunk);
	for (uint64_t off = 0; off < bytes; off += chunk) {
		size_t len = bytes - off < chunk ? (size_t)(bytes - off) : chunk;

		if (pwrite(fd, zero, len, (off_t)off) != (ssize_t)len)
			die("writing zeros over the pool file", -errno);
	}
	if (fdatasync(fd) != 0)
		die("fdatasync of the pool file", -errno);
	close(fd);
	free(zero);
	fprintf(stderr, "store-bench: wrote %.0f GiB of zeros over %s in %.1f s\n",
	        (double)bytes / GIB, path, now() - t0);
}

struct bench {
	const struct opts *o;
	struct ev_loop    *loop;
	struct store_pool *pool;
	char               path[PATH_MAX];
	uint64_t           pool_bytes;
	uint32_t           ckpt_secs;       /* 0: the store's defaults */
	uint64_t           ckpt_log_bytes;
	struct store_vol  *vols[VOLS_MAX];
	unsigned           nvols;
	uint64_t           cache_bytes;     /* read cache; 0: none */
};

static void bench_log(void *arg, enum store_log_level level, const char *msg)
{
	(void)arg;
	if (level <= STORE_LOG_WARN || getenv("STORE_BENCH_VERBOSE"))
		fprintf(stderr, "store: %s\n", msg);
}

static int bench_open(struct bench *b)
{
	struct store_pool_opts po = {
		.path = b->path, .create_bytes = b->pool_bytes, .engine = b->o->engine,
		.segment_bytes = b->o->seg_mib << 20,
		.checkpoint_secs = b->ckpt_secs, .checkpoint_log_bytes = b->ckpt_log_bytes,
		.log = bench_log, .read_cache_bytes = b->cache_bytes,
	};

	return store_pool_open(b->loop, &po, &b->pool);
}

static void bench_open_or_die(struct bench *b)
{
	int rc = bench_open(b);

	if (rc)
		die("store_pool_open", rc);
}

/* A fresh pool file (any leftover from an earlier run is removed first). */
static void bench_init(struct bench *b, const struct opts *o, const char *dir,
                       const char *test, double pool_gib)
{
	struct statvfs sv;

	memset(b, 0, sizeof(*b));
	b->o = o;
	b->pool_bytes = (uint64_t)(pool_gib * GIB) & ~(MIB - 1);
	snprintf(b->path, sizeof(b->path), "%s/%s.pool", dir, test);
	unlink(b->path);
	if (statvfs(dir, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < b->pool_bytes / 2)
		fprintf(stderr, "store-bench: warning: %s has less free space than half "
		        "the %.0f GiB pool; writes may fail\n", dir, pool_gib);
	if (o->prealloc)
		prealloc_file(b->path, b->pool_bytes);
	b->loop = ev_loop_new(EVFLAG_AUTO);
	if (!b->loop)
		die("ev_loop_new", -ENOMEM);
}

static void bench_vols_close(struct bench *b)
{
	for (unsigned i = 0; i < b->nvols; i++)
		store_vol_close(b->vols[i]);
	b->nvols = 0;
}

static void bench_close(struct bench *b)
{
	int rc;

	bench_vols_close(b);
	rc = tl_pool_close(b->loop, b->pool);
	if (rc)
		die("store_pool_close", rc);
	b->pool = NULL;
}

static void bench_fini(struct bench *b)
{
	if (b->pool)
		bench_close(b);
	ev_loop_destroy(b->loop);
	if (!b->o->keep)
		unlink(b->path);
}

/* Creates and opens n write-through volumes prefix00.. of bytes each. */
static void bench_vols_create(struct bench *b, const char *prefix, unsigned n,
                              uint64_t bytes)
{
	for (unsigned i = 0; i < n; i++) {
		char name[64];
		int rc;

		snprintf(name, sizeof(name), "%s%02u", prefix, i);
		rc = tl_vol_create(b->loop, b->pool, name, bytes / STORE_SECTOR, false);
		if (rc == 0)
			rc = store_vol_open(b->pool, name, &b->vols[i]);
		if (rc)
			die("creating a volume", rc);
	}
	b->nvols = n;
}

/* ---- the load generator --------------------------------------------------- */

/* RANDOM: uniform over the volume, until stopped. SEQ: each volume once
 * front to back, its writes shared by all its slots (one stream). STREAMS:
 * each slot writes its own 1/qd of the volume front to back (qd streams
 * per volume, like a file system writing many files). PERM: every block of
 * each volume once, in random order. */
enum pattern { PAT_RANDOM, PAT_SEQ, PAT_STREAMS, PAT_PERM };

struct load;

struct slot {
	struct load *ld;
	unsigned     vol;
	uint64_t     next, end;     /* PAT_STREAMS: this slot's blocks */
	struct iovec iov;
	double       t0;
};

struct load {
	struct store_vol **vols;
	unsigned           nvols, qd;
	uint32_t           bs;
	enum pattern       pat;
	uint64_t           vol_blocks;        /* bs-sized blocks per volume */
	uint64_t           cursor[VOLS_MAX];  /* PAT_SEQ, PAT_PERM: blocks issued */
	uint32_t          *perm[VOLS_MAX];    /* PAT_PERM: the order of blocks */
	uint64_t           rng;
	uint64_t           limit_bytes;       /* stop once this much is acked; 0: none */
	uint64_t           hot_blocks;        /* PAT_RANDOM: hot_pct% of writes go to */
	unsigned           hot_pct;           /* the first hot_blocks (0: uniform) */
	bool               reads;             /* read instead of write */
	bool               stopping;
	int                inflight;
	uint64_t           acked, acked_bytes, errors;
	int                first_err;
	double             lat_sum;           /* seconds, over acked writes */
	double             lat_max;           /* the longest, since it was last reset */
	struct slot       *slots;
	char              *bufs;
};

static bool load_next_lba(struct load *ld, struct slot *s, uint64_t *lba)
{
	unsigned vol = s->vol;
	uint64_t blk;

	if (ld->pat == PAT_RANDOM && ld->hot_pct &&
	    tl_rand_below(&ld->rng, 100) < ld->hot_pct) {
		blk = tl_rand_below(&ld->rng, ld->hot_blocks);
	} else if (ld->pat == PAT_RANDOM && ld->hot_pct) {
		blk = ld->hot_blocks + tl_rand_below(&ld->rng, ld->vol_blocks - ld->hot_blocks);
	} else if (ld->pat == PAT_RANDOM) {
		blk = tl_rand_below(&ld->rng, ld->vol_blocks);
	} else if (ld->pat == PAT_STREAMS) {
		if (s->next >= s->end)
			return false;
		blk = s->next++;
	} else {
		if (ld->cursor[vol] >= ld->vol_blocks)
			return false;
		blk = ld->cursor[vol]++;
		if (ld->pat == PAT_PERM)
			blk = ld->perm[vol][blk];
	}
	*lba = blk * (ld->bs / STORE_SECTOR);
	return true;
}

static void slot_done(void *arg, int err);

static void slot_issue(struct slot *s)
{
	struct load *ld = s->ld;
	uint64_t lba;

	if (ld->stopping || !load_next_lba(ld, s, &lba))
		return;
	s->t0 = now();
	ld->inflight++;
	if (ld->reads)
		store_vol_read(ld->vols[s->vol], lba, &s->iov, 1, slot_done, s);
	else
		store_vol_write(ld->vols[s->vol], lba, &s->iov, 1, 0, slot_done, s);
}

static void slot_done(void *arg, int err)
{
	struct slot *s = arg;
	struct load *ld = s->ld;

	ld->inflight--;
	if (err) {
		if (ld->errors++ == 0)
			ld->first_err = err;
		ld->stopping = true;    /* a full or failed pool: the figures would lie */
		return;
	}
	ld->acked++;
	ld->acked_bytes += ld->bs;
	ld->lat_sum += now() - s->t0;
	if (now() - s->t0 > ld->lat_max)
		ld->lat_max = now() - s->t0;
	if (ld->limit_bytes && ld->acked_bytes >= ld->limit_bytes)
		ld->stopping = true;
	slot_issue(s);
}

/* Random bytes, so nothing below the store can win by seeing zeros. */
static void fill_random(char *buf, size_t len, uint64_t *rng)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t x = tl_rand(rng);

		memcpy(buf + i, &x, 8);
	}
}

static void load_init(struct load *ld, struct bench *b, uint32_t bs, enum pattern pat,
                      uint64_t vol_bytes)
{
	size_t nslots = (size_t)b->nvols * b->o->qd;

	memset(ld, 0, sizeof(*ld));
	ld->vols = b->vols;
	ld->nvols = b->nvols;
	ld->qd = b->o->qd;
	ld->bs = bs;
	ld->pat = pat;
	ld->vol_blocks = vol_bytes / bs;
	ld->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	ld->slots = calloc(nslots, sizeof(*ld->slots));
	ld->bufs = xmalloc_aligned(nslots * bs);
	if (!ld->slots)
		die("allocating slots", -ENOMEM);
	fill_random(ld->bufs, nslots * bs, &ld->rng);
	for (size_t i = 0; i < nslots; i++) {
		uint64_t stream = ld->vol_blocks / ld->qd, j = i % ld->qd;

		ld->slots[i] = (struct slot){
			.ld = ld, .vol = (unsigned)(i / ld->qd),
			.next = j * stream, .end = (j + 1) * stream,
			.iov = { .iov_base = ld->bufs + i * bs, .iov_len = bs },
		};
	}
}

/* PAT_PERM: each volume's blocks in a random order (Fisher-Yates). */
static void load_make_perm(struct load *ld)
{
	for (unsigned v = 0; v < ld->nvols; v++) {
		uint32_t *p = malloc(ld->vol_blocks * sizeof(*p));

		if (!p || ld->vol_blocks > UINT32_MAX)
			die("allocating a permutation", -ENOMEM);
		for (uint64_t i = 0; i < ld->vol_blocks; i++)
			p[i] = (uint32_t)i;
		for (uint64_t i = ld->vol_blocks - 1; i > 0; i--) {
			uint64_t j = tl_rand_below(&ld->rng, i + 1);
			uint32_t t = p[i];

			p[i] = p[j];
			p[j] = t;
		}
		ld->perm[v] = p;
	}
}

static void load_fini(struct load *ld)
{
	for (unsigned v = 0; v < ld->nvols; v++)
		free(ld->perm[v]);
	free(ld->slots);
	free(ld->bufs);
}

static void load_start(struct load *ld)
{
	for (size_t i = 0; i < (size_t)ld->nvols * ld->qd; i++)
		slot_issue(&ld->slots[i]);
}

/* Runs the loop until every issued write has completed (a fill runs dry, a
 * timer or the byte limit sets stopping). With abandon, returns as soon as
 * stopping is set, writes still in flight: the recovery child's crash. */
static void load_run(struct load *ld, struct ev_loop *loop, bool abandon)
{
	load_start(ld);
	while (ld->inflight > 0 && !(abandon && ld->stopping))
		ev_run(loop, EVRUN_ONCE);
}

static void load_check(const struct load *ld, const char *what)
{
	if (ld->errors) {
		fprintf(stderr, "store-bench: %s: %" PRIu64 " writes failed, the first "
		        "with: %s\n", what, ld->errors, store_strerror(ld->first_err));
		exit(1);
	}
}

/* ---- a timed window --------------------------------------------------------- */

struct snap {
	double   t, cpu;
	uint64_t acked, acked_bytes;
	double   lat_sum;
	struct store_pool_stats st;
};

struct window {
	struct bench *b;
	struct load  *ld;
	ev_timer      timer;
	struct snap   start, end;
	bool          started;
};

static void snap_take(struct snap *s, const struct bench *b, const struct load *ld)
{
	s->t = now();
	s->cpu = cpu_now();
	s->acked = ld->acked;
	s->acked_bytes = ld->acked_bytes;
	s->lat_sum = ld->lat_sum;
	store_pool_get_stats(b->pool, &s->st);
}

/* Fires at the end of the warm-up, then at the end of the window. */
static void window_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct window *w = t->data;

	(void)revents;
	if (!w->started) {
		snap_take(&w->start, w->b, w->ld);
		w->started = true;
		ev_timer_set(t, w->b->o->seconds, 0);
		ev_timer_start(loop, t);
		return;
	}
	snap_take(&w->end, w->b, w->ld);
	w->ld->stopping = true;
}

static void window_run(struct window *w, struct bench *b, struct load *ld)
{
	memset(w, 0, sizeof(*w));
	w->b = b;
	w->ld = ld;
	ev_now_update(b->loop);        /* the timer counts from now, not the last poll */
	ev_timer_init(&w->timer, window_cb, b->o->warmup, 0);
	w->timer.data = w;
	ev_timer_start(b->loop, &w->timer);
	load_run(ld, b->loop, false);
	ev_timer_stop(b->loop, &w->timer);
	load_check(ld, "timed writes");
}

/* ---- randwrite4k, randwrite64k ---------------------------------------------- */

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

static void randwrite_print(const struct window *w, struct bench *b, const char *test)
{
	const struct store_pool_stats *s0 = &w->start.st, *s1 = &w->end.st;
	double secs = w->end.t - w->start.t;
	uint64_t acked = w->end.acked - w->start.acked;
	uint64_t bytes = w->end.acked_bytes - w->start.acked_bytes;
	uint64_t sacked = s1->acked_writes - s0->acked_writes;
	uint64_t batches = s1->batches - s0->batches, flushes = s1->flushes - s0->flushes;
	struct out o;

	out_begin(&o, b->o->json, test, s1->engine);
	out_num(&o, "seconds", secs, 2);
	out_num(&o, "writes", (double)acked, 0);
	out_num(&o, "iops", acked / secs, 0);
	out_num(&o, "mib_s", bytes / secs / MIB, 1);
	out_num(&o, "lat_avg_ms", (w->end.lat_sum - w->start.lat_sum) / acked * 1e3, 3);
	out_num(&o, "cpu_pct", (w->end.cpu - w->start.cpu) / secs * 100, 0);
	out_num(&o, "batches", (double)batches, 0);
	out_num(&o, "avg_dev_write_kib",
	        ratio(s1->log_write_bytes - s0->log_write_bytes, batches) / KIB, 1);
	out_num(&o, "flushes", (double)flushes, 0);
	out_num(&o, "flushes_per_write", ratio(flushes, sacked), 5);
	out_num(&o, "writes_per_flush", ratio(sacked, flushes), 1);
	out_num(&o, "write_amp", ratio(s1->device_write_bytes - s0->device_write_bytes,
	                               s1->host_write_bytes - s0->host_write_bytes), 3);
	out_num(&o, "checkpoints", (double)(s1->checkpoints - s0->checkpoints), 0);
	out_num(&o, "in_flight", (double)b->nvols * b->o->qd, 0);
	out_end(&o);
}

static void test_randwrite(const struct opts *o, const char *dir, const char *test,
                           uint32_t bs)
{
	struct bench b;
	struct load ld;
	struct window w;

	bench_init(&b, o, dir, test, o->pool_gib ? o->pool_gib : 48);
	bench_open_or_die(&b);
	bench_vols_create(&b, "v", o->vols, o->vol_bytes);
	load_init(&ld, &b, bs, PAT_RANDOM, o->vol_bytes);
	window_run(&w, &b, &ld);
	randwrite_print(&w, &b, test);
	load_fini(&ld);
	bench_fini(&b);
}

/* ---- mapmem ----------------------------------------------------------------- */

/* Sum of mapped bytes and extents over the volumes named prefix*. */
static void vols_mapped(struct store_pool *p, const char *prefix, uint64_t *bytes,
                        uint64_t *extents)
{
	size_t n = store_vol_list(p, NULL, 0);
	struct store_vol_info *vi = calloc(n ? n : 1, sizeof(*vi));

	if (!vi)
		die("store_vol_list", -ENOMEM);
	n = store_vol_list(p, vi, n);
	*bytes = *extents = 0;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(vi[i].name, prefix, strlen(prefix)) != 0)
			continue;
		*bytes += vi[i].mapped_sectors * STORE_SECTOR;
		*extents += vi[i].extents;
	}
	free(vi);
}

struct fill_result {
	double   mib_s;
	uint64_t mapped, extents;               /* from store_vol_list() */
	uint64_t map_bytes, map_extents;        /* pool stats deltas */
	const char *engine;
};

/* Writes every block of fresh volumes prefix00.. once, in pattern's order.
 * Map figures are deltas, so an earlier fill's volumes do not count. */
static void mapmem_fill(struct bench *b, const char *prefix, double gib, uint32_t bs,
                        enum pattern pat, struct fill_result *r)
{
	uint64_t vol_bytes = ((uint64_t)(gib * GIB) / b->o->vols) / bs * bs;
	struct store_pool_stats s0, s1;
	struct load ld;
	double t0;

	if (vol_bytes < (uint64_t)bs * b->o->qd)
		die("fill sizes: each volume needs at least qd writes", -EINVAL);
	store_pool_get_stats(b->pool, &s0);
	bench_vols_close(b);
	bench_vols_create(b, prefix, b->o->vols, vol_bytes);
	load_init(&ld, b, bs, pat, vol_bytes);
	if (pat == PAT_PERM)
		load_make_perm(&ld);
	t0 = now();
	load_run(&ld, b->loop, false);
	r->mib_s = ld.acked_bytes / (now() - t0) / MIB;
	load_check(&ld, "fill");
	load_fini(&ld);
	store_pool_get_stats(b->pool, &s1);
	vols_mapped(b->pool, prefix, &r->mapped, &r->extents);
	r->map_bytes = s1.map_bytes - s0.map_bytes;
	r->map_extents = s1.map_extents - s0.map_extents;
	r->engine = s1.engine;
}

static void mapmem_print(const struct opts *o, const char *fill, uint32_t bs,
                         const struct fill_result *r)
{
	struct out out;

	out_begin(&out, o->json, "mapmem", r->engine);
	out_str(&out, "fill", fill);
	out_num(&out, "write_kib", bs / (double)KIB, 0);
	out_num(&out, "fill_mib_s", r->mib_s, 1);
	out_num(&out, "mapped_gib", r->mapped / (double)GIB, 3);
	out_num(&out, "extents", (double)r->extents, 0);
	out_num(&out, "map_extents", (double)r->map_extents, 0);
	out_num(&out, "map_bytes", (double)r->map_bytes, 0);
	out_num(&out, "bytes_per_extent", ratio(r->map_bytes, r->map_extents), 2);
	out_num(&out, "map_gib_per_tib", ratio(r->map_bytes, r->mapped) * TIB / GIB, 4);
	out_num(&out, "extents_per_tib", ratio(r->extents, r->mapped) * TIB, 0);
	out_end(&out);
}

static void test_mapmem(const struct opts *o, const char *dir)
{
	double need = (2 * o->seq_gib + o->rand_gib) * 1.25 + 2;
	struct fill_result r;
	struct bench b;

	bench_init(&b, o, dir, "mapmem", o->pool_gib ? o->pool_gib : need > 32 ? need : 32);
	bench_open_or_die(&b);
	mapmem_fill(&b, "seq", o->seq_gib, o->seq_bs, PAT_SEQ, &r);
	mapmem_print(o, "sequential", o->seq_bs, &r);
	mapmem_fill(&b, "str", o->seq_gib, o->seq_bs, PAT_STREAMS, &r);
	mapmem_print(o, "streams", o->seq_bs, &r);
	mapmem_fill(&b, "rnd", o->rand_gib, STORE_BLOCK, PAT_PERM, &r);
	mapmem_print(o, "random", STORE_BLOCK, &r);
	bench_fini(&b);
}

/* ---- recovery --------------------------------------------------------------- */

/* The child: a pool with fill_gib written sequentially and checkpointed, then
 * log_gib of random 4 KiB writes after the checkpoint; it dies with writes
 * in flight and the pool never closed. Checkpoints are pushed out of reach
 * so that all of that log is left to replay. */
static void recovery_child(struct bench *b)
{
	uint64_t vol_bytes = ((uint64_t)(b->o->fill_gib * GIB) / b->o->vols) & ~(MIB - 1);
	struct load fill, lg;
	int rc;

	if (vol_bytes < (uint64_t)b->o->seq_bs * b->o->qd)
		die("--fill-gib: each volume needs at least qd writes", -EINVAL);
	b->ckpt_secs = 1u << 30;
	b->ckpt_log_bytes = 1ull << 50;
	bench_open_or_die(b);
	bench_vols_create(b, "r", b->o->vols, vol_bytes);
	load_init(&fill, b, b->o->seq_bs, PAT_SEQ, vol_bytes);
	load_run(&fill, b->loop, false);
	load_check(&fill, "child fill");
	rc = tl_checkpoint(b->loop, b->pool);
	if (rc)
		die("store_pool_checkpoint (child)", rc);
	load_init(&lg, b, STORE_BLOCK, PAT_RANDOM, vol_bytes);
	lg.limit_bytes = (uint64_t)(b->o->log_gib * GIB);
	load_run(&lg, b->loop, true);
	load_check(&lg, "child log writes");
	fflush(NULL);
	_exit(0);
}

static void recovery_fork(struct bench *b)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		/* a fresh loop: the parent's must not be shared across fork */
		b->loop = ev_loop_new(EVFLAG_AUTO);
		recovery_child(b);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "store-bench: the recovery child failed\n");
		exit(1);
	}
}

/* A dead process's io_uring lets go of its files (and so of the pool's
 * flock) only when the kernel has torn the ring down, a moment after the
 * process is reaped. Wait for the lock, so that the open is timed alone. */
static double wait_unlocked(const char *path)
{
	double t0 = now();
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("opening the pool file", -errno);
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK || now() - t0 > 60)
			die("waiting for the dead child's lock", -errno);
		usleep(1000);
	}
	close(fd);
	return now() - t0;
}

/* Seconds store_pool_open() took; *cpu: CPU seconds it used. */
static double timed_open(struct bench *b, double *cpu)
{
	double t0 = now(), c0 = cpu_now();

	bench_open_or_die(b);
	*cpu = cpu_now() - c0;
	return now() - t0;
}

struct recovery_result {
	double lock_wait_s, replay_s, replay_cpu, close_s, open_s, open_cpu;
	struct store_pool_stats replayed, restarted;   /* after each open */
};

static void recovery_print(const struct opts *o, const struct recovery_result *r)
{
	const struct store_pool_stats *st = &r->replayed;
	struct out out;

	out_begin(&out, o->json, "recovery", st->engine);
	out_num(&out, "replayed_gib", st->replayed_bytes / (double)GIB, 3);
	out_num(&out, "replayed_records", (double)st->replayed_records, 0);
	out_num(&out, "lock_wait_s", r->lock_wait_s, 3);
	out_num(&out, "replay_open_s", r->replay_s, 3);
	out_num(&out, "replay_cpu_s", r->replay_cpu, 3);
	out_num(&out, "replay_s_per_gib", r->replay_s / (st->replayed_bytes / (double)GIB), 3);
	out_num(&out, "pool_gib", st->capacity_bytes / (double)GIB, 1);
	out_num(&out, "used_gib", st->used_bytes / (double)GIB, 3);
	out_num(&out, "used_pct", 100.0 * ratio(st->used_bytes, st->capacity_bytes), 1);
	out_num(&out, "extents", (double)st->map_extents, 0);
	out_num(&out, "close_s", r->close_s, 3);
	out_num(&out, "open_s", r->open_s, 3);
	out_num(&out, "open_cpu_s", r->open_cpu, 3);
	out_num(&out, "restart_s", r->close_s + r->open_s, 3);
	out_num(&out, "restart_replayed_mib", r->restarted.replayed_bytes / (double)MIB, 1);
	out_end(&out);
}

static void test_recovery(const struct opts *o, const char *dir)
{
	double pool_gib = o->pool_gib ? o->pool_gib : ceil((o->fill_gib + o->log_gib) * 1.25 + 1);
	struct recovery_result r;
	struct bench b;
	double t0;

	bench_init(&b, o, dir, "recovery", pool_gib);
	recovery_fork(&b);
	r.lock_wait_s = wait_unlocked(b.path);
	r.replay_s = timed_open(&b, &r.replay_cpu);
	store_pool_get_stats(b.pool, &r.replayed);
	t0 = now();
	bench_close(&b);        /* clean: a checkpoint of everything */
	r.close_s = now() - t0;
	r.open_s = timed_open(&b, &r.open_cpu);
	store_pool_get_stats(b.pool, &r.restarted);
	recovery_print(o, &r);
	bench_fini(&b);
}

/* ---- ckptstall ------------------------------------------------------------ */

/* How long a checkpoint of a big map holds the loop. Every 4 KiB block of
 * --fill-gib (over --vols volumes) is written once in random order: about
 * as many extents as blocks. Then --seconds of random 4 KiB writes over
 * them, with a checkpoint started every second (when the one before is
 * done). A loop iteration is the time from the loop waking from its poll
 * to its going back to it: nothing else runs on the loop meanwhile. Its
 * longest, in wall time and in the loop thread's CPU time (which the
 * machine's other load does not inflate), and the longest write latency
 * are printed for the spans of the checkpoints and for the rest; and how
 * long the checkpoints took. */
struct stall_max {
	double iter, iter_cpu, lat;
};

struct stall {
	struct store_pool *pool;
	struct load       *ld;
	ev_prepare         prep;
	ev_check           chk;
	ev_timer           every;
	double             woke, woke_cpu;
	struct stall_max   ckpt, other;    /* during checkpoints, and not */
	double             ckpt_t0, ckpt_max, ckpt_sum;
	unsigned           ckpts;
	int                ckpt_err;
	bool               in_ckpt;
};

/* CPU seconds of this thread: a loop iteration's own work, whatever else
 * the machine runs meanwhile. */
static double thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void stall_max_set(double *max, double v)
{
	if (v > *max)
		*max = v;
}

/* The writes' longest latency so far goes to the span that ends. */
static void stall_span_end(struct stall *st)
{
	stall_max_set(st->in_ckpt ? &st->ckpt.lat : &st->other.lat, st->ld->lat_max);
	st->ld->lat_max = 0;
}

static void stall_ckpt_done(void *arg, int err)
{
	struct stall *st = arg;
	double d = now() - st->ckpt_t0;

	stall_span_end(st);
	st->in_ckpt = false;
	if (err && !st->ckpt_err)
		st->ckpt_err = err;
	st->ckpts++;
	st->ckpt_sum += d;
	stall_max_set(&st->ckpt_max, d);
}

static void stall_every_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct stall *st = t->data;

	(void)loop;
	(void)revents;
	if (st->in_ckpt || st->ld->stopping)
		return;
	stall_span_end(st);
	st->in_ckpt = true;
	st->ckpt_t0 = now();
	store_pool_checkpoint(st->pool, stall_ckpt_done, st);
}

static void stall_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct stall *st = w->data;

	(void)loop;
	(void)revents;
	st->woke = now();
	st->woke_cpu = thread_cpu();
}

static void stall_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct stall *st = w->data;
	struct stall_max *m = st->in_ckpt ? &st->ckpt : &st->other;

	(void)loop;
	(void)revents;
	if (st->woke == 0)
		return;
	stall_max_set(&m->iter, now() - st->woke);
	stall_max_set(&m->iter_cpu, thread_cpu() - st->woke_cpu);
}

static void stall_stop_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	((struct load *)t->data)->stopping = true;
}

static void stall_watch(struct stall *st, struct ev_loop *loop, bool on)
{
	if (!on) {
		ev_timer_stop(loop, &st->every);
		ev_prepare_stop(loop, &st->prep);
		ev_check_stop(loop, &st->chk);
		return;
	}
	ev_check_init(&st->chk, stall_check_cb);
	ev_set_priority(&st->chk, EV_MAXPRI);   /* first after the poll */
	st->chk.data = st;
	ev_prepare_init(&st->prep, stall_prepare_cb);
	ev_set_priority(&st->prep, EV_MINPRI);  /* last before it */
	st->prep.data = st;
	ev_timer_init(&st->every, stall_every_cb, 1.0, 1.0);
	st->every.data = st;
	ev_check_start(loop, &st->chk);
	ev_prepare_start(loop, &st->prep);
	ev_timer_start(loop, &st->every);
}

static void stall_print(const struct opts *o, const struct stall *st,
                        const struct store_pool_stats *s1, uint64_t acked, double secs)
{
	struct out out;

	out_begin(&out, o->json, "ckptstall", s1->engine);
	out_num(&out, "extents", (double)s1->map_extents, 0);
	out_num(&out, "map_mib", s1->map_bytes / (double)MIB, 1);
	out_num(&out, "seconds", secs, 2);
	out_num(&out, "iops", acked / secs, 0);
	out_num(&out, "checkpoints", st->ckpts, 0);
	out_num(&out, "ckpt_s_avg", st->ckpts ? st->ckpt_sum / st->ckpts : 0, 3);
	out_num(&out, "ckpt_s_max", st->ckpt_max, 3);
	out_num(&out, "iter_max_ckpt_ms", st->ckpt.iter * 1e3, 2);
	out_num(&out, "iter_max_other_ms", st->other.iter * 1e3, 2);
	out_num(&out, "iter_cpu_max_ckpt_ms", st->ckpt.iter_cpu * 1e3, 2);
	out_num(&out, "iter_cpu_max_other_ms", st->other.iter_cpu * 1e3, 2);
	out_num(&out, "write_lat_max_ckpt_ms", st->ckpt.lat * 1e3, 2);
	out_num(&out, "write_lat_max_other_ms", st->other.lat * 1e3, 2);
	out_end(&out);
}

static void test_ckptstall(const struct opts *o, const char *dir)
{
	uint64_t vol_bytes = ((uint64_t)(o->fill_gib * GIB) / o->vols) & ~(MIB - 1);
	struct stall st = { 0 };
	struct store_pool_stats s1;
	struct bench b;
	struct load ld;
	ev_timer stop;
	double t0;

	bench_init(&b, o, dir, "ckptstall", o->pool_gib ? o->pool_gib : 2 * o->fill_gib + 8);
	b.ckpt_secs = 1u << 30;         /* only the bench's checkpoints */
	b.ckpt_log_bytes = 1ull << 50;
	bench_open_or_die(&b);
	bench_vols_create(&b, "c", o->vols, vol_bytes);
	load_init(&ld, &b, 4096, PAT_PERM, vol_bytes);
	load_make_perm(&ld);
	load_run(&ld, b.loop, false);
	load_check(&ld, "the random fill");
	load_fini(&ld);
	if (tl_checkpoint(b.loop, b.pool))
		die("the checkpoint after the fill", -EIO);

	load_init(&ld, &b, 4096, PAT_RANDOM, vol_bytes);
	st.pool = b.pool;
	st.ld = &ld;
	ev_now_update(b.loop);
	stall_watch(&st, b.loop, true);
	ev_timer_init(&stop, stall_stop_cb, o->seconds, 0);
	stop.data = &ld;
	ev_timer_start(b.loop, &stop);
	t0 = now();
	load_run(&ld, b.loop, false);
	while (st.in_ckpt)
		ev_run(b.loop, EVRUN_ONCE);
	stall_span_end(&st);
	stall_watch(&st, b.loop, false);
	ev_timer_stop(b.loop, &stop);
	load_check(&ld, "timed writes");
	if (st.ckpt_err)
		die("a checkpoint in the window", st.ckpt_err);
	store_pool_get_stats(b.pool, &s1);
	stall_print(o, &st, &s1, ld.acked, now() - t0);
	load_fini(&ld);
	bench_fini(&b);
}

/* ---- snapshots, clones, snapcreate ------------------------------------------ */

/* Fills every volume of b front to back with 1 MiB writes. */
static void bench_fill(struct bench *b, uint64_t vol_bytes)
{
	struct load ld;

	load_init(&ld, b, (uint32_t)MIB, PAT_SEQ, vol_bytes);
	load_run(&ld, b->loop, false);
	load_check(&ld, "filling the volumes");
	load_fini(&ld);
}

/* One timed 4 KiB random window over vols[0..n): IOPS. */
static double window_iops(struct bench *b, struct store_vol **vols, unsigned n, bool reads)
{
	struct store_vol *keep[VOLS_MAX];
	unsigned keep_n = b->nvols;
	struct load ld;
	struct window w;
	double iops;

	memcpy(keep, b->vols, sizeof(keep));
	memcpy(b->vols, vols, n * sizeof(*vols));
	b->nvols = n;
	load_init(&ld, b, 4096, PAT_RANDOM, b->o->vol_bytes);
	ld.reads = reads;
	window_run(&w, b, &ld);
	iops = (w.end.acked - w.start.acked) / (w.end.t - w.start.t);
	load_fini(&ld);
	memcpy(b->vols, keep, sizeof(keep));
	b->nvols = keep_n;
	return iops;
}

/* Alternates windows between set a and set b (a, b, b, a, a, b ...) so
 * that drift of the machine falls on both; returns the IOPS of each. */
static void windows_ab(struct bench *b, struct store_vol **a, struct store_vol **c,
                       unsigned n, bool reads, int rounds, double *ia, double *ic)
{
	*ia = *ic = 0;
	for (int r = 0; r < rounds; r++) {
		bool a_first = r % 2 == 0;

		if (a_first)
			*ia += window_iops(b, a, n, reads);
		*ic += window_iops(b, c, n, reads);
		if (!a_first)
			*ia += window_iops(b, a, n, reads);
	}
	*ia /= rounds;
	*ic /= rounds;
}

static void print_ab(struct bench *b, const char *test, const char *what, double plain,
                     double other)
{
	struct store_pool_stats st;
	struct out o;

	store_pool_get_stats(b->pool, &st);
	out_begin(&o, b->o->json, test, st.engine);
	out_str(&o, "load", what);
	out_num(&o, "plain_iops", plain, 0);
	out_num(&o, "other_iops", other, 0);
	out_num(&o, "ratio", plain > 0 ? other / plain : 0, 3);
	out_end(&o);
}

static void test_snapshots(const struct opts *o, const char *dir)
{
	unsigned n = o->vols;
	struct store_vol *plain[VOLS_MAX], *snapped[VOLS_MAX];
	struct bench b;
	double a, c;

	if (2 * n > VOLS_MAX)
		die("--vols: at most 32 for this test", -EINVAL);
	bench_init(&b, o, dir, "snapshots", o->pool_gib ? o->pool_gib : 24);
	bench_open_or_die(&b);
	bench_vols_create(&b, "p", n, o->vol_bytes);
	memcpy(plain, b.vols, n * sizeof(*plain));
	bench_vols_create(&b, "s", n, o->vol_bytes);     /* b.vols: the s set */
	memcpy(snapped, b.vols, n * sizeof(*snapped));
	memcpy(b.vols + n, plain, n * sizeof(*plain));
	b.nvols = 2 * n;
	bench_fill(&b, o->vol_bytes);
	/* 100 snapshots of each s volume, a burst of writes to it between them */
	for (int k = 0; k < 100; k++) {
		struct load ld;

		for (unsigned i = 0; i < n; i++) {
			char vol[16], snap[16];
			int rc;

			snprintf(vol, sizeof(vol), "s%02u", i);
			snprintf(snap, sizeof(snap), "n%03d", k);
			rc = tl_snap_create(b.loop, b.pool, vol, snap);
			if (rc)
				die("creating a snapshot", rc);
		}
		b.nvols = n;
		load_init(&ld, &b, 4096, PAT_RANDOM, o->vol_bytes);
		ld.limit_bytes = o->vol_bytes * n / 200;        /* 0.5% of the blocks */
		load_run(&ld, b.loop, false);
		load_check(&ld, "writes between snapshots");
		load_fini(&ld);
		b.nvols = 2 * n;
	}
	/* the same bursts on the plain set, so both have the same history */
	for (int k = 0; k < 100; k++) {
		struct load ld;

		memcpy(b.vols, plain, n * sizeof(*plain));
		b.nvols = n;
		load_init(&ld, &b, 4096, PAT_RANDOM, o->vol_bytes);
		ld.limit_bytes = o->vol_bytes * n / 200;
		load_run(&ld, b.loop, false);
		load_check(&ld, "writes on the plain set");
		load_fini(&ld);
	}
	memcpy(b.vols, snapped, n * sizeof(*snapped));
	memcpy(b.vols + n, plain, n * sizeof(*plain));
	b.nvols = 2 * n;
	windows_ab(&b, plain, snapped, n, false, 4, &a, &c);
	print_ab(&b, "snapshots", "randwrite4k", a, c);
	windows_ab(&b, plain, snapped, n, true, 4, &a, &c);
	print_ab(&b, "snapshots", "randread4k", a, c);
	bench_fini(&b);
}

static void test_clones(const struct opts *o, const char *dir)
{
	unsigned n = o->vols;
	struct store_vol *plain[VOLS_MAX], *clones[VOLS_MAX];
	struct bench b;
	double a, c;
	int rounds = 4;

	if (2 * n > VOLS_MAX)
		die("--vols: at most 32 for this test", -EINVAL);
	bench_init(&b, o, dir, "clones", o->pool_gib ? o->pool_gib : 24);
	bench_open_or_die(&b);
	bench_vols_create(&b, "p", n, o->vol_bytes);
	memcpy(plain, b.vols, n * sizeof(*plain));
	bench_vols_create(&b, "g", 1, o->vol_bytes);
	memcpy(b.vols + 1, plain, n * sizeof(*plain));
	b.nvols = n + 1;
	bench_fill(&b, o->vol_bytes);
	if (tl_snap_create(b.loop, b.pool, "g00", "gold"))
		die("creating the golden snapshot", -EIO);
	/* fresh clones for every clone window: each window writes to clones
	 * that have never been written */
	a = c = 0;
	for (int r = 0; r < rounds; r++) {
		for (unsigned i = 0; i < n; i++) {
			char name[32];
			int rc;

			snprintf(name, sizeof(name), "c%d-%02u", r, i);
			rc = tl_vol_clone(b.loop, b.pool, "g00@gold", name, false);
			if (rc == 0)
				rc = store_vol_open(b.pool, name, &clones[i]);
			if (rc)
				die("creating a clone", rc);
		}
		if (r % 2 == 0)
			a += window_iops(&b, plain, n, false);
		c += window_iops(&b, clones, n, false);
		if (r % 2 == 1)
			a += window_iops(&b, plain, n, false);
		for (unsigned i = 0; i < n; i++)
			store_vol_close(clones[i]);
	}
	print_ab(&b, "clones", "randwrite4k_fresh", a / rounds, c / rounds);
	bench_fini(&b);
}

/* Creation time of a snapshot and of a clone, each durable when timed. */
static void time_create(struct bench *b, const char *vol, const char *label)
{
	char snap[64], clone[64];
	struct store_vol_info vi;
	struct store_pool_stats st;
	double t0, ts, tc;
	struct out o;
	int rc;

	snprintf(snap, sizeof(snap), "%s@t", vol);
	snprintf(clone, sizeof(clone), "%s-clone", vol);
	t0 = now();
	rc = tl_snap_create(b->loop, b->pool, vol, "t");
	ts = now() - t0;
	t0 = now();
	if (rc == 0)
		rc = tl_vol_clone(b->loop, b->pool, snap, clone, false);
	tc = now() - t0;
	if (rc || store_vol_stat(b->pool, vol, &vi))
		die("timing a snapshot", rc ? rc : -ENOENT);
	store_pool_get_stats(b->pool, &st);
	out_begin(&o, b->o->json, "snapcreate", st.engine);
	out_str(&o, "volume", label);
	out_num(&o, "vol_gib", (double)vi.sectors * STORE_SECTOR / GIB, 1);
	out_num(&o, "mapped_gib", (double)vi.mapped_sectors * STORE_SECTOR / GIB, 2);
	out_num(&o, "extents", (double)vi.extents, 0);
	out_num(&o, "snapshot_ms", ts * 1e3, 3);
	out_num(&o, "clone_ms", tc * 1e3, 3);
	out_end(&o);
}

static void test_snapcreate(const struct opts *o, const char *dir)
{
	double fill = o->fill_gib ? o->fill_gib : 8;
	struct bench b;
	struct load ld;
	char name[16];

	bench_init(&b, o, dir, "snapcreate", o->pool_gib ? o->pool_gib : 2 * fill + 4);
	bench_open_or_die(&b);
	/* 1 GiB filled sequentially, and 1 GiB and fill GiB by random 4 KiB
	 * writes (every block once): few extents, and very many */
	bench_vols_create(&b, "seq", 1, GIB);
	bench_fill(&b, GIB);
	bench_vols_close(&b);
	bench_vols_create(&b, "rnd1g", 1, GIB);
	load_init(&ld, &b, 4096, PAT_PERM, GIB);
	load_make_perm(&ld);
	load_run(&ld, b.loop, false);
	load_check(&ld, "a random fill");
	load_fini(&ld);
	bench_vols_close(&b);
	snprintf(name, sizeof(name), "rnd%.0fg", fill);
	bench_vols_create(&b, "big", 1, (uint64_t)(fill * GIB));
	load_init(&ld, &b, 4096, PAT_PERM, (uint64_t)(fill * GIB));
	load_make_perm(&ld);
	load_run(&ld, b.loop, false);
	load_check(&ld, "a random fill");
	load_fini(&ld);
	bench_vols_close(&b);
	time_create(&b, "seq00", "1g_sequential");
	time_create(&b, "rnd1g00", "1g_random4k");
	time_create(&b, "big00", name);
	bench_fini(&b);
}

/* ---- cleaner ------------------------------------------------------------------ */

/* Fills a volume of util x capacity, overwrites it at random (hot_pct% of
 * writes to the first hot_frac of it) for warm-up x its size, then measures
 * the same for measure x its size. */
static void clean_run(const struct opts *o, const char *dir, const char *label,
                      unsigned hot_pct, double hot_frac)
{
	struct store_pool_stats s0, s1, st;
	struct bench b;
	struct load ld;
	uint64_t vol_bytes;
	double t0, secs;
	struct out out;

	bench_init(&b, o, dir, "cleaner", o->pool_gib ? o->pool_gib : 2);
	bench_open_or_die(&b);
	store_pool_get_stats(b.pool, &st);
	vol_bytes = (uint64_t)(st.capacity_bytes * o->util) & ~(MIB - 1);
	bench_vols_create(&b, "w", 1, vol_bytes);
	bench_fill(&b, vol_bytes);
	for (int phase = 0; phase < 2; phase++) {
		load_init(&ld, &b, 4096, PAT_RANDOM, vol_bytes);
		ld.hot_pct = hot_pct;
		ld.hot_blocks = (uint64_t)(ld.vol_blocks * hot_frac);
		ld.limit_bytes = phase == 0 ? vol_bytes * 3 : vol_bytes * 2;
		store_pool_get_stats(b.pool, &s0);
		t0 = now();
		load_run(&ld, b.loop, false);
		load_check(&ld, "overwrites");
		secs = now() - t0;
		store_pool_get_stats(b.pool, &s1);
		load_fini(&ld);
	}
	{
		uint64_t host = s1.host_write_bytes - s0.host_write_bytes;
		uint64_t dev = s1.device_write_bytes - s0.device_write_bytes;
		uint64_t clean = s1.cleaner_write_bytes - s0.cleaner_write_bytes;
		uint64_t logb = s1.log_write_bytes - s0.log_write_bytes;

		out_begin(&out, o->json, "cleaner", s1.engine);
		out_str(&out, "workload", label);
		out_num(&out, "util", o->util, 2);
		out_num(&out, "segment_mib", (double)s1.segment_bytes / MIB, 0);
		out_num(&out, "write_amp", ratio(dev, host), 3);
		out_num(&out, "wa_log", ratio(logb, host), 3);
		out_num(&out, "wa_cleaner", ratio(clean, host), 3);
		out_num(&out, "wa_checkpoints", ratio(dev - logb - clean, host), 3);
		out_num(&out, "checkpoints", (double)(s1.checkpoints - s0.checkpoints), 0);
		out_num(&out, "cleaned_segments", (double)(s1.cleaned_segments - s0.cleaned_segments), 0);
		out_num(&out, "user_mib_s", host / secs / MIB, 1);
		out_end(&out);
	}
	bench_fini(&b);
}

static void test_cleaner(const struct opts *o, const char *dir)
{
	clean_run(o, dir, "uniform", 0, 0);
	clean_run(o, dir, "hot90/10", 90, 0.10);
	clean_run(o, dir, "hot95/5", 95, 0.05);
}

/* ---- cloneread: 500 clones of one image through the read cache ------------ */

/* A desktop pool: one golden image, 500 clones of its snapshot, 4 KiB
 * random reads spread over all the clones, starting from an empty cache.
 * The cache is keyed by place in the pool, so the image is cached once
 * however many clones read it: misses stay at about the image's blocks and
 * the hit rate climbs towards 1. Then the same window with the cache off
 * (reads through the kernel's page cache) for comparison. */
#define CLONEREAD_CLONES        500

struct cloneread;

struct cr_slot {
	struct cloneread *cr;
	struct iovec      iov;
};

struct cloneread {
	struct store_vol **clones;
	uint64_t           blocks;      /* 4 KiB blocks of the image */
	uint64_t           rng;
	bool               stopping;
	int                inflight;
	uint64_t           done, errors;
	int                first_err;
};

static void cr_issue(struct cr_slot *s);

static void cr_done(void *arg, int err)
{
	struct cr_slot *s = arg;
	struct cloneread *cr = s->cr;

	cr->inflight--;
	if (err) {
		if (cr->errors++ == 0)
			cr->first_err = err;
		cr->stopping = true;
		return;
	}
	cr->done++;
	cr_issue(s);
}

static void cr_issue(struct cr_slot *s)
{
	struct cloneread *cr = s->cr;
	uint64_t c = tl_rand_below(&cr->rng, CLONEREAD_CLONES);
	uint64_t blk = tl_rand_below(&cr->rng, cr->blocks);

	if (cr->stopping)
		return;
	cr->inflight++;
	store_vol_read(cr->clones[c], blk * (4096 / STORE_SECTOR), &s->iov, 1, cr_done, s);
}

static void cr_stop_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	((struct cloneread *)t->data)->stopping = true;
}

/* One timed pass of reads over the clones; prints a line of its figures
 * (what: "cold", from an empty cache, or "warm"). */
static void cloneread_pass(struct bench *b, struct cloneread *cr, uint64_t cache_bytes,
                           const char *what)
{
	struct cr_slot *slots = calloc(b->o->qd, sizeof(*slots));
	char *bufs = xmalloc_aligned((size_t)b->o->qd * 4096);
	struct store_pool_stats s0, st;
	uint64_t done0 = cr->done, hits, misses;
	double t0, secs;
	ev_timer stop;
	struct out o;

	store_pool_get_stats(b->pool, &s0);
	cr->stopping = false;
	ev_now_update(b->loop);
	ev_timer_init(&stop, cr_stop_cb, b->o->seconds, 0);
	stop.data = cr;
	ev_timer_start(b->loop, &stop);
	t0 = now();
	for (unsigned i = 0; i < b->o->qd; i++) {
		slots[i] = (struct cr_slot){ .cr = cr,
		                             .iov = { bufs + (size_t)i * 4096, 4096 } };
		cr_issue(&slots[i]);
	}
	while (cr->inflight > 0)
		ev_run(b->loop, EVRUN_ONCE);
	secs = now() - t0;
	ev_timer_stop(b->loop, &stop);
	if (cr->errors)
		die("reading the clones", cr->first_err);
	store_pool_get_stats(b->pool, &st);
	hits = st.read_cache_hits - s0.read_cache_hits;
	misses = st.read_cache_misses - s0.read_cache_misses;
	out_begin(&o, b->o->json, "cloneread", st.engine);
	out_str(&o, "pass", what);
	out_num(&o, "clones", CLONEREAD_CLONES, 0);
	out_num(&o, "image_mib", (double)cr->blocks * 4096 / MIB, 0);
	out_num(&o, "cache_mib", (double)cache_bytes / MIB, 0);
	out_num(&o, "reads", (double)(cr->done - done0), 0);
	out_num(&o, "iops", (cr->done - done0) / secs, 0);
	out_num(&o, "hits", (double)hits, 0);
	out_num(&o, "misses", (double)misses, 0);
	out_num(&o, "hit_rate", hits + misses ? (double)hits / (double)(hits + misses) : 0, 4);
	out_num(&o, "cached_mib", (double)st.read_cache_bytes / MIB, 1);
	out_end(&o);
	free(slots);
	free(bufs);
}

/* Opens the pool with a read cache of cache_bytes (0: none) and reads the
 * clones twice: from cold, then warm. */
static void cloneread_window(struct bench *b, uint64_t cache_bytes, uint64_t blocks)
{
	struct store_vol *clones[CLONEREAD_CLONES];
	struct cloneread cr = { .clones = clones, .blocks = blocks,
	                        .rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() };

	b->cache_bytes = cache_bytes;
	bench_open_or_die(b);
	for (unsigned i = 0; i < CLONEREAD_CLONES; i++) {
		char name[32];
		int rc;

		snprintf(name, sizeof(name), "desk%03u", i);
		rc = store_vol_open(b->pool, name, &clones[i]);
		if (rc)
			die("opening a clone", rc);
	}
	cloneread_pass(b, &cr, cache_bytes, "cold");
	cloneread_pass(b, &cr, cache_bytes, "warm");
	for (unsigned i = 0; i < CLONEREAD_CLONES; i++)
		store_vol_close(clones[i]);
	bench_close(b);
}

static void test_cloneread(const struct opts *o, const char *dir)
{
	uint64_t bytes = o->vol_bytes;
	struct bench b;

	bench_init(&b, o, dir, "cloneread", o->pool_gib ? o->pool_gib : 4);
	bench_open_or_die(&b);
	bench_vols_create(&b, "img", 1, bytes);
	bench_fill(&b, bytes);
	bench_vols_close(&b);
	if (tl_snap_create(b.loop, b.pool, "img00", "gold"))
		die("creating the golden snapshot", -EIO);
	for (unsigned i = 0; i < CLONEREAD_CLONES; i++) {
		char name[32];
		int rc;

		snprintf(name, sizeof(name), "desk%03u", i);
		rc = tl_vol_clone(b.loop, b.pool, "img00@gold", name, false);
		if (rc)
			die("creating a clone", rc);
	}
	bench_close(&b);
	/* room for the image and its index, starting empty */
	cloneread_window(&b, bytes + bytes / 8, bytes / 4096);
	cloneread_window(&b, 0, bytes / 4096);
	bench_fini(&b);
}

/* ---- main ------------------------------------------------------------------- */

static char own_dir[PATH_MAX];
static pid_t own_dir_pid;

static void own_dir_cleanup(void)
{
	if (own_dir[0] && getpid() == own_dir_pid && rmdir(own_dir) != 0)
		fprintf(stderr, "store-bench: %s left behind: %s\n", own_dir, strerror(errno));
}

/* --dir, or a fresh directory under /var/tmp: /tmp may be tmpfs, which
 * measures RAM and refuses O_DIRECT. */
static const char *bench_dir(const struct opts *o)
{
	if (o->dir)
		return o->dir;
	snprintf(own_dir, sizeof(own_dir), "/var/tmp/store-bench-XXXXXX");
	if (!mkdtemp(own_dir))
		die("mkdtemp under /var/tmp", -errno);
	own_dir_pid = getpid();        /* not the recovery child's to remove */
	atexit(own_dir_cleanup);
	return own_dir;
}

static bool want(const struct opts *o, const char *test)
{
	return !strcmp(o->test, "all") || !strcmp(o->test, test);
}

int main(int argc, char **argv)
{
	struct opts o;
	const char *dir;

	parse_args(&o, argc, argv);
	if (!want(&o, "randwrite4k") && !want(&o, "randwrite64k") &&
	    !want(&o, "mapmem") && !want(&o, "recovery") && !want(&o, "snapshots") &&
	    !want(&o, "clones") && !want(&o, "snapcreate") && !want(&o, "cleaner") &&
	    !want(&o, "cloneread") && strcmp(o.test, "ckptstall")) {
		usage(stderr);
		return 2;
	}
	dir = bench_dir(&o);
	if (want(&o, "randwrite4k"))
		test_randwrite(&o, dir, "randwrite4k", 4096);
	if (want(&o, "randwrite64k"))
		test_randwrite(&o, dir, "randwrite64k", 64 * 1024);
	if (want(&o, "mapmem"))
		test_mapmem(&o, dir);
	if (want(&o, "recovery"))
		test_recovery(&o, dir);
	if (want(&o, "snapshots"))
		test_snapshots(&o, dir);
	if (want(&o, "clones"))
		test_clones(&o, dir);
	if (want(&o, "snapcreate"))
		test_snapcreate(&o, dir);
	if (want(&o, "cleaner"))
		test_cleaner(&o, dir);
	if (want(&o, "cloneread"))
		test_cloneread(&o, dir);
	if (!strcmp(o.test, "ckptstall"))
		test_ckptstall(&o, dir);
	return 0;
}
