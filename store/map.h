/* store/map.h: a volume's map from logical sector to log address (private).
 *
 * An in-memory B+tree of extents, 16 bytes each: [lba, lba+len) of the volume
 * holds the data at log address la (store/addr.c says where that is on the
 * device; the map never changes when the cleaner moves data). Extents never
 * overlap; holes read as zeros. Nodes carry a reference count so that a
 * snapshot or clone shares a whole tree and copies only the path it modifies
 * (copy-on-write of map nodes, never of data).
 *
 * Reference counting of data: the map reports, through its ref callback,
 * every change in how many leaves hold a log-address range: +1 when an extent
 * enters a leaf (a write, or a shared leaf copied on its first change), -1
 * when it leaves one (overwritten, unmapped, or the last reference to the
 * leaf dropped). A range whose count falls to 0 is referenced by nothing:
 * no volume, snapshot or clone.
 */
#ifndef SLUICE_STORE_MAP_H
#define SLUICE_STORE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAP_LBA_BITS    40
#define MAP_LEN_BITS    24
#define MAP_LEN_MAX     ((1u << MAP_LEN_BITS) - 1)     /* sectors in one extent */
#define MAP_NODE_BYTES  4096

struct store_map_ext {
	uint64_t lba : MAP_LBA_BITS;
	uint64_t len : MAP_LEN_BITS;
	uint64_t la;
};

struct store_map_node;

/* la: log address; delta: +1 or -1 leaves holding [la, la+len). */
typedef void store_map_ref_fn(void *arg, uint64_t la, uint64_t len, int delta);
/* Called in LBA order for every extent piece overlapping a range, clipped to it. */
typedef int store_map_visit_fn(void *arg, uint64_t lba, uint64_t len, uint64_t la);

struct store_map {
	struct store_map_node *root;    /* NULL: empty */
	uint64_t extents;               /* of this map's view */
	uint64_t mapped;                /* sectors */
	uint64_t *nodes;                /* nodes allocated, shared by all maps of a pool */
	store_map_ref_fn *ref;
	void    *ref_arg;
};

/* nodes: a counter shared by the maps that may share nodes (may be NULL). */
void store_map_init(struct store_map *m, store_map_ref_fn *ref, void *arg, uint64_t *nodes);
/* Drops this map's references to its nodes (and so to their data). */
void store_map_fini(struct store_map *m);
/* Makes empty dst a copy of src in O(1): they share every node until one of
 * them changes. */
void store_map_share(struct store_map *dst, const struct store_map *src);
/* Maps [lba, lba+len) to la.., replacing what was there. 0 or -ENOMEM. */
int  store_map_set(struct store_map *m, uint64_t lba, uint64_t len, uint64_t la);
/* Removes [lba, lba+len). 0 or -ENOMEM (splitting an extent allocates). */
int  store_map_unmap(struct store_map *m, uint64_t lba, uint64_t len);
/* Visits mapped pieces of [lba, lba+len); stops at the first non-zero return. */
int  store_map_visit(const struct store_map *m, uint64_t lba, uint64_t len,
                     store_map_visit_fn *visit, void *arg);
/* Sectors of data that no other map references: the extents in nodes only
 * this map reaches, counted by only() (sectors of [la, la+len) that one
 * leaf holds). What deleting the map would free. */
typedef uint64_t store_map_only_fn(void *arg, uint64_t la, uint64_t len);
uint64_t store_map_unique(const struct store_map *m, store_map_only_fn *only, void *arg);
/* Structural self-check (key order, no overlap, counters). 0 or -EUCLEAN. */
int  store_map_verify(const struct store_map *m);

/* Checkpoints write each node once however many maps share it, children
 * before parents, and read them back with the sharing intact. */
struct store_map_saver {
	char    *buf;                   /* grows as needed */
	size_t   len, cap;
	uint32_t next_id;
	uint32_t gen;
};
/* Appends the nodes of m not yet saved; *root gets m's root id (0: empty). */
int  store_map_save(struct store_map_saver *s, const struct store_map *m, uint32_t *root);
struct store_map_loader {
	struct store_map_node **node;   /* by id - 1 */
	uint32_t n, cap;
};
/* Parses every saved node of buf[0, len); *used gets the bytes taken. */
int  store_map_load_nodes(struct store_map_loader *l, const char *buf, size_t len,
                          uint32_t count, size_t *used);
/* Makes empty m the tree rooted at id (its extents and mapped counts are
 * the caller's to set: the checkpoint stores them). */
int  store_map_load_root(struct store_map_loader *l, struct store_map *m, uint32_t id);
/* Adds each loaded leaf's extents to the reference counts (through ref, once
 * per leaf) and frees the loader. -EUCLEAN when a node has no parent and no
 * root: then nothing was counted, and the caller aborts. */
int  store_map_loader_finish(struct store_map_loader *l, store_map_ref_fn *ref, void *arg,
                             uint64_t *nodes);
/* A failed load: every map that took a root must be forgotten first. */
void store_map_loader_abort(struct store_map_loader *l);
void store_map_forget(struct store_map *m);

#endif
