/* store/map.c: per-volume extent map, a B+tree with copy-on-write nodes.
 *
 * Leaves hold up to MAP_LEAF_CAP extents sorted by lba; inner nodes hold up to
 * MAP_INNER_CAP children with key[i] equal to the smallest lba in child i.
 * Keys are kept exact (updated on every change below them), so every extent
 * of child i ends at or before key[i+1] and a range search can route by keys
 * alone.
 *
 * Sharing: a node's refs counts the trees and parents pointing at it. Before
 * changing a node reached from the root, node_own() copies it if refs > 1
 * (the path copy of a persistent B+tree). A copied leaf is one more leaf
 * holding each of its extents, so the copy reports +1 for each (map.h).
 *
 * Memory: a node is 4 KiB; extents are 16 bytes. Leaves split in half, except
 * at the right edge of the tree where a sequential fill splits 90/10, which
 * keeps leaves nearly full for sequential data.
 *
 * Paging under a memory budget (a design; none of it is built yet). Leaves
 * are 255 of every 256 nodes, so only leaves page; inner nodes stay.
 *  - Where a paged leaf lives: in the last checkpoint's payload, which holds
 *    every node as it was at P. A leaf unchanged since (clean: a dirty bit
 *    that node_own() and every in-place change set, cleared when a
 *    checkpoint saves it) can be dropped from memory and read back from
 *    there. Its parent's child pointer becomes a tagged reference (low bit
 *    set: payload generation and byte offset), the leaf's refs, extent
 *    count and smallest lba kept beside it in the parent.
 *  - Eviction: CLOCK over clean leaves, when map_nodes * 4 KiB passes a
 *    pool option (map_memory_bytes). Dirty leaves cannot go: when they pass
 *    a share of the budget, a checkpoint is asked for (it cleans them).
 *  - Faults never block the loop. A read that reaches a tagged leaf reads
 *    it (one 4 KiB read, like a data read) and resumes. Writes must apply in
 *    seq order without waiting (D3), so the log faults in and pins the
 *    leaves a batch will change when it seals the batch, before its write is
 *    submitted; apply then finds them resident. Replay faults synchronously
 *    (open may block), ahead of the entries, from the reader thread.
 *  - Checkpoints: a frozen view (struct store_map_freeze) may hold tagged
 *    leaves; saving one copies its bytes from the old payload. Better, a
 *    format change (FMT_VERSION 3): a saved node may be a reference to a
 *    node of the previous payload, so unchanged nodes are not written again
 *    and a checkpoint costs O(changed nodes); the older payload's segments
 *    are then freed only when no newer payload refers into them.
 *  - The address table (16 bytes a run) needs the same for pools larger
 *    than RAM; its records page by seq range the same way.
 */
#include "store/map.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define MAP_NODE_HDR    16
#define MAP_LEAF_CAP    ((MAP_NODE_BYTES - MAP_NODE_HDR) / sizeof(struct store_map_ext))
#define MAP_INNER_CAP   ((MAP_NODE_BYTES - MAP_NODE_HDR) / 16)

struct store_map_node {
	uint32_t refs;
	uint16_t n;
	uint8_t  leaf;
	uint8_t  pad;
	uint32_t save_gen;              /* checkpoint that last saved it */
	uint32_t save_id;               /* its id in that checkpoint */
	union {
		struct store_map_ext ext[MAP_LEAF_CAP];
		struct {
			uint64_t key[MAP_INNER_CAP];
			struct store_map_node *child[MAP_INNER_CAP];
		} in;
	};
};

_Static_assert(sizeof(struct store_map_node) <= MAP_NODE_BYTES, "a node fits 4 KiB");

struct map_op {
	struct store_map  *m;           /* counts extents and sectors */
	bool               quiet;       /* an extent split in place: no ref changes */
};

static void ref_change(const struct store_map *m, uint64_t la, uint64_t len, int delta)
{
	if (m->ref && len)
		m->ref(m->ref_arg, la, len, delta);
}

static void nodes_add(const struct store_map *m, int delta)
{
	if (m->nodes)
		*m->nodes += (uint64_t)(int64_t)delta;
}

/* ---- freezing (map.h: struct store_map_freeze) ---------------------------- */

static bool freeze_on(const struct store_map *m)
{
	return m->fz && m->fz->active;
}

/* The save_gen of a node made now: not part of a running view. */
static uint32_t young_gen(const struct store_map *m)
{
	return freeze_on(m) ? m->fz->gen : 0;
}

/* Part of the view and not saved yet: must not change. */
static bool node_frozen(const struct store_map *m, const struct store_map_node *n)
{
	return freeze_on(m) && n->save_gen != m->fz->gen;
}

