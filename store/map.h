/* store/map.h: a volume's map from logical sector to log location (private).
 *
 * An in-memory B+tree of extents, 16 bytes each: [lba, lba+len) of the volume
 * lives at pba (sector address in the pool). Extents never overlap; holes
 * read as zeros. Nodes carry a reference count so that a snapshot or clone
 * can share a whole tree and copy only the path it modifies (copy-on-write of
 * map nodes, never of data).
 */
#ifndef SLUICE_STORE_MAP_H
#define SLUICE_STORE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAP_LBA_BITS    40
#define MAP_LEN_BITS    24
#define MAP_PBA_BITS    48
#define MAP_LEN_MAX     ((1u << MAP_LEN_BITS) - 1)     /* sectors in one extent */
#define MAP_PBA_MAX     ((1ull << MAP_PBA_BITS) - 1)

struct store_map_ext {
	uint64_t lba : MAP_LBA_BITS;
	uint64_t len : MAP_LEN_BITS;
	uint64_t pba : MAP_PBA_BITS;
	uint64_t spare : 16;
};

struct store_map_node;

struct store_map {
	struct store_map_node *root;    /* NULL: empty */
	uint64_t extents;
	uint64_t mapped;                /* sectors */
	uint64_t nodes;                 /* allocated for this map */
};

/* Called for every piece of a mapping that set/unmap displaces. */
typedef void store_map_free_fn(void *arg, uint64_t pba, uint64_t len);
/* Called in LBA order for every extent piece overlapping a range, clipped to it. */
typedef int store_map_visit_fn(void *arg, uint64_t lba, uint64_t len, uint64_t pba);

void store_map_init(struct store_map *m);
/* Drops this map's references; freed() sees every extent it held alone. */
void store_map_fini(struct store_map *m, store_map_free_fn *freed, void *arg);
/* Maps [lba, lba+len) to pba.., replacing what was there. 0 or -ENOMEM. */
int  store_map_set(struct store_map *m, uint64_t lba, uint64_t len, uint64_t pba,
                   store_map_free_fn *freed, void *arg);
/* Removes [lba, lba+len). 0 or -ENOMEM (splitting an extent allocates). */
int  store_map_unmap(struct store_map *m, uint64_t lba, uint64_t len,
                     store_map_free_fn *freed, void *arg);
/* Visits mapped pieces of [lba, lba+len); stops at the first non-zero return. */
int  store_map_visit(const struct store_map *m, uint64_t lba, uint64_t len,
                     store_map_visit_fn *visit, void *arg);
/* Bytes of RAM held by the nodes of this map. */
uint64_t store_map_mem_bytes(const struct store_map *m);
/* Structural self-check (key order, no overlap, counters). 0 or -EUCLEAN. */
int  store_map_verify(const struct store_map *m);

#endif
