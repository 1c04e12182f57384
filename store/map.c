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
 * (the path copy of a persistent B+tree). Extents displaced from a copied
 * leaf are still referenced by the other tree, so they are not reported as
 * freed.
 *
 * Memory: a node is 4 KiB; extents are 16 bytes. Leaves split in half, except
 * at the right edge of the tree where a sequential fill splits 90/10, which
 * keeps leaves nearly full for sequential data.
 */
#include "store/map.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAP_NODE_BYTES  4096
#define MAP_LEAF_CAP    ((MAP_NODE_BYTES - 8) / sizeof(struct store_map_ext))
#define MAP_INNER_CAP   ((MAP_NODE_BYTES - 8) / 16)

struct store_map_node {
	uint32_t refs;
	uint16_t n;
	uint8_t  leaf;
	uint8_t  pad;
	union {
		struct store_map_ext ext[MAP_LEAF_CAP];
		struct {
			uint64_t key[MAP_INNER_CAP];
			struct store_map_node *child[MAP_INNER_CAP];
		} in;
	};
};

struct map_op {
	struct store_map  *m;           /* counts extents, sectors and nodes */
	store_map_free_fn *freed;
	void              *arg;
	bool               no_merge;    /* splitting an extent: keep pieces apart */
};

static struct store_map_node *node_new(struct store_map *m, bool leaf)
{
	struct store_map_node *n = malloc(sizeof(*n));

	if (!n)
		return NULL;
	m->nodes++;
	n->refs = 1;
	n->n = 0;
	n->leaf = leaf;
	n->pad = 0;
	return n;
}

static uint64_t node_min(const struct store_map_node *n)
{
	return n->leaf ? n->ext[0].lba : n->in.key[0];
}

static void node_put(struct store_map_node *n, struct map_op *op)
{
	if (--n->refs > 0)
		return;
	for (unsigned i = 0; i < n->n; i++) {
		if (!n->leaf) {
			node_put(n->in.child[i], op);
			continue;
		}
		if (op->m) {
			op->m->extents--;
			op->m->mapped -= n->ext[i].len;
		}
		if (op->freed)
			op->freed(op->arg, n->ext[i].pba, n->ext[i].len);
	}
	if (op->m)
		op->m->nodes--;
	free(n);
}

