/* tests/lib/testlib.h: helpers the store tests share: running the loop until
 * an operation completes, synchronous wrappers, seeded randomness. */
#ifndef SLUICE_TESTLIB_H
#define SLUICE_TESTLIB_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct tl_op {
	bool done;
	int  err;
};

void tl_done(void *arg, int err);
/* Runs the loop until op completes; aborts the test run after 120 s. */
int  tl_wait(struct ev_loop *loop, struct tl_op *op);
/* Runs the loop until *pending drops to zero (bounded like tl_wait). */
void tl_wait_count(struct ev_loop *loop, const int *pending);

int tl_vol_create(struct ev_loop *l, struct store_pool *p, const char *name,
                  uint64_t sectors, bool write_back);
int tl_vol_delete(struct ev_loop *l, struct store_pool *p, const char *name);
int tl_vol_resize(struct ev_loop *l, struct store_pool *p, const char *name, uint64_t sectors);
int tl_vol_set_wb(struct ev_loop *l, struct store_pool *p, const char *name, bool on);
int tl_write(struct ev_loop *l, struct store_vol *v, uint64_t lba, const void *buf,
             size_t bytes, unsigned flags);
int tl_read(struct ev_loop *l, struct store_vol *v, uint64_t lba, void *buf, size_t bytes);
int tl_readv(struct ev_loop *l, struct store_vol *v, uint64_t lba, const struct iovec *iov,
             int iovcnt);
int tl_unmap(struct ev_loop *l, struct store_vol *v, uint64_t lba, uint64_t sectors);
int tl_flush(struct ev_loop *l, struct store_vol *v);
int tl_checkpoint(struct ev_loop *l, struct store_pool *p);
int tl_snap_create(struct ev_loop *l, struct store_pool *p, const char *vol, const char *snap);
int tl_snap_group(struct ev_loop *l, struct store_pool *p, const char *const *vols, size_t n,
                  const char *snap);
int tl_snap_delete(struct ev_loop *l, struct store_pool *p, const char *vol, const char *snap);
int tl_snap_rollback(struct ev_loop *l, struct store_pool *p, const char *vol, const char *snap);
int tl_vol_clone(struct ev_loop *l, struct store_pool *p, const char *snapshot,
                 const char *name, bool write_back);
int tl_copy(struct ev_loop *l, struct store_vol *dst, uint64_t dst_lba, struct store_vol *src,
            uint64_t src_lba, uint64_t sectors);
int tl_pool_close(struct ev_loop *l, struct store_pool *p);

/* The seed: $SLUICE_SEED if set, else from the clock; printed either way so
 * that a failure can be replayed. */
uint64_t tl_seed(const char *test);
uint64_t tl_rand(uint64_t *state);              /* xorshift64* */
uint64_t tl_rand_below(uint64_t *state, uint64_t n);

/* A scratch directory for pool files, removed by tl_scratch_cleanup(). */
const char *tl_scratch_dir(void);
void tl_scratch_cleanup(void);

/* Log hook: prints errors, and everything when $SLUICE_TEST_VERBOSE is set.
 * Tests that provoke failures on purpose set tl_log_quiet. */
extern bool tl_log_quiet;
void tl_log(void *arg, enum store_log_level level, const char *msg);

#endif
