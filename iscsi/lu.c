/* iscsi/lu.c: volumes as logical units. One scsi_lu per open volume, shared
 * by every session that maps it (reference counted), so unit attentions
 * and mode parameters are per logical unit as SPC-4 wants, and the volume
 * handle closes when the last session using it ends.
 *
 * Identity (SPC-4 7.8.6.6.5, NAA IEEE Registered Extended): NAA 6, a
 * locally administered company ID, then 36 + 64 bits made of 68 bits of the
 * pool's UUID and the volume's id, which the store never reuses: unique
 * and stable across restarts, and the same through every portal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/pr.h"
#include "iscsi/scsi.h"

static void scsi_lu_naa(struct scsi_lu *lu, const uint8_t uuid[16])
{
	uint64_t hi = (uint64_t)6 << 60 | (uint64_t)SCSI_NAA_OUI << 36, lo;
	uint64_t u0 = 0, u1 = 0;

	for (int i = 0; i < 8; i++) {
		u0 = u0 << 8 | uuid[i];
		u1 = u1 << 8 | uuid[8 + i];
	}
	hi |= u0 >> 28;                         /* 36 bits of the UUID */
	lo = (u0 & 0x0fffffffull) << 36 | (u1 >> 60) << 32 | lu->vol_id;
	for (int i = 0; i < 8; i++) {
		lu->naa[i] = (uint8_t)(hi >> (56 - 8 * i));
		lu->naa[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
	}
	for (int i = 0; i < 16; i++)
		snprintf(lu->serial + 2 * i, 3, "%02x", lu->naa[i]);
}

int scsi_lu_get(struct store_pool *p, const uint8_t uuid[16], const struct scsi_io_hook *io,
                struct scsi_lu_list *lus, const char *vol, struct scsi_lu **out)
{
	struct store_vol_info info;
	struct scsi_lu *lu;
	int err;

	LIST_FOREACH(lu, lus, link) {
		if (strcmp(lu->name, vol) == 0) {
			lu->refs++;
			*out = lu;
			return 0;
		}
	}
	lu = calloc(1, sizeof(*lu));
	if (!lu)
		return -ENOMEM;
	err = store_vol_open(p, vol, &lu->vol);
	if (err < 0) {
		free(lu);
		return err;
	}
	store_vol_get_info(lu->vol, &info);
	err = pr_lu_get(p, uuid, info.id, &lu->pr);
	if (err < 0) {
		store_vol_close(lu->vol);
		free(lu);
		return err;
	}
	lu->pool = p;
	lu->io = io;
	lu->refs = 1;
	snprintf(lu->name, sizeof(lu->name), "%s", vol);
	lu->vol_id = info.id;
	lu->sectors = info.sectors;
	lu->write_back = info.write_back;
	lu->snapshot = info.snapshot;
	TAILQ_INIT(&lu->itls);
	scsi_lu_naa(lu, uuid);
	LIST_INSERT_HEAD(lus, lu, link);
	*out = lu;
	return 0;
}

void scsi_lu_put(struct scsi_lu *lu)
{
	if (--lu->refs > 0)
		return;
	LIST_REMOVE(lu, link);
	store_vol_close(lu->vol);       /* I/O in flight keeps the volume alive */
	free(lu);
}

void scsi_itl_attach(struct scsi_itl *itl, struct scsi_lu *lu, uint64_t lun)
{
	itl->lu = lu;
	itl->lun = lun;
	itl->ua = SCSI_UA_POWER_ON;     /* SAM-5 5.14: a new I_T nexus */
	TAILQ_INSERT_TAIL(&lu->itls, itl, lu_link);
}

void scsi_itl_detach(struct scsi_itl *itl)
{
	if (itl->port)                  /* the nexus ends: its RESERVE with it */
		pr_port_gone(itl->lu->pr, itl->port);
	TAILQ_REMOVE(&itl->lu->itls, itl, lu_link);
}

uint64_t scsi_lu_blocks(const struct scsi_lu *lu)
{
	return lu->sectors;             /* 512-byte logical blocks = store sectors */
}
