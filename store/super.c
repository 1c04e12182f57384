/* store/super.c: the superblock (format in store/format.h).
 *
 * Two identical copies are written once, when the pool is created; they name
 * the pool (uuid), its size and its segment size. Open reads copy A and falls
 * back to copy B if A is damaged. A block that is not a sluice superblock at
 * all gives STORE_ENOTPOOL; a newer version gives STORE_EVERSION, and the
 * pool is left untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include "store/internal.h"

static int super_check(const struct store_pool *p, struct fmt_super *sb)
{
	uint32_t crc = sb->crc;

	if (memcmp(sb->magic, FMT_SB_MAGIC, 8) != 0)
		return STORE_ENOTPOOL;
	sb->crc = 0;
	if (store_crc(sb, 4096) != crc)
		return STORE_ECORRUPT;
	sb->crc = crc;
	if (sb->version != FMT_VERSION)
		return STORE_EVERSION;
	if (sb->segment_bytes < FMT_SEG_MIN || sb->segment_bytes > FMT_SEG_MAX ||
	    sb->segment_bytes % 4096 || sb->segments == 0 ||
	    sb->pool_bytes > p->be->size ||
	    FMT_DATA_OFF + (uint64_t)sb->segments * sb->segment_bytes > sb->pool_bytes)
		return STORE_ECORRUPT;
	return 0;
}

int store_super_read(struct store_pool *p)
{
	struct fmt_super *sb = store_alloc_aligned(4096);
	int rc = -ENOMEM;

	if (!sb)
		return rc;
	if (p->be->size < FMT_DATA_OFF) {       /* too small to be, or become, a pool */
		free(sb);
		return STORE_ENOTPOOL;
	}
	int why[2];

	for (int copy = 0; copy < 2; copy++) {
		why[copy] = p->be->ops->read_sync(p->be, sb, 4096, FMT_SB_OFF(copy));
		if (why[copy] == 0)
			why[copy] = super_check(p, sb);
		if (why[copy] == 0) {
			if (copy == 1)
				store_pool_logf(p, STORE_LOG_WARN,
				                "superblock copy A is damaged; using copy B");
			memcpy(p->uuid, sb->uuid, 16);
			p->seg_bytes = sb->segment_bytes;
			p->nsegs = sb->segments;
			free(sb);
			return 0;
		}
	}
	free(sb);
	/* Neither copy holds: "not a pool" only when neither has the magic. */
	if (why[0] == STORE_EVERSION || why[1] == STORE_EVERSION)
		return STORE_EVERSION;
	if (why[0] == STORE_ENOTPOOL && why[1] == STORE_ENOTPOOL)
		return STORE_ENOTPOOL;
	rc = why[0] == STORE_ENOTPOOL ? why[1] : why[0];
	return rc == -EIO ? rc : STORE_ECORRUPT;
}

static void super_uuid(uint8_t uuid[16])
{
	struct timespec ts;

	if (getrandom(uuid, 16, 0) == 16)
		return;
	/* no entropy source: time and pid still tell pools apart */
	clock_gettime(CLOCK_REALTIME, &ts);
	memcpy(uuid, &ts, 16 < sizeof(ts) ? 16 : sizeof(ts));
	uuid[15] ^= (uint8_t)getpid();
}

/* Chooses the geometry and identity of a new pool, in memory only. */
int store_super_init(struct store_pool *p, uint64_t bytes, uint32_t seg_bytes)
{
	uint64_t nsegs;

	if (seg_bytes == 0)
		seg_bytes = FMT_SEG_DEFAULT;
	if (seg_bytes < FMT_SEG_MIN || seg_bytes > FMT_SEG_MAX || seg_bytes % 4096)
		return -EINVAL;
	if (bytes > p->be->size)
		bytes = p->be->size;
	nsegs = bytes > FMT_DATA_OFF ? (bytes - FMT_DATA_OFF) / seg_bytes : 0;
	if (nsegs < 8 || nsegs > UINT32_MAX)
		return -ENOSPC;         /* too small to hold a log and checkpoints */
	super_uuid(p->uuid);
	p->seg_bytes = seg_bytes;
	p->nsegs = (uint32_t)nsegs;
	p->pool_bytes = FMT_DATA_OFF + nsegs * seg_bytes;
	return 0;
}

/* Writes both superblock copies. A new pool writes them last, after its
 * first checkpoint: until then the device still reads as empty, so a crash
 * while creating leaves nothing half made. */
int store_super_write(struct store_pool *p)
{
	struct fmt_super *sb = store_alloc_aligned(4096);
	int rc;

	if (!sb)
		return -ENOMEM;
	memcpy(sb->magic, FMT_SB_MAGIC, 8);
	sb->version = FMT_VERSION;
	memcpy(sb->uuid, p->uuid, 16);
	sb->pool_bytes = p->pool_bytes;
	sb->segment_bytes = p->seg_bytes;
	sb->segments = p->nsegs;
	sb->created = (uint64_t)time(NULL);
	sb->crc = store_crc(sb, 4096);
	rc = p->be->ops->write_sync(p->be, sb, 4096, FMT_SB_OFF(1));
	if (rc == 0)
		rc = p->be->ops->write_sync(p->be, sb, 4096, FMT_SB_OFF(0));
	free(sb);
	return rc;
}