/* Part of the view (saved or not): must not be freed yet. */
static bool node_kept(const struct store_map *m, const struct store_map_node *n)
{
	return freeze_on(m) && (n->save_gen != m->fz->gen || n->save_id != 0);
}

static void node_retire(const struct store_map *m, struct store_map_node *n)
{
	struct store_map_freeze *fz = m->fz;

	if (fz->nretired == fz->cap) {
		size_t cap = fz->cap ? fz->cap * 2 : 256;
		struct store_map_node **v = realloc(fz->retired, cap * sizeof(*v));

		if (!v) {
			fz->leaked++;   /* never freed, but the view stays whole */
			return;
		}
		fz->retired = v;
		fz->cap = cap;
	}
	fz->retired[fz->nretired++] = n;
}

void store_map_freeze_begin(struct store_map_freeze *fz, uint32_t gen, uint64_t *nodes)
{
	fz->active = true;
	fz->gen = gen;
	fz->nodes = nodes;
}

void store_map_freeze_join(struct store_map *m, struct store_map_freeze *fz)
{
	m->fz = fz;
}

void store_map_freeze_end(struct store_map_freeze *fz)
{
	fz->active = false;
}

size_t store_map_freeze_reap(struct store_map_freeze *fz, size_t max)
{
	while (max-- > 0 && fz->nretired > 0) {
		free(fz->retired[--fz->nretired]);
		if (fz->nodes)
			--*fz->nodes;
	}
	if (fz->nretired == 0) {
		free(fz->retired);
		fz->retired = NULL;
		fz->cap = 0;
	}
	return fz->nretired;
}

static struct store_map_node *node_new(struct store_map *m, bool leaf)
{
	struct store_map_node *n = malloc(sizeof(*n));

	if (!n)
		return NULL;
	nodes_add(m, 1);
	n->refs = 1;
	n->n = 0;
	n->leaf = leaf;
	n->pad = 0;
	n->save_gen = young_gen(m);
	n->save_id = 0;
	return n;
}

static uint64_t node_min(const struct store_map_node *n)
{
	return n->leaf ? n->ext[0].lba : n->in.key[0];
}

/* Drops one reference to n; the last one frees it and releases what it
 * holds. The map's counters are the caller's. */
static void node_put(struct store_map_node *n, const struct store_map *m)
{
	if (--n->refs > 0)
		return;
	for (unsigned i = 0; i < n->n; i++) {
		if (!n->leaf)
			node_put(n->in.child[i], m);
		else
			ref_change(m, n->ext[i].la, n->ext[i].len, -1);
	}
	if (node_kept(m, n)) {
		node_retire(m, n);      /* a frozen view still shows it */
		return;
	}
	nodes_add(m, -1);
	free(n);
}

/* Makes *pp exclusively ours and free to change. Sets *shared when it had
 * to copy a shared node. */
static int node_own(struct store_map *m, struct store_map_node **pp, bool *shared)
{
	struct store_map_node *n = *pp, *c;

	*shared = false;
	if (n->refs == 1 && !node_frozen(m, n))
		return 0;
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	nodes_add(m, 1);
	memcpy(c, n, sizeof(*c));
	c->refs = 1;
	c->save_gen = young_gen(m);
	c->save_id = 0;
	if (n->refs == 1) {
		/* frozen: the copy takes its place and what it holds */
		node_retire(m, n);
		*pp = c;
		return 0;
	}
	for (unsigned i = 0; i < c->n; i++) {
		if (c->leaf)
			ref_change(m, c->ext[i].la, c->ext[i].len, +1);
		else
			c->in.child[i]->refs++;
	}
	n->refs--;
	*pp = c;
	*shared = true;
	return 0;
}

