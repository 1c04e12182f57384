/* tests/lib/pool_damage.h: a pool with known contents, damaged copies of
 * its image, and the judge of what the store makes of them (for
 * tests/unit/test_corrupt*.c; these helpers fail the running cmocka test).
 *
 * A scenario builds a small pool on the memory backend: five volumes and a
 * few metadata records, two checkpoints, and then a log tail of acknowledged
 * writes, volume and metadata changes and an unmap that only replay can
 * bring back. Its durable image is taken
 * before the final checkpoint (the "tail" image) and again after a clean
 * close (the "clean" image), with a model of every volume and, for every
 * live sector, the place in the image its data lies.
 *
 * A damaged image must either be refused with a clear error, without
 * anything written, or open with every acknowledged sector reading back
 * exactly (a read may also fail with an error), and the recovered pool must
 * close and reopen the same. Two exceptions follow from the format, and the
 * judge allows exactly them:
 *  - the last record of the log: damage there cannot be told from a write
 *    torn by a power cut, so its writes may be lost (they read as before);
 *  - data of records older than the checkpoint: open does not re-read it
 *    (store_pool_check does), so when damaged bytes lie in live data, those
 *    sectors may read wrong, but store_pool_check must report a problem.
 */
#ifndef SLUICE_POOL_DAMAGE_H
#define SLUICE_POOL_DAMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/pool_image.h"

#define POOL_BYTES   (12ull << 20)
#define SEG_BYTES    (1u << 20)
#define NVOL         5
#define VOL_MAX      4096           /* sectors */
#define CHUNK        128            /* sectors per verifying read */

enum { ALPHA, BETA, GAMMA, DELTA, EPS };
extern const char *const vol_name[NVOL];

struct mvol {
	bool      exists;
	uint64_t  sectors;
	uint8_t  *data;                 /* VOL_MAX sectors */
};

/* Metadata records (store_meta_put): a few keys, one value spanning
 * several sectors. */
#define NMETA        4
#define META_MAX     4096
extern const char *const meta_key[NMETA];

struct mmeta {
	bool      exists;
	size_t    len;
	uint8_t   value[META_MAX];
};

struct model {
	struct mvol  v[NVOL];
	struct mmeta meta[NMETA];
};

/* Where an acknowledged sector's data lies in the image, and in which record. */
struct loc {
	uint64_t off;                   /* 0: nowhere (a hole) */
	uint64_t seq;
};

struct scenario {
	uint8_t         *img;
	uint64_t         size;
	struct model     final, prev;   /* prev: before the last record */
	struct pool_image im;
	uint64_t         ckpt_seq;      /* the newest root replays the records after it */
	uint64_t         versions;      /* writes made (model_pattern() versions) */
	const struct img_rec *last;     /* the last record, when it is replayed */
	struct loc      *loc[NVOL];
};

/* A pool being written, and the model it must match. */
struct live {
	struct ev_loop       *loop;
	struct crash_backend *cb;
	struct store_pool    *pool;
	struct model         *m;
	uint64_t              version;
};

/* One damaged copy of a scenario's image and what the judge may allow. */
struct damage {
	char      desc[200];
	uint8_t  *img;
	uint64_t  size;                 /* smaller when truncated */
	bool      must_open;            /* only copy A of the superblock was hit */
	bool      last_hit;             /* bytes of the last record changed */
	uint64_t  old_hit;              /* live pre-checkpoint sectors changed */
	bool     *old[NVOL];            /* which ones */
};

struct verdict {
	int  fail;                      /* 0, or why the store got it wrong (F_*) */
	char why[240];
	bool last_lost, old_wrong, read_err;
};

enum { F_NONE, F_ERRCODE, F_WROTE, F_MUST_OPEN, F_VOLUME, F_DATA, F_META, F_CHECK,
       F_CLOSE, F_REOPEN, F_COUNT };
extern const char *const judge_fail_name[F_COUNT];

bool damage_verbose(void);              /* $SLUICE_TEST_VERBOSE */
void damage_log(void *arg, enum store_log_level level, const char *msg);

void model_init(struct model *m);
void model_copy(struct model *dst, const struct model *src);
void model_fini(struct model *m);
uint64_t model_mix(uint64_t x);
/* Data no other sector of any version holds, so a misplaced read shows. */
void model_pattern(uint8_t *buf, int vol, uint64_t lba, uint64_t sectors, uint64_t version);

int  live_open(struct live *l, uint64_t create);
void live_write(struct live *l, int vol, uint64_t lba, uint64_t sectors);
void live_unmap(struct live *l, int vol, uint64_t lba, uint64_t sectors);
void live_create(struct live *l, int vol, uint64_t sectors, bool write_back);
void live_delete(struct live *l, int vol);
void live_resize(struct live *l, int vol, uint64_t sectors);
void live_meta_put(struct live *l, int key, size_t len);
void live_meta_delete(struct live *l, int key);

/* Copies l's durable image and the models; locate: also work out where
 * every sector lies (needs every record since the format still there). */
void scenario_take(struct scenario *s, const struct live *l, uint64_t size,
                   const struct model *final, const struct model *prev, bool locate);
/* The tail image (before the final checkpoint) and the clean one (after). */
void scenarios_build(struct scenario *tail, struct scenario *clean);
void scenario_free(struct scenario *s);

void damage_init(struct damage *d, const struct scenario *s, const char *what);
void damage_free(struct damage *d);
void damage_flip(uint8_t *img, uint64_t off, unsigned bit);
/* Works out, from the bytes that differ, which exceptions apply. */
void damage_classify(struct damage *d, const struct scenario *s);

bool judge_clear_error(int rc);
int  judge_open(struct ev_loop *loop, struct crash_backend *cb, struct store_pool **p);
/* Opens the damaged image; judges it; closes, reopens and judges again. */
void judge_damage(const struct scenario *s, const struct damage *d, struct verdict *v,
                  int *open_rc);
/* Classifies and judges; returns the open's result, and the verdict in why
 * (empty when the store did right). */
int  judge_sound(const struct scenario *s, struct damage *d, char *why, size_t cap);
/* judge_sound, failing the test (after freeing d) on a wrong verdict. */
int  expect_sound(const struct scenario *s, struct damage *d);

#endif
