/* store/addr.h: the address table (private to store/).
 *
 * Maps hold log addresses, not device addresses. A log address names a
 * sector of record data forever: the record's seq and the sector's offset in
 * its data, la = seq << ADDR_OFF_BITS | off. Seqs are never reused, so no two
 * writes ever share a log address, and a log address orders data by age.
 *
 * This table says, for every log address some map still references, where
 * its data is on the device (pba) and how many map leaves hold it (refs, the
 * count store/map.h reports). It is the one place that changes when data
 * moves (the cleaner), however many volumes, snapshots and clones reference
 * it: they share the log address, not the device address (the indirection
 * of NetApp's virtual block numbers or LSVD's object map). A range whose
 * refs fall to zero leaves the table, and its sectors stop counting as live
 * in their segment: that is the store's space accounting.
 *
 * Layout: a hash table of records by seq; each record holds its runs, sorted
 * by offset: [off, off+len) at pba with refs. Neighbouring runs with the same
 * refs and contiguous device addresses merge, so a record written whole and
 * never overwritten is one run.
 */
#ifndef SLUICE_STORE_ADDR_H
#define SLUICE_STORE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_OFF_BITS   16      /* a record's data is at most 16384 sectors */

static inline uint64_t addr_la(uint64_t seq, uint64_t off)
{
	return seq << ADDR_OFF_BITS | off;
}

/* sign +1: [pba, pba+len), the data of log address la.., became live
 * there; -1: it died there (or moved away). */
typedef void addr_live_fn(void *arg, uint64_t la, uint64_t pba, uint64_t len, int sign);
typedef int  addr_visit_fn(void *arg, uint64_t la, uint64_t len, uint64_t pba);
typedef bool addr_pba_ok_fn(void *arg, uint64_t pba, uint64_t len);

struct addr_rec;
struct addr_defer;

/* A checkpoint's save of the table as it was at one moment, made a slice
 * at a time while the table changes (store/ckpt.c): a record that existed
 * then is written out before its first change, or by the slices, whichever
 * comes first (its gen says it is done); records made since are not part
 * of it. The table does not grow meanwhile, so the slices can go through
 * it bucket by bucket. */
struct addr_save {
	bool      active;
	uint32_t  gen;
	char     *buf;                  /* store_addr_save_bytes() at the start */
	size_t    len, cap;
	uint64_t  recs;                 /* written */
	uint64_t  bucket;               /* the slices' next */
};

struct store_addr {
	struct addr_rec **bucket;
	uint64_t          mask;
	uint64_t          nrecs, nruns;
	uint64_t          live;         /* sectors referenced */
	addr_live_fn     *live_fn;
	void             *live_arg;
	int               err;          /* sticky: a change found corruption or no memory */
	struct addr_save  sv;
	struct addr_defer *dq;          /* changes deferred to a second thread */
};

int  store_addr_init(struct store_addr *t, addr_live_fn *live, void *arg);
/* Replay: from start, adds and reference changes go in order to a second
 * thread (addr.c says why) and come back at once; their errors land in err
 * by stop at the latest. Any other call waits for the thread to catch up.
 * The live callback runs on that thread meanwhile. start: 0, or a negative
 * errno and nothing deferred. */
int  store_addr_defer_start(struct store_addr *t);
void store_addr_defer_stop(struct store_addr *t);
void store_addr_fini(struct store_addr *t);
/* A record's data sectors [la, la+len) written at pba: refs 0 until a map
 * takes them. 0 or -ENOMEM. */
int  store_addr_add(struct store_addr *t, uint64_t la, uint64_t len, uint64_t pba);
/* store_map_ref_fn; arg is the table. A range not in the table sets err. */
void store_addr_ref(void *arg, uint64_t la, uint64_t len, int delta);
/* store_map_only_fn: sectors of [la, la+len) that one leaf alone holds. */
uint64_t store_addr_only(void *arg, uint64_t la, uint64_t len);
/* Hints for replay, in two steps some work apart: brings la's record into
 * the cache, then (runs) the runs of that record. */
void store_addr_prefetch(const struct store_addr *t, uint64_t la, bool runs);
/* Visits [la, la+len) in order as pieces on the device; -EUCLEAN when part
 * of it is not in the table. */
int  store_addr_visit(const struct store_addr *t, uint64_t la, uint64_t len,
                      addr_visit_fn *visit, void *arg);
/* The cleaner moved the data of [la, la+len) from from.. to to..: the parts
 * still in the table and still at from.. are now at to.. (a part that died
 * meanwhile stays dead). */
void store_addr_move(struct store_addr *t, uint64_t la, uint64_t len, uint64_t from,
                     uint64_t to);
/* Visits the runs of record seq whose data lies in [lo, hi) (device
 * sectors), each whole, in order. */
int  store_addr_visit_record(const struct store_addr *t, uint64_t seq, uint64_t lo,
                             uint64_t hi, addr_visit_fn *visit, void *arg);
/* Drops runs nothing references; returns how many sectors that was. */
uint64_t store_addr_prune(struct store_addr *t);

/* Checkpoints: per record u64 seq, u32 n, u32 0, then n runs of u16 off,
 * u16 len, u32 0, u64 pba. refs are not saved: loading the maps counts them. */
size_t store_addr_save_bytes(const struct store_addr *t);
size_t store_addr_save(const struct store_addr *t, char *buf);
int  store_addr_load(struct store_addr *t, const char *buf, size_t len, uint64_t count,
                     addr_pba_ok_fn *ok, void *arg, size_t *used);
/* The same save as store_addr_save, of the table as it is now, into buf
 * (store_addr_save_bytes() long) while the table goes on changing: begin,
 * then some() until it returns true (at most max buckets a call), then
 * end; t->sv.recs records were written. gen: a number not used by the
 * save before. */
void store_addr_save_begin(struct store_addr *t, uint32_t gen, char *buf);
bool store_addr_save_some(struct store_addr *t, uint64_t max);
void store_addr_save_end(struct store_addr *t);

#endif