/* Index of the child whose key range holds lba. */
static unsigned inner_find(const struct store_map_node *n, uint64_t lba)
{
	unsigned lo = 0, hi = n->n;

	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;
		if (n->in.key[mid] <= lba)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the first extent ending after lba. */
static unsigned leaf_find(const struct store_map_node *n, uint64_t lba)
{
	unsigned lo = 0, hi = n->n;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (n->ext[mid].lba + n->ext[mid].len <= lba)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- removal ---------------------------------------------------------- */

static void op_free(struct map_op *op, uint64_t la, uint64_t len)
{
	op->m->mapped -= len;
	if (!op->quiet)
		ref_change(op->m, la, len, -1);
}

static void leaf_remove(struct store_map_node *n, uint64_t a, uint64_t b,
                        struct map_op *op)
{
	unsigned i = leaf_find(n, a), out = i;

	for (; i < n->n; i++) {
		struct store_map_ext e = n->ext[i];
		uint64_t es = e.lba, ee = es + e.len;

		if (es >= b)
			break;
		assert(!(es < a && ee > b) && "map: middle split reached leaf_remove");
		if (es >= a && ee <= b) {
			op_free(op, e.la, e.len);
			op->m->extents--;
			continue;
		}
		if (es < a) {           /* keep the head */
			op_free(op, e.la + (a - es), ee - a);
			e.len = a - es;
		} else {                /* keep the tail */
			op_free(op, e.la, b - es);
			e.la += b - es;
			e.len = ee - b;
			e.lba = b;
		}
		n->ext[out++] = e;
	}
	if (out != i)           /* close the gap: the rest of the leaf moves once */
		memmove(&n->ext[out], &n->ext[i], (n->n - i) * sizeof(n->ext[0]));
	n->n = out + (n->n - i);
}

static int node_remove(struct store_map_node **pp, uint64_t a, uint64_t b,
                       struct map_op *op)
{
	struct store_map_node *n;
	bool shared;
	int rc = node_own(op->m, pp, &shared);

	if (rc)
		return rc;
	n = *pp;
	if (n->leaf) {
		leaf_remove(n, a, b, op);
		return 0;
	}
	for (unsigned i = inner_find(n, a); i < n->n && n->in.key[i] < b;) {
		struct store_map_node *c;

		rc = node_remove(&n->in.child[i], a, b, op);
		if (rc)
			return rc;
		c = n->in.child[i];
		if (c->n > 0) {
			n->in.key[i] = node_min(c);
			i++;
			continue;
		}
		node_put(c, op->m);
		memmove(&n->in.key[i], &n->in.key[i + 1], (n->n - i - 1) * sizeof(uint64_t));
		memmove(&n->in.child[i], &n->in.child[i + 1], (n->n - i - 1) * sizeof(c));
		n->n--;
	}
	return 0;
}

/* ---- insertion -------------------------------------------------------- */

static bool ext_joins(struct store_map_ext l, struct store_map_ext r)
{
	return l.lba + l.len == r.lba && l.la + l.len == r.la &&
	       (uint64_t)l.len + r.len <= MAP_LEN_MAX;
}

/* Moves the upper part of full node n into a new right sibling. */
static struct store_map_node *node_split(struct store_map *m, struct store_map_node *n,
                                         bool right_edge)
{
	unsigned cap = n->leaf ? MAP_LEAF_CAP : MAP_INNER_CAP;
	unsigned keep = right_edge ? cap * 9 / 10 : cap / 2;
	struct store_map_node *r = node_new(m, n->leaf);

	if (!r)
		return NULL;
	r->n = n->n - keep;
	if (n->leaf) {
		memcpy(r->ext, &n->ext[keep], r->n * sizeof(n->ext[0]));
	} else {
		memcpy(r->in.key, &n->in.key[keep], r->n * sizeof(uint64_t));
		memcpy(r->in.child, &n->in.child[keep], r->n * sizeof(r));
	}
	n->n = keep;
	return r;
}

static int leaf_insert(struct store_map_node *n, struct store_map_ext e,
                       bool right_edge, struct map_op *op,
                       struct store_map_node **split)
{
	unsigned pos = leaf_find(n, e.lba);

	op->m->mapped += e.len;
	if (!op->quiet)
		ref_change(op->m, e.la, e.len, +1);
	else
		goto put;       /* the pieces of a split stay apart */
	if (pos > 0 && ext_joins(n->ext[pos - 1], e)) {
		n->ext[pos - 1].len += e.len;
		if (pos < n->n && ext_joins(n->ext[pos - 1], n->ext[pos])) {
			n->ext[pos - 1].len += n->ext[pos].len;
			memmove(&n->ext[pos], &n->ext[pos + 1], (n->n - pos - 1) * sizeof(e));
			n->n--;
			op->m->extents--;
		}
		return 0;
	}
	if (pos < n->n && ext_joins(e, n->ext[pos])) {
		n->ext[pos].lba = e.lba;
		n->ext[pos].la = e.la;
		n->ext[pos].len += e.len;
		return 0;
	}
put:
	op->m->extents++;
	if (n->n == MAP_LEAF_CAP) {
		*split = node_split(op->m, n, right_edge && pos == n->n);
		if (!*split)
			return -ENOMEM;
		if (pos > n->n) {
			n = *split;
			pos -= MAP_LEAF_CAP - n->n;
		}
	}
	memmove(&n->ext[pos + 1], &n->ext[pos], (n->n - pos) * sizeof(e));
	n->ext[pos] = e;
	n->n++;
	return 0;
}

static void inner_put_child(struct store_map_node *n, unsigned pos,
                            struct store_map_node *c)
{
	memmove(&n->in.key[pos + 1], &n->in.key[pos], (n->n - pos) * sizeof(uint64_t));
	memmove(&n->in.child[pos + 1], &n->in.child[pos], (n->n - pos) * sizeof(c));
	n->in.key[pos] = node_min(c);
	n->in.child[pos] = c;
	n->n++;
}

/* Before splitting full leaf child i, moves part of it into a sibling that
 * has room (as a B*-tree does): leaves then stay about 80% full under random
 * inserts instead of about 70%, which is what keeps a map near 20 bytes per
 * extent. Only unshared siblings are touched. */
static bool inner_leaf_shift(const struct store_map *m, struct store_map_node *n, unsigned i)
{
	struct store_map_node *c = n->in.child[i], *s;
	const size_t es = sizeof(c->ext[0]);
	unsigned k;

	if (!c->leaf || c->n < MAP_LEAF_CAP || c->refs != 1 || node_frozen(m, c))
		return false;
	if (i + 1 < n->n && (s = n->in.child[i + 1])->refs == 1 && !node_frozen(m, s) &&
	    s->n + 8u < MAP_LEAF_CAP) {
		k = (MAP_LEAF_CAP - s->n) / 2;
		memmove(&s->ext[k], &s->ext[0], s->n * es);
		memcpy(&s->ext[0], &c->ext[c->n - k], k * es);
		s->n += k;
		c->n -= k;
		n->in.key[i + 1] = s->ext[0].lba;
		return true;
	}
	if (i > 0 && (s = n->in.child[i - 1])->refs == 1 && !node_frozen(m, s) &&
	    s->n + 8u < MAP_LEAF_CAP) {
		k = (MAP_LEAF_CAP - s->n) / 2;
		memcpy(&s->ext[s->n], &c->ext[0], k * es);
		memmove(&c->ext[0], &c->ext[k], (c->n - k) * es);
		s->n += k;
		c->n -= k;
		n->in.key[i] = c->ext[0].lba;
		return true;
	}
	return false;
}

static int node_insert(struct store_map_node **pp, struct store_map_ext e,
                       bool right_edge, struct map_op *op,
                       struct store_map_node **split)
{
	struct store_map_node *n, *cs = NULL;
	unsigned i;
	bool shared;
	int rc = node_own(op->m, pp, &shared);

	*split = NULL;
	if (rc)
		return rc;
	n = *pp;
	if (n->leaf)
		return leaf_insert(n, e, right_edge, op, split);
	i = inner_find(n, e.lba);
	if (!(right_edge && i + 1 == n->n) && inner_leaf_shift(op->m, n, i))
		i = inner_find(n, e.lba);
	rc = node_insert(&n->in.child[i], e, right_edge && i + 1 == n->n, op, &cs);
	if (rc)
		return rc;
	n->in.key[i] = node_min(n->in.child[i]);
	if (!cs)
		return 0;
	if (n->n == MAP_INNER_CAP) {
		*split = node_split(op->m, n, right_edge && i + 1 == n->n);
		if (!*split)
			return -ENOMEM;
		if (i + 1 > n->n) {
			n = *split;
			i -= MAP_INNER_CAP - n->n;
		}
	}
	inner_put_child(n, i + 1, cs);
	return 0;
}

static int map_insert(struct store_map *m, struct store_map_ext e, struct map_op *op)
{
	struct store_map_node *split = NULL, *root;
	int rc;

	if (!m->root) {
		m->root = node_new(m, true);
		if (!m->root)
			return -ENOMEM;
	}
	rc = node_insert(&m->root, e, true, op, &split);
	if (rc || !split)
		return rc;
	root = node_new(m, false);
	if (!root)
		return -ENOMEM;
	inner_put_child(root, 0, m->root);
	inner_put_child(root, 1, split);
	m->root = root;
	return 0;
}

/* Drops a root that became empty or has a single child. */
static void map_shrink(struct store_map *m)
{
	while (m->root) {
		struct store_map_node *r = m->root;

		if (r->n == 0) {
			m->root = NULL;
			node_put(r, m);
		} else if (!r->leaf && r->n == 1) {
			m->root = r->in.child[0];
			if (r->refs > 1 || node_kept(m, r))
				m->root->refs++;        /* the old root keeps its child */
			else
				r->n = 0;       /* hand the child over without dropping it */
			node_put(r, m);
		} else {
			return;
		}
	}
}

/* The extent strictly containing [a, b), if one does: then removing [a, b)
 * leaves two pieces, and the right one must be inserted separately. */
static bool map_find_container(const struct store_map *m, uint64_t a, uint64_t b,
                               struct store_map_ext *out)
{
	const struct store_map_node *n = m->root;
	unsigned i;

	if (!n)
		return false;
	while (!n->leaf)
		n = n->in.child[inner_find(n, a)];
	i = leaf_find(n, a);
	if (i >= n->n)
		return false;
	*out = n->ext[i];
	return out->lba < a && out->lba + out->len > b;
}

static int map_remove(struct store_map *m, uint64_t a, uint64_t b, struct map_op *op)
{
	struct store_map_ext c;
	int rc;

	if (!m->root || a >= b)
		return 0;
	if (map_find_container(m, a, b, &c)) {
		struct map_op keep = { .m = m, .quiet = true };
		struct store_map_ext r = c;
		uint64_t ce = c.lba + c.len;

		/* [c.lba, ce) -> [c.lba, b) + [b, ce), moving no data */
		rc = node_remove(&m->root, b, ce, &keep);
		r.lba = b;
		r.la = c.la + (b - c.lba);
		r.len = ce - b;
		if (!rc)
			rc = map_insert(m, r, &keep);
		if (rc)
			return rc;
	}
	rc = node_remove(&m->root, a, b, op);
	map_shrink(m);
	return rc;
}

/* ---- public ----------------------------------------------------------- */

void store_map_init(struct store_map *m, store_map_ref_fn *ref, void *arg, uint64_t *nodes)
{
	memset(m, 0, sizeof(*m));
	m->ref = ref;
	m->ref_arg = arg;
	m->nodes = nodes;
}

void store_map_fini(struct store_map *m)
{
	if (m->root)
		node_put(m->root, m);
	m->root = NULL;
	m->extents = 0;
	m->mapped = 0;
}

void store_map_share(struct store_map *dst, const struct store_map *src)
{
	dst->root = src->root;
	if (dst->root)
		dst->root->refs++;
	if (src->fz)
		dst->fz = src->fz;      /* it reaches the same frozen nodes */
	dst->extents = src->extents;
	dst->mapped = src->mapped;
}

#define MAP_DEPTH_MAX 16

/* A write strictly inside extent i of leaf n (room for two more): the
 * extent becomes head, e, tail with one move of the leaf's rest, where the
 * general path moves it twice. False when e would join a neighbour (a copy
 * of data onto itself) or does not lie inside: nothing has changed then. */
static bool map_set_inside(struct store_map *m, struct store_map_node *n, unsigned i,
                           struct store_map_ext e)
{
	struct store_map_ext c = n->ext[i], head = c, tail = c;
	uint64_t a = e.lba, b = a + e.len;

	if (c.lba >= a || c.lba + c.len <= b)
		return false;
	head.len = a - c.lba;
	tail.lba = b;
	tail.la = c.la + (b - c.lba);
	tail.len = c.lba + c.len - b;
	if (ext_joins(head, e) || ext_joins(e, tail))
		return false;
	memmove(&n->ext[i + 3], &n->ext[i + 1], (n->n - i - 1) * sizeof(c));
	n->ext[i] = head;
	n->ext[i + 1] = e;
	n->ext[i + 2] = tail;
	n->n += 2;
	m->extents += 2;
	ref_change(m, c.la + head.len, e.len, -1);
	ref_change(m, e.la, e.len, +1);
	return true;
}

/* The common write, in one walk down the tree: when [a, b) lies inside the
 * key range of one unshared leaf with room for two more extents, the
 * overlaps are trimmed and the new extent put in place there, and only the
 * keys on the path above are touched. False when the general path must
 * run (nothing has changed then). */
static bool map_set_in_leaf(struct store_map *m, struct store_map_ext e, struct map_op *op)
{
	struct store_map_node *path[MAP_DEPTH_MAX], *n = m->root;
	unsigned idx[MAP_DEPTH_MAX], depth = 0, i;
	uint64_t a = e.lba, b = a + e.len, hi = UINT64_MAX;
	struct store_map_node *split = NULL;

	if (!n)
		return false;
	while (!n->leaf) {
		if (n->refs != 1 || node_frozen(m, n) || depth == MAP_DEPTH_MAX)
			return false;
		i = inner_find(n, a);
		if (i + 1 < n->n)
			hi = n->in.key[i + 1];
		path[depth] = n;
		idx[depth++] = i;
		n = n->in.child[i];
	}
	if (n->refs != 1 || node_frozen(m, n) || n->n + 2u > MAP_LEAF_CAP || b > hi ||
	    (n->n && a < n->ext[0].lba && depth))
		return false;
	i = leaf_find(n, a);
	if (i < n->n && map_set_inside(m, n, i, e))
		return true;    /* no key above changes: the leaf's first extent stays */
	if (i < n->n && n->ext[i].lba < a && n->ext[i].lba + n->ext[i].len > b) {
		/* a write inside one extent: keep its tail as an extent of its own */
		struct store_map_ext c = n->ext[i], r = c;
		struct map_op keep = { .m = m, .quiet = true };

		r.lba = b;
		r.la = c.la + (b - c.lba);
		r.len = c.lba + c.len - b;
		n->ext[i].len = b - c.lba;
		m->mapped -= r.len;
		leaf_insert(n, r, false, &keep, &split);
	}
	leaf_remove(n, a, b, op);
	leaf_insert(n, e, false, op, &split);
	while (depth-- > 0 && path[depth]->in.key[idx[depth]] != node_min(n)) {
		path[depth]->in.key[idx[depth]] = node_min(n);
		if (idx[depth] != 0)
			break;
		n = path[depth];
	}
	return true;
}

int store_map_set(struct store_map *m, uint64_t lba, uint64_t len, uint64_t la)
{
	struct map_op op = { .m = m };
	struct store_map_ext whole = { .lba = lba, .len = len, .la = la };
	int rc;

	if (len > 0 && len <= MAP_LEN_MAX && map_set_in_leaf(m, whole, &op))
		return 0;
	rc = map_remove(m, lba, lba + len, &op);

	while (!rc && len > 0) {
		uint64_t n = len < MAP_LEN_MAX ? len : MAP_LEN_MAX;
		struct store_map_ext e = { .lba = lba, .len = n, .la = la };

		rc = map_insert(m, e, &op);
		lba += n;
		la += n;
		len -= n;
	}
	return rc;
}

int store_map_unmap(struct store_map *m, uint64_t lba, uint64_t len)
{
	struct map_op op = { .m = m };

	return map_remove(m, lba, lba + len, &op);
}

/* ---- prefetching (replay) --------------------------------------------- *
 *
 * Replay applies thousands of entries whose leaves are all over memory; a
 * change waits on a cache miss per probe of its leaf. Touching the leaf a
 * few entries ahead lets those misses overlap. Hints only: nothing changes. */

static unsigned node_height(const struct store_map_node *n);

static const struct store_map_node *map_leaf_of(const struct store_map *m, uint64_t lba)
{
	const struct store_map_node *n = m->root;

	while (n && !n->leaf)
		n = n->in.child[inner_find(n, lba)];
	return n;
}

void store_map_prefetch(const struct store_map *m, uint64_t lba)
{
	const struct store_map_node *n = m->root;
	const char *leaf;
	unsigned h;

	if (!n || n->leaf)
		return;
	/* stop above the leaf: reading its header would wait for it */
	for (h = node_height(n); h > 1; h--)
		n = n->in.child[inner_find(n, lba)];
	leaf = (const char *)n->in.child[inner_find(n, lba)];
	for (size_t o = 0; o < sizeof(struct store_map_node); o += 64)
		__builtin_prefetch(leaf + o, 1, 1);
}

bool store_map_peek(const struct store_map *m, uint64_t lba, uint64_t *la)
{
	const struct store_map_node *n = map_leaf_of(m, lba);
	unsigned i;

	if (!n || (i = leaf_find(n, lba)) >= n->n || n->ext[i].lba > lba)
		return false;
	*la = n->ext[i].la + (lba - n->ext[i].lba);
	return true;
}

static int node_visit(const struct store_map_node *n, uint64_t a, uint64_t b,
                      store_map_visit_fn *visit, void *arg)
{
	if (!n->leaf) {
		for (unsigned i = inner_find(n, a); i < n->n && n->in.key[i] < b; i++) {
			int rc = node_visit(n->in.child[i], a, b, visit, arg);
			if (rc)
				return rc;
		}
		return 0;
	}
	for (unsigned i = leaf_find(n, a); i < n->n && n->ext[i].lba < b; i++) {
		uint64_t s = n->ext[i].lba, e = s + n->ext[i].len;
		uint64_t cs = s > a ? s : a, ce = e < b ? e : b;
		int rc = visit(arg, cs, ce - cs, n->ext[i].la + (cs - s));
		if (rc)
			return rc;
	}
	return 0;
}

int store_map_visit(const struct store_map *m, uint64_t lba, uint64_t len,
                    store_map_visit_fn *visit, void *arg)
{
	if (!m->root || len == 0)
		return 0;
	return node_visit(m->root, lba, lba + len, visit, arg);
}

struct verify_ctx {
	uint64_t next, extents, mapped;
	int depth;
};

static int node_verify(const struct store_map_node *n, uint64_t lo, uint64_t hi,
                       int depth, struct verify_ctx *v)
{
	if (n->n == 0 || n->refs == 0)
		return -EUCLEAN;
	if (n->leaf) {
		if (v->depth >= 0 && v->depth != depth)
			return -EUCLEAN;        /* leaves at different depths */
		v->depth = depth;
		for (unsigned i = 0; i < n->n; i++) {
			const struct store_map_ext *e = &n->ext[i];
			if (e->len == 0 || e->lba < v->next || e->lba < lo ||
			    e->lba + e->len > hi || e->la + e->len < e->la)
				return -EUCLEAN;
			v->next = e->lba + e->len;
			v->extents++;
			v->mapped += e->len;
		}
		return 0;
	}
	for (unsigned i = 0; i < n->n; i++) {
		uint64_t chi = i + 1 < n->n ? n->in.key[i + 1] : hi;
		const struct store_map_node *c = n->in.child[i];
		int rc;

		if (n->in.key[i] != node_min(c) || n->in.key[i] < lo)
			return -EUCLEAN;
		rc = node_verify(c, n->in.key[i], chi, depth + 1, v);
		if (rc)
			return rc;
	}
	return 0;
}

int store_map_verify(const struct store_map *m)
{
	struct verify_ctx v = { .depth = -1 };
	int rc;

	if (!m->root)
		return m->extents == 0 && m->mapped == 0 ? 0 : -EUCLEAN;
	rc = node_verify(m->root, 0, UINT64_MAX, 0, &v);
	if (rc)
		return rc;
	return v.extents == m->extents && v.mapped == m->mapped ? 0 : -EUCLEAN;
}

/* ---- space only one map holds ---------------------------------------------- */

static uint64_t node_unique(const struct store_map_node *n, store_map_only_fn *only,
                            void *arg)
{
	uint64_t u = 0;

	if (n->refs != 1)
		return 0;       /* everything below is reachable from another map too */
	for (unsigned i = 0; i < n->n; i++)
		u += n->leaf ? only(arg, n->ext[i].la, n->ext[i].len)
		             : node_unique(n->in.child[i], only, arg);
	return u;
}

uint64_t store_map_unique(const struct store_map *m, store_map_only_fn *only, void *arg)
{
	return m->root ? node_unique(m->root, only, arg) : 0;
}

/* ---- checkpoints ---------------------------------------------------------- *
 *
 * A saved node: u32 n, u32 leaf; then a leaf's n extents as two u64s (lba |
 * len << 40, la) or an inner node's n child ids as u32s, padded to 8 bytes.
 * Ids count from 1 in the order written; an inner node's keys are its
 * children's smallest lbas, so they are not stored. */

static size_t saved_bytes(const struct store_map_node *n)
{
	return 8 + (n->leaf ? 16u * n->n : ((4u * n->n + 7) & ~7u));
}

static int saver_room(struct store_map_saver *s, size_t need)
{
	size_t cap = s->cap ? s->cap : 1 << 16;
	char *b;

	if (s->len + need <= s->cap)
		return 0;
	if (s->fixed)
		return -EFBIG;
	while (cap < s->len + need)
		cap *= 2;
	b = realloc(s->buf, cap);
	if (!b)
		return -ENOMEM;
	s->buf = b;
	s->cap = cap;
	return 0;
}

/* Writes n, whose children are saved. */
static int node_emit(struct store_map_saver *s, struct store_map_node *n)
{
	uint32_t hdr[2] = { n->n, n->leaf };
	char *at;
	int rc;

	if ((rc = saver_room(s, saved_bytes(n))))
		return rc;
	at = s->buf + s->len;
	memset(at, 0, saved_bytes(n));
	memcpy(at, hdr, 8);
	for (unsigned i = 0; i < n->n; i++) {
		if (n->leaf) {
			uint64_t w[2] = { n->ext[i].lba | (uint64_t)n->ext[i].len << MAP_LBA_BITS,
			                  n->ext[i].la };
			memcpy(at + 8 + 16 * i, w, 16);
		} else {
			memcpy(at + 8 + 4 * i, &n->in.child[i]->save_id, 4);
		}
	}
	s->len += saved_bytes(n);
	n->save_gen = s->gen;
	n->save_id = ++s->next_id;
	return 0;
}

/* Depth first, children before their parent, with the path kept in s so
 * that a save can stop after any node and go on later. */
int store_map_save_some(struct store_map_saver *s, struct store_map_node *root,
                        uint32_t *id, unsigned *budget)
{
	*id = 0;
	if (!root)
		return 1;
	if (s->depth == 0) {
		if (root->save_gen == s->gen) {
			*id = root->save_id;    /* shared with a map saved before */
			return 1;
		}
		s->path[0].n = root;
		s->path[0].i = 0;
		s->depth = 1;
	}
	while (s->depth > 0) {
		struct store_map_node *n = s->path[s->depth - 1].n, *c;
		int rc;

		if (!n->leaf && s->path[s->depth - 1].i < n->n) {
			c = n->in.child[s->path[s->depth - 1].i++];
			if (c->save_gen == s->gen)
				continue;
			if (s->depth == MAP_SAVE_DEPTH)
				return -EUCLEAN;        /* no tree of ours is that deep */
			s->path[s->depth].n = c;
			s->path[s->depth].i = 0;
			s->depth++;
			continue;
		}
		if (*budget == 0)
			return 0;
		if ((rc = node_emit(s, n)))
			return rc;
		--*budget;
		s->depth--;
	}
	*id = root->save_id;
	return 1;
}

int store_map_save(struct store_map_saver *s, const struct store_map *m, uint32_t *root)
{
	unsigned budget = UINT_MAX;
	int rc = store_map_save_some(s, m->root, root, &budget);

	return rc < 0 ? rc : 0;
}

static int loader_add(struct store_map_loader *l, struct store_map_node *n)
{
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 1024;
		struct store_map_node **v = realloc(l->node, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->node = v;
		l->cap = cap;
	}
	l->node[l->n++] = n;
	return 0;
}

/* Where the last extent under n ends, and how far down its leaves are. */
static uint64_t node_end(const struct store_map_node *n)
{
	while (!n->leaf)
		n = n->in.child[n->n - 1];
	return n->ext[n->n - 1].lba + n->ext[n->n - 1].len;
}

static unsigned node_height(const struct store_map_node *n)
{
	unsigned h = 0;

	for (; !n->leaf; h++)
		n = n->in.child[0];
	return h;
}

/* One saved node at buf; -EUCLEAN when it does not hold together: children
 * in order, apart, and all of one height. */
static int node_load(struct store_map_loader *l, const char *buf, size_t len, size_t *used)
{
	struct store_map_node *n;
	uint32_t hdr[2];

	if (len < 8)
		return -EUCLEAN;
	memcpy(hdr, buf, 8);
	if (hdr[1] > 1 || hdr[0] == 0 || hdr[0] > (hdr[1] ? MAP_LEAF_CAP : MAP_INNER_CAP))
		return -EUCLEAN;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->n = (uint16_t)hdr[0];
	n->leaf = (uint8_t)hdr[1];
	*used = saved_bytes(n);
	if (*used > len)
		goto bad;
	for (unsigned i = 0; i < n->n; i++) {
		if (n->leaf) {
			uint64_t w[2];

			memcpy(w, buf + 8 + 16 * i, 16);
			n->ext[i].lba = w[0] & ((1ull << MAP_LBA_BITS) - 1);
			n->ext[i].len = w[0] >> MAP_LBA_BITS;
			n->ext[i].la = w[1];
			if (n->ext[i].len == 0 || (i > 0 && n->ext[i].lba <
			    n->ext[i - 1].lba + n->ext[i - 1].len))
				goto bad;
		} else {
			uint32_t id;

			memcpy(&id, buf + 8 + 4 * i, 4);
			if (id == 0 || id > l->n)
				goto bad;       /* children come first */
			n->in.child[i] = l->node[id - 1];
			n->in.key[i] = node_min(n->in.child[i]);
			if (i > 0 && (n->in.key[i] < node_end(n->in.child[i - 1]) ||
			              node_height(n->in.child[i]) != node_height(n->in.child[0])))
				goto bad;
		}
	}
	if (loader_add(l, n)) {
		free(n);
		return -ENOMEM;
	}
	for (unsigned i = 0; !n->leaf && i < n->n; i++)
		n->in.child[i]->refs++;
	return 0;
bad:
	free(n);
	return -EUCLEAN;
}

int store_map_load_nodes(struct store_map_loader *l, const char *buf, size_t len,
                         uint32_t count, size_t *used)
{
	size_t off = 0;

	for (uint32_t i = 0; i < count; i++) {
		size_t n;
		int rc = node_load(l, buf + off, len - off, &n);

		if (rc)
			return rc;
		off += n;
	}
	*used = off;
	return 0;
}

int store_map_load_root(struct store_map_loader *l, struct store_map *m, uint32_t id)
{
	if (id > l->n)
		return -EUCLEAN;
	m->root = id ? l->node[id - 1] : NULL;
	if (m->root)
		m->root->refs++;
	return 0;
}

int store_map_loader_finish(struct store_map_loader *l, store_map_ref_fn *ref, void *arg,
                            uint64_t *nodes)
{
	struct store_map shell;

	for (uint32_t i = 0; i < l->n; i++)
		if (l->node[i]->refs == 0)
			return -EUCLEAN;        /* a writer never saves an orphan */
	store_map_init(&shell, ref, arg, nodes);
	for (uint32_t i = 0; i < l->n; i++) {
		struct store_map_node *n = l->node[i];

		nodes_add(&shell, 1);
		for (unsigned k = 0; n->leaf && k < n->n; k++)
			ref_change(&shell, n->ext[k].la, n->ext[k].len, +1);
	}
	free(l->node);
	memset(l, 0, sizeof(*l));
	return 0;
}

void store_map_loader_abort(struct store_map_loader *l)
{
	for (uint32_t i = 0; i < l->n; i++)
		free(l->node[i]);
	free(l->node);
	memset(l, 0, sizeof(*l));
}

void store_map_forget(struct store_map *m)
{
	m->root = NULL;
	m->extents = 0;
	m->mapped = 0;
}
