/* iscsi/pr.h: reservations of a logical unit, private to iscsi/: SPC-3
 * persistent reservations (PERSISTENT RESERVE IN/OUT, every type, APTPL
 * kept in the pool's metadata) and SPC-2 RESERVE/RELEASE, with the
 * conflict check the command set runs before each command.
 *
 * Registrations belong to I_T nexuses: the initiator port's TransportID
 * ("iqn...,i,0x<ISID>", SPC-4 7.6.4.6) and the relative target port (the
 * portal group). They outlive sessions and the scsi_lu (a relogin with the
 * same ISID finds them again), so the state of each volume lives here, for
 * the life of the process, keyed by pool UUID and volume id; with APTPL it
 * is also in the pool under "pr/<volume id>" and comes back after a
 * restart or a crash.
 */
#ifndef SLUICE_ISCSI_PR_H
#define SLUICE_ISCSI_PR_H

#include "iscsi/scsi.h"

/* Operation codes and service actions (SPC-4 annex D) */
enum {
	SCSI_RESERVE_6                  = 0x16,
	SCSI_RELEASE_6                  = 0x17,
	SCSI_RESERVE_10                 = 0x56,
	SCSI_RELEASE_10                 = 0x57,
	SCSI_PERSISTENT_RESERVE_IN      = 0x5e,
	SCSI_PERSISTENT_RESERVE_OUT     = 0x5f,
	SCSI_MI_REPORT_TPGS             = 0x0a, /* MAINTENANCE IN */
};

#define PR_REGS_MAX             256     /* registrations per LU */

struct pr_lu;

/* The reservation state of volume vol_id of the pool p (uuid), created
 * (and read back from the pool if it was persisted) on first use. */
int  pr_lu_get(struct store_pool *p, const uint8_t uuid[16], uint32_t vol_id,
               struct pr_lu **out);
/* The nexus port has ended: its SPC-2 reservation is released. */
void pr_port_gone(struct pr_lu *pr, const struct scsi_port *port);
/* LUN or target reset (SAM-5 6.3): releases the SPC-2 reservation. */
void pr_lu_reset(struct pr_lu *pr);
/* Sets port->iport: the TransportID name of the initiator port. */
void pr_port_name(struct scsi_port *port, const char *initiator, const uint8_t isid[6]);
/* 1 if t conflicts with a reservation (status already set), else 0. */
int  pr_check(struct scsi_task *t);
/* Whether the nexus port may run a command with these SCMD_* flags on lu
 * (pr_check's rule): for a copy manager reaching other LUs (SPC-4 5.17.4). */
bool pr_allows(struct scsi_lu *lu, const struct scsi_port *port, uint16_t flags);
/* Tests (the fuzz target, between inputs): every registration and
 * reservation this process holds is dropped, in memory only. */
void pr_forget_all(void);

scsi_exec_fn pr_in, pr_out, pr_reserve, pr_release;
scsi_decode_fn pr_decode_out;

#endif
