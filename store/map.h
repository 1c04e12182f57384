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

/* A checkpoint's frozen view of the maps, saved a slice at a time while
 * writes go on (store/ckpt.c). While it is active, a node that existed when
 * it began (its save_gen is not gen) is neither changed nor freed in place:
 * a change first copies the node, the copy taking its place and its
 * references with nothing counted again (map.h's reference counts are of
 * live leaves, and the view holds none), and a node no map needs any more
 * waits in retired. So every tree reachable from a root taken at the start
 * stays as it was, node for node, until it is saved. A node saved already
 * may change (its content is written) but not go: a parent saved later
 * still reads its id. Retired nodes are freed once the view ends, a few at
 * a time. A map takes part from store_map_freeze_join() on; a map shared
 * from one that takes part does too. */
struct store_map_freeze {
	bool      active;
	uint32_t  gen;                  /* the checkpoint's saver generation */
	uint64_t *nodes;                /* the pool's node counter */
	struct store_map_node **retired;
	size_t    nretired, cap;
	uint64_t  leaked;               /* no memory to note them: never freed */
};

struct store_map {
	struct store_map_node *root;    /* NULL: empty */
	uint64_t extents;               /* of this map's view */
	uint64_t mapped;                /* sectors */
	uint64_t *nodes;                /* nodes allocated, shared by all maps of a pool */
	store_map_ref_fn *ref;
	void    *ref_arg;
	struct store_map_freeze *fz;    /* NULL: never frozen */
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
/* Replay's hints: bring the leaf holding lba into the cache; peek at the
 * log address mapped at lba (false: a hole). Neither changes anything. */
void store_map_prefetch(const struct store_map *m, uint64_t lba);
bool store_map_peek(const struct store_map *m, uint64_t lba, uint64_t *la);
/* Sectors of data that no other map references: the extents in nodes only
 * this map reaches, counted by only() (sectors of [la, la+len) that one
 * leaf holds). What deleting the map would free. */
typedef uint64_t store_map_only_fn(void *arg, uint64_t la, uint64_t len);
uint64_t store_map_unique(const struct store_map *m, store_map_only_fn *only, void *arg);
/* Structural self-check (key order, no overlap, counters). 0 or -EUCLEAN. */
int  store_map_verify(const struct store_map *m);

/* Freezing (see struct store_map_freeze): begin a view of generation gen,
 * make m take part, end it (retired nodes stay until reaped), and free up
 * to max retired nodes (all: SIZE_MAX); returns how many are left. */
void store_map_freeze_begin(struct store_map_freeze *fz, uint32_t gen, uint64_t *nodes);
void store_map_freeze_join(struct store_map *m, struct store_map_freeze *fz);
void store_map_freeze_end(struct store_map_freeze *fz);
size_t store_map_freeze_reap(struct store_map_freeze *fz, size_t max);

/* Checkpoints write each node once however many maps share it, children
 * before parents, and read them back with the sharing intact. */
#define MAP_SAVE_DEPTH 16
struct store_map_saver {
	char    *buf;                   /* grows as needed, unless fixed */
	size_t   len, cap;
	bool     fixed;                 /* buf is the caller's, cap bytes: never grown */
	uint32_t next_id;
	uint32_t gen;
	struct {                        /* a save in progress: the path from its root */
		struct store_map_node *n;
		unsigned i;             /* the next child to look at */
	} path[MAP_SAVE_DEPTH];
	unsigned depth;
};
/* Appends the nodes of m not yet saved; *root gets m's root id (0: empty). */
int  store_map_save(struct store_map_saver *s, const struct store_map *m, uint32_t *root);
/* The same a slice at a time, from root (a map's root when the save began,
 * kept from changing by a freeze): saves at most *budget more nodes (it
 * drops by those saved). 1 when root is saved whole (*id: its id, 0 for
 * NULL), 0 when the budget ran out first (call again with the same root),
 * or a negative errno (-EFBIG: a fixed buffer is full). */
int  store_map_save_some(struct store_map_saver *s, struct store_map_node *root,
                         uint32_t *id, unsigned *budget);
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
