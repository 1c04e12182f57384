/* iscsi/iscsi.h: the whole public interface of sluice's iSCSI target.
 *
 * An RFC 7143 target serving SPC-4/SBC-3 logical units over the volumes of
 * one store pool. Targets are not configured here: each login reads the
 * pool's metadata key "target/<iqn>" (JSON, written by mgmt/):
 *
 *   {"iqn": "iqn.2024-01.org.example:db",
 *    "luns": [{"lun": 0, "volume": "db1"}],
 *    "allow": ["*"] or ["iqn.1993-08.org.debian:01:host1", ...],
 *    "chap": null or {"user", "secret", "mutual_user", "mutual_secret"}}
 *
 * so a change applies to the next login at once, and a session keeps the
 * LUN map it logged in with. Discovery sessions read the key "discovery":
 *
 *   {"chap": null or {"user", "secret", "mutual_user", "mutual_secret"}}
 *
 * with CHAP set, they must authenticate with it; without, they need not.
 *
 * Threading: like the store, the server is called on the loop given to
 * iscsi_srv_create() (the pool's loop) only. With opts.loops > 0 it runs
 * that many threads of its own for connections, and then every callback
 * of that loop runs under the server's lock: from iscsi_srv_create() on,
 * the calling thread holds it except while the loop sleeps (libev's loop
 * release callbacks, and its ev_userdata: both are the server's then),
 * until iscsi_srv_stop() has called back. Whatever else runs on that loop
 * (the store, the HTTP API) is then serialized with the target.
 */
#ifndef SLUICE_ISCSI_H
#define SLUICE_ISCSI_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct ev_loop;
struct iscsi_srv;               /* opaque: listeners, connections, sessions */

#define ISCSI_PORTALS_MAX       16
#define ISCSI_META_PREFIX       "target/"       /* metadata key of a target */
#define ISCSI_DISCOVERY_KEY     "discovery"     /* discovery sessions' CHAP */
#define ISCSI_THIN_THRESHOLD_DEFAULT 10u        /* % of the pool left */

struct iscsi_portal_addr {
	const char *host;       /* "0.0.0.0", "::", "127.0.0.1", "fe80::1"; no brackets */
	uint16_t    port;       /* 0: any free port (see iscsi_srv_port()) */
};

struct iscsi_srv_opts {
	/* Each address is one portal with its own portal group, tag 1, 2, ... */
	const struct iscsi_portal_addr *portals;
	size_t        nportals;
	unsigned      nop_interval_secs;  /* idle time before a NOP-In ping; 0: 10 */
	unsigned      nop_timeout_secs;   /* no answer for this long drops it; 0: 30 */
	unsigned      login_timeout_secs; /* a login not done by then drops it; 0: 30 */
	unsigned      logout_grace_secs;  /* stop: wait for logouts this long; 0: 2 */
	/* thin provisioning soft threshold (SBC-3 4.7.3.7): when less than
	 * this % of the pool is left, each nexus gets a unit attention once
	 * (38/07), again after space came back; 0: the default */
	unsigned      thin_threshold;
	/* threads with a loop each, connections spread over them; 0: every
	 * connection on the caller's loop and thread */
	unsigned      loops;
	store_log_fn *log;                /* may be NULL */
	void         *log_arg;
};

/* Listens on every portal of o (copied) and serves the pool p, which must
 * stay open until iscsi_srv_stop() has called back. *out is set only on 0;
 * on failure no portal is left listening. */
int  iscsi_srv_create(struct ev_loop *loop, struct store_pool *p,
                      const struct iscsi_srv_opts *o, struct iscsi_srv **out);
/* Each SCSI READ and WRITE done, with its volume, bytes and latency (for
 * per-volume statistics); fn NULL: none. Applies at once to every LUN. */
typedef void iscsi_io_fn(void *arg, const char *volume, bool write, uint64_t bytes,
                         uint64_t latency_ns);
void iscsi_srv_set_io_hook(struct iscsi_srv *s, iscsi_io_fn *fn, void *arg);

/* A read-only view of one logged-in session (GET /sessions). Pointers are
 * borrowed for the callback only. MaxConnections is 1, so a session has
 * exactly one connection. */
struct iscsi_session_lun {
	uint64_t    lun;
	const char *volume;
};

struct iscsi_session_info {
	const char *target;             /* iqn; NULL: a discovery session */
	const char *initiator;
	uint8_t     isid[6];
	uint16_t    tsih;
	uint16_t    tpgt;               /* portal group */
	const char *portal;             /* our address:port ("[v6]:port") */
	const char *peer;               /* the initiator's address:port */
	const struct iscsi_session_lun *luns;
	size_t      nluns;
	/* negotiated (RFC 7143 13) */
	bool        header_digest, data_digest;     /* CRC32C or None */
	bool        immediate_data, initial_r2t;
	uint32_t    max_recv_dsl;       /* ours: what we accept per PDU */
	uint32_t    max_send_dsl;       /* the initiator's */
	uint32_t    max_burst, first_burst;
	int64_t     login_time;         /* Unix seconds */
	uint32_t    in_flight;          /* commands the target holds now */
	uint64_t    commands;           /* SCSI commands answered */
	uint64_t    read_bytes, write_bytes;        /* data moved, good status */
};
typedef void iscsi_session_fn(void *arg, const struct iscsi_session_info *si);
/* Calls fn once per session in the full feature phase, in login order;
 * returns how many, or -ENOMEM (fn may have run for some). */
int  iscsi_srv_sessions(struct iscsi_srv *s, iscsi_session_fn *fn, void *arg);

/* The port portal i listens on (useful with port 0). */
uint16_t iscsi_srv_port(const struct iscsi_srv *s, size_t i);
/* Stops listening, asks every logged-in initiator to log out (Async
 * Message), waits logout_grace_secs, then drops the rest, waits for the
 * store I/O they started, closes every volume handle, frees s and calls
 * done(arg, 0) on the loop, never from inside this call. */
void iscsi_srv_stop(struct iscsi_srv *s, store_done_fn *done, void *arg);

#endif