/* Makes *pp exclusively ours. Sets *shared when it had to copy. */
static int node_own(struct store_map *m, struct store_map_node **pp, bool *shared)
{
	struct store_map_node *n = *pp, *c;

	*shared = false;
	if (n->refs == 1)
		return 0;
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	m->nodes++;
	memcpy(c, n, sizeof(*c));
	c->refs = 1;
	if (!c->leaf)
		for (unsigned i = 0; i < c->n; i++)
			c->in.child[i]->refs++;
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

static void op_free(struct map_op *op, bool shared, uint64_t pba, uint64_t len)
{
	op->m->mapped -= len;
	if (op->freed && !shared)
		op->freed(op->arg, pba, len);
}

static void leaf_remove(struct store_map_node *n, uint64_t a, uint64_t b,
                        struct map_op *op, bool shared)
{
	unsigned i = leaf_find(n, a), out = i;

	for (; i < n->n; i++) {
		struct store_map_ext e = n->ext[i];
		uint64_t es = e.lba, ee = es + e.len;

		if (es >= b)
			break;
		assert(!(es < a && ee > b) && "map: middle split reached leaf_remove");
		if (es >= a && ee <= b) {
			op_free(op, shared, e.pba, e.len);
			op->m->extents--;
			continue;
		}
		if (es < a) {           /* keep the head */
			op_free(op, shared, e.pba + (a - es), ee - a);
			e.len = a - es;
		} else {                /* keep the tail */
			op_free(op, shared, e.pba, b - es);
			e.pba += b - es;
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
		leaf_remove(n, a, b, op, shared);
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
		node_put(c, op);
		memmove(&n->in.key[i], &n->in.key[i + 1], (n->n - i - 1) * sizeof(uint64_t));
		memmove(&n->in.child[i], &n->in.child[i + 1], (n->n - i - 1) * sizeof(c));
		n->n--;
	}
	return 0;
}

/* ---- insertion -------------------------------------------------------- */

static bool ext_joins(struct store_map_ext l, struct store_map_ext r)
{
	return l.lba + l.len == r.lba && l.pba + l.len == r.pba &&
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
	if (op->no_merge)
		goto put;
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
		n->ext[pos].pba = e.pba;
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
static bool inner_leaf_shift(struct store_map_node *n, unsigned i)
{
	struct store_map_node *c = n->in.child[i], *s;
	const size_t es = sizeof(c->ext[0]);
	unsigned k;

	if (!c->leaf || c->n < MAP_LEAF_CAP || c->refs != 1)
		return false;
	if (i + 1 < n->n && (s = n->in.child[i + 1])->refs == 1 && s->n + 8u < MAP_LEAF_CAP) {
		k = (MAP_LEAF_CAP - s->n) / 2;
		memmove(&s->ext[k], &s->ext[0], s->n * es);
		memcpy(&s->ext[0], &c->ext[c->n - k], k * es);
		s->n += k;
		c->n -= k;
		n->in.key[i + 1] = s->ext[0].lba;
		return true;
	}
	if (i > 0 && (s = n->in.child[i - 1])->refs == 1 && s->n + 8u < MAP_LEAF_CAP) {
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
	if (!(right_edge && i + 1 == n->n) && inner_leaf_shift(n, i))
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
static void map_shrink(struct store_map *m, struct map_op *op)
{
	while (m->root) {
		struct store_map_node *r = m->root;

		if (r->n == 0) {
			m->root = NULL;
			node_put(r, op);
		} else if (!r->leaf && r->n == 1) {
			m->root = r->in.child[0];
			r->n = 0;       /* hand the child over without dropping it */
			node_put(r, op);
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
		struct map_op keep = { .m = m, .no_merge = true };
		struct store_map_ext r = c;
		uint64_t ce = c.lba + c.len;

		/* [c.lba, ce) -> [c.lba, b) + [b, ce), moving no data */
		rc = node_remove(&m->root, b, ce, &keep);
		r.lba = b;
		r.pba = c.pba + (b - c.lba);
		r.len = ce - b;
		if (!rc)
			rc = map_insert(m, r, &keep);
		if (rc)
			return rc;
	}
	rc = node_remove(&m->root, a, b, op);
	map_shrink(m, op);
	return rc;
}

/* ---- public ----------------------------------------------------------- */

void store_map_init(struct store_map *m)
{
	memset(m, 0, sizeof(*m));
}

void store_map_fini(struct store_map *m, store_map_free_fn *freed, void *arg)
{
	struct map_op op = { .m = m, .freed = freed, .arg = arg };

	if (m->root)
		node_put(m->root, &op);
	m->root = NULL;
}

#define MAP_DEPTH_MAX 16

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
		if (n->refs != 1 || depth == MAP_DEPTH_MAX)
			return false;
		i = inner_find(n, a);
		if (i + 1 < n->n)
			hi = n->in.key[i + 1];
		path[depth] = n;
		idx[depth++] = i;
		n = n->in.child[i];
	}
	if (n->refs != 1 || n->n + 2u > MAP_LEAF_CAP || b > hi || (n->n && a < n->ext[0].lba && depth))
		return false;
	i = leaf_find(n, a);
	if (i < n->n && n->ext[i].lba < a && n->ext[i].lba + n->ext[i].len > b) {
		/* a write inside one extent: keep its tail as an extent of its own */
		struct store_map_ext c = n->ext[i], r = c;
		struct map_op keep = { .m = m, .no_merge = true };

		r.lba = b;
		r.pba = c.pba + (b - c.lba);
		r.len = c.lba + c.len - b;
		n->ext[i].len = b - c.lba;
		m->mapped -= r.len;
		leaf_insert(n, r, false, &keep, &split);
	}
	leaf_remove(n, a, b, op, false);
	leaf_insert(n, e, false, op, &split);
	while (depth-- > 0 && path[depth]->in.key[idx[depth]] != node_min(n)) {
		path[depth]->in.key[idx[depth]] = node_min(n);
		if (idx[depth] != 0)
			break;
		n = path[depth];
	}
	return true;
}

int store_map_set(struct store_map *m, uint64_t lba, uint64_t len, uint64_t pba,
                  store_map_free_fn *freed, void *arg)
{
	struct map_op op = { .m = m, .freed = freed, .arg = arg };
	struct store_map_ext whole = { .lba = lba, .len = len, .pba = pba };
	int rc;

	if (len > 0 && len <= MAP_LEN_MAX && map_set_in_leaf(m, whole, &op))
		return 0;
	rc = map_remove(m, lba, lba + len, &op);

	while (!rc && len > 0) {
		uint64_t n = len < MAP_LEN_MAX ? len : MAP_LEN_MAX;
		struct store_map_ext e = { .lba = lba, .len = n, .pba = pba };

		rc = map_insert(m, e, &op);
		lba += n;
		pba += n;
		len -= n;
	}
	return rc;
}

int store_map_unmap(struct store_map *m, uint64_t lba, uint64_t len,
                    store_map_free_fn *freed, void *arg)
{
	struct map_op op = { .m = m, .freed = freed, .arg = arg };

	return map_remove(m, lba, lba + len, &op);
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
		int rc = visit(arg, cs, ce - cs, n->ext[i].pba + (cs - s));
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

static uint64_t node_count(const struct store_map_node *n)
{
	uint64_t c = 1;

	if (!n->leaf)
		for (unsigned i = 0; i < n->n; i++)
			c += node_count(n->in.child[i]);
	return c;
}

uint64_t store_map_mem_bytes(const struct store_map *m)
{
	return m->nodes * sizeof(struct store_map_node);
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
			    e->lba + e->len > hi)
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
	if (node_count(m->root) != m->nodes)
		return -EUCLEAN;
	return v.extents == m->extents && v.mapped == m->mapped ? 0 : -EUCLEAN;
}
