/* iscsi/internal.h: the transport's objects, private to iscsi/.
 *
 *   iscsi_srv   portals (listening sockets), every connection, every
 *               session, the open logical units
 *   iscsi_conn  one TCP connection: PDU framing (conn.c), login (login.c),
 *               then the full feature phase of its session (session.c).
 *               Everything a connection needs is reachable from it, so that
 *               connections could be spread over several loops later.
 *   iscsi_sess  one I_T nexus: CmdSN window, tasks, LUN map. MaxConnections
 *               is 1, so a session has exactly one connection.
 *   iscsi_task  one SCSI command: data-out (R2T), execution, data-in.
 *
 *   iscsi_loop  one libev loop and its thread (loop.c); a connection
 *               lives on one, the server's own loop keeps the rest.
 *
 * Lifetimes: a connection is freed only when no task and no PDU refers to
 * it; closing one from inside its own callbacks is deferred to the loop
 * (iscsi_conn_close() then an ev_idle), as Redis's freeClientAsync.
 *
 * Threads: every object here is under srv->lock (loop.c), taken by each
 * loop thread while it runs callbacks. Only a connection's own loop
 * thread reads or writes its socket, and it does so without the lock
 * (c->busy): meanwhile another thread may close c (state CLOSED, a
 * shutdown(2)) but not close its fd nor free its rx PDU or send queue;
 * the owner does that when it takes the lock back.
 */
#ifndef SLUICE_ISCSI_INTERNAL_H
#define SLUICE_ISCSI_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "iscsi/iscsi.h"
#include "iscsi/iscsi_proto.h"
#include "iscsi/scsi.h"

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

#define ISCSI_QUEUE_DEPTH       128u            /* commands in flight per session */
#define ISCSI_IMMEDIATE_MAX     16u             /* immediate commands in flight */
#define ISCSI_R2T_MAX           4u              /* MaxOutstandingR2T we accept */
#define ISCSI_CONN_MEM_MAX      (64ull << 20)   /* task buffers per connection */
#define ISCSI_TEXT_MAX          (64u << 10)     /* login/text keys, all PDUs */
#define ISCSI_LOGIN_TIMEOUT     30u             /* default of login_timeout_secs */
#define ISCSI_RBUF_LEN          (64u << 10)
#define ISCSI_NAME_MAX          223             /* RFC 7143 6.1 */

struct iscsi_srv;
struct iscsi_conn;
struct iscsi_sess;
struct iscsi_task;

/* Negotiated session and connection parameters (RFC 7143 13). */
struct iscsi_params {
	uint32_t max_recv_dsl;          /* ours: the most we accept per PDU */
	uint32_t max_send_dsl;          /* the initiator's: the most we send */
	uint32_t max_burst;
	uint32_t first_burst;
	uint32_t time2wait;
	uint32_t time2retain;
	uint32_t max_r2t;
	uint32_t max_conns;
	uint32_t erl;
	bool     initial_r2t;
	bool     immediate_data;
	bool     pdu_in_order;
	bool     seq_in_order;
	bool     header_digest;
	bool     data_digest;
};

/* A PDU, received or to send. The data segment is either owned (buf, freed
 * with the PDU) or borrowed from a task's buffer (task holds a reference). */
struct iscsi_pdu {
	TAILQ_ENTRY(iscsi_pdu)  link;
	union iscsi_hdr         hdr;
	uint8_t                 hdig[4], ddig[4];
	uint8_t                *data;
	uint32_t                dlen;
	void                   *buf;            /* owned data, freed with the PDU */
	struct iscsi_task      *task;           /* reference while queued */
	bool                    statsn;         /* advances StatSN when sent */
	bool                    close_after;    /* close the connection once sent */
	bool                    ddig_later;     /* data digest: by the writer, unlocked */
	struct iovec            iov[5];
	int                     iovcnt;
	size_t                  sent, total;
};
TAILQ_HEAD(iscsi_pdu_list, iscsi_pdu);

enum iscsi_conn_state {
	ISCSI_CONN_LOGIN,               /* login phase */
	ISCSI_CONN_FULL,                /* full feature phase */
	ISCSI_CONN_LOGOUT,              /* logout response queued */
	ISCSI_CONN_CLOSED,              /* socket closed, waiting for references */
};

/* PDU receive state machine (SPDK's iscsi_pdu_recv_state):
 *   BHS -> AHS -> HDIG -> DATA -> DDIG -> (dispatch) -> BHS
 * steps without bytes are skipped; the header is checked before the data
 * segment is read. */
enum iscsi_rx_state {
	ISCSI_RX_BHS,
	ISCSI_RX_AHS,
	ISCSI_RX_HDIG,
	ISCSI_RX_DATA,
	ISCSI_RX_DDIG,
};

struct iscsi_login;

/* A loop and the thread running it (loop.c). */
struct iscsi_loop {
	struct iscsi_srv       *srv;
	struct ev_loop         *loop;
	pthread_t               thread;
	bool                    threaded;       /* runs under srv->lock */
	bool                    started;        /* thread created */
	bool                    stop;           /* leave ev_run on the next wake */
	bool                    kick_main;      /* the store may have work queued */
	unsigned                nconns;
	ev_async                wake;
	TAILQ_HEAD(, iscsi_conn) flushq;        /* connections with PDUs to write */
};

struct iscsi_conn {
	TAILQ_ENTRY(iscsi_conn) link;
	struct iscsi_srv       *srv;
	struct iscsi_loop      *iloop;          /* the loop (thread) that owns c */
	struct ev_loop         *loop;           /* iloop->loop */
	TAILQ_ENTRY(iscsi_conn) flush_link;     /* iloop->flushq */
	bool                    flush_queued;
	bool                    busy;           /* owner in a syscall, unlocked */
	int                     fd;
	ev_io                   rio, wio;
	ev_timer                timer;          /* login timeout, NOP-In pings */
	ev_idle                 reap;           /* deferred free */
	enum iscsi_conn_state   state;
	uint16_t                tpgt;
	uint16_t                cid;
	struct sockaddr_storage local;
	char                    peer[64];       /* "addr:port", for logs */
	int                     refs;           /* tasks and queued PDUs */
	/* receive */
	enum iscsi_rx_state     rx_state;
	struct iscsi_pdu       *rx;
	uint8_t                *rx_dst;
	uint32_t                rx_need;
	uint8_t                 rx_ahs[ISCSI_AHS_MAX];
	uint32_t                rx_ahs_len;
	uint8_t                 rbuf[ISCSI_RBUF_LEN];
	uint32_t                rbuf_off, rbuf_len;
	bool                    rx_paused;
	/* send */
	struct iscsi_pdu_list   txq;
	uint32_t                txq_len;        /* PDUs in txq */
	uint32_t                statsn;
	uint32_t                exp_statsn;
	/* negotiated */
	struct iscsi_params     params;
	struct iscsi_login     *login;
	struct iscsi_sess      *sess;
	/* NOP-In pings */
	ev_tstamp               last_rx;
	ev_tstamp               ping_sent;      /* 0: none outstanding */
	uint32_t                ping_ttt;
	/* text (SendTargets) continuation */
	char                   *text_rsp;
	uint32_t                text_len, text_off, text_ttt;
	/* task buffers held by this connection's tasks */
	uint64_t                mem;
	TAILQ_HEAD(, iscsi_task) mem_wait;
};

/* A task management function waiting for aborted tasks' I/O to finish;
 * with done set, a PREEMPT AND ABORT (no response PDU: done(arg) instead). */
struct iscsi_tmf {
	struct iscsi_conn      *conn;
	uint32_t                itt;
	uint8_t                 response;
	int                     waiting;
	bool                    cold;           /* target cold reset: drop after */
	void                  (*done)(void *arg);
	void                   *arg;
};

enum iscsi_task_state {
	ISCSI_TASK_HELD,                /* CmdSN ahead of ExpCmdSN: waits in order */
	ISCSI_TASK_DATA_OUT,            /* collecting data-out */
	ISCSI_TASK_MEM_WAIT,            /* waiting for buffer budget */
	ISCSI_TASK_EXEC,                /* in the command set (store I/O) */
	ISCSI_TASK_DONE,                /* response queued */
};

struct iscsi_r2t {
	uint32_t ttt, off, len, got, datasn;
};

struct iscsi_task {
	struct scsi_task        scsi;
	TAILQ_ENTRY(iscsi_task) link;           /* sess->tasks */
	TAILQ_ENTRY(iscsi_task) wait_link;      /* conn->mem_wait or sess->held */
	struct iscsi_conn      *conn;
	enum iscsi_task_state   state;
	uint32_t                itt, cmdsn;     /* ITT as on the wire */
	uint8_t                 lun_raw[8];     /* LUN as on the wire, echoed */
	uint8_t                 flags;          /* R, W, ATTR from the command PDU */
	bool                    immediate;
	bool                    aborted;
	bool                    counted;        /* holds a CmdSN window slot */
	int                     refs;
	/* data-out (RFC 7143 10.7, 10.8) */
	uint32_t                want;           /* bytes kept: min(EDTL, need) */
	uint32_t                unsol_got;      /* immediate + unsolicited Data-Out */
	uint32_t                unsol_datasn;
	bool                    unsol_done;     /* F seen: no more unsolicited data */
	uint32_t                solicit_off;    /* next offset an R2T asks for */
	uint32_t                r2tsn;
	uint32_t                nr2t;
	struct iscsi_r2t        r2t[ISCSI_R2T_MAX];
	/* data-in */
	uint32_t                datasn;
	struct iscsi_tmf       *tmf;            /* to tell when the I/O ends */
};
TAILQ_HEAD(iscsi_task_list, iscsi_task);

/* What a login read from the target's metadata (target.c). */
struct iscsi_target {
	char     iqn[ISCSI_NAME_MAX + 1];
	size_t   nluns;
	struct { uint64_t lun; char vol[STORE_NAME_MAX + 1]; } *luns;
	size_t   nallow;
	char   **allow;                 /* NULL with nallow 0 and allow_all: "*" */
	bool     allow_all;
	bool     chap;
	char    *chap_user, *chap_secret;
	char    *mutual_user, *mutual_secret;   /* NULL: one-way only */
};

struct iscsi_sess {
	TAILQ_ENTRY(iscsi_sess) link;
	struct iscsi_srv       *srv;
	struct iscsi_conn      *conn;
	bool                    discovery;
	char                    initiator[ISCSI_NAME_MAX + 1];
	uint8_t                 isid[6];
	uint16_t                tsih;
	struct iscsi_target    *target;         /* NULL for discovery */
	struct scsi_port        port;
	struct scsi_itl        *itls;
	/* CmdSN window (RFC 7143 4.2.2.1) */
	uint32_t                exp_cmdsn;
	uint32_t                max_cmdsn;
	uint32_t                in_flight;      /* non-immediate commands */
	uint32_t                immediate;
	struct iscsi_task_list  tasks;
	struct iscsi_pdu_list   held;           /* ahead of ExpCmdSN, by CmdSN */
	struct iscsi_pdu       *logout;         /* waiting for tasks to finish */
	uint32_t                next_ttt;
	/* what GET /sessions shows (iscsi_srv_sessions) */
	int64_t                 login_time;     /* Unix seconds */
	uint64_t                commands, read_bytes, write_bytes;
};

struct iscsi_portal {
	struct iscsi_srv       *srv;
	int                     fd;
	ev_io                   io;
	ev_timer                pause;          /* accept paused: out of fds */
	uint16_t                tpgt;
	uint16_t                port;
	char                    host[64];
	bool                    wildcard;
};

struct iscsi_srv {
	struct ev_loop         *loop;
	pthread_mutex_t         lock;           /* the target lock (loop.c) */
	struct iscsi_loop       main;           /* loop: portals, the store */
	struct iscsi_loop      *loops;          /* connections' loops; none: main */
	unsigned                nloops, next_loop;
	struct store_pool      *pool;
	uint8_t                 uuid[16];
	store_log_fn           *log;
	void                   *log_arg;
	struct iscsi_portal     portals[ISCSI_PORTALS_MAX];
	size_t                  nportals;
	double                  nop_interval, nop_timeout, logout_grace, login_timeout;
	unsigned                thin_pct;       /* soft threshold, each LU's */
	TAILQ_HEAD(, iscsi_conn) conns;
	TAILQ_HEAD(, iscsi_sess) sessions;
	struct scsi_lu_list     lus;
	struct scsi_io_hook     io;
	uint16_t                next_tsih;
	/* stopping */
	bool                    stopping;
	ev_timer                stop_timer;
	ev_idle                 stop_idle;
	store_done_fn          *stop_done;
	void                   *stop_arg;
};

/* srv.c */
void iscsi_log(struct iscsi_srv *s, enum store_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void iscsi_srv_conn_gone(struct iscsi_srv *s, struct iscsi_conn *c);

/* loop.c: connection loops and the target lock */
int  iscsi_loops_start(struct iscsi_srv *s, unsigned n);
/* Stops and joins the loops; called on the main loop once no connection is left. */
void iscsi_loops_stop(struct iscsi_srv *s);
struct iscsi_loop *iscsi_loop_pick(struct iscsi_srv *s);
/* After ev_* calls on l's loop from another thread: l re-arms its watchers. */
void iscsi_loop_wake(struct iscsi_loop *l);
bool iscsi_loop_mine(const struct iscsi_loop *l);
void iscsi_loop_unlock(struct iscsi_loop *l);
void iscsi_loop_lock(struct iscsi_loop *l);

/* conn.c: framing, send queue, life cycle */
/* Writes c's queue; the owner loop's thread only, at the top of a callback. */
void iscsi_conn_tx_run(struct iscsi_conn *c);
int  iscsi_conn_create(struct iscsi_srv *s, int fd, uint16_t tpgt, struct iscsi_conn **out);
void iscsi_conn_close(struct iscsi_conn *c, const char *why);
struct iscsi_pdu *iscsi_pdu_new(uint8_t op, uint32_t dlen);
void iscsi_pdu_free(struct iscsi_pdu *p);
/* Queues p; fills StatSN/ExpCmdSN/MaxCmdSN (RFC 7143 11.2.1.x) and the
 * digests. Takes ownership of p. */
void iscsi_conn_send(struct iscsi_conn *c, struct iscsi_pdu *p);
void iscsi_conn_reject(struct iscsi_conn *c, const union iscsi_hdr *h, uint8_t reason);
void iscsi_conn_get(struct iscsi_conn *c);
void iscsi_conn_put(struct iscsi_conn *c);
void iscsi_conn_rx_pause(struct iscsi_conn *c, bool pause);
uint32_t iscsi_dlen(const union iscsi_hdr *h);
void iscsi_dlen_set(union iscsi_hdr *h, uint32_t len);
uint32_t iscsi_crc32c(const void *buf, size_t len, uint32_t crc);

/* params.c: the key table */
void iscsi_params_default(struct iscsi_params *p);
struct iscsi_text;
int  iscsi_text_parse(const char *buf, size_t len, struct iscsi_text **out);
void iscsi_text_free(struct iscsi_text *t);
const char *iscsi_text_get(const struct iscsi_text *t, const char *key);
size_t iscsi_text_count(const struct iscsi_text *t);
const char *iscsi_text_key(const struct iscsi_text *t, size_t i, const char **value);
/* Negotiates one operational key offered by the initiator: updates p and
 * appends the answer to out. 0, or a login status. */
struct iscsi_kv_buf {
	char    *buf;
	uint32_t len, cap;
	uint32_t max;                   /* 0: ISCSI_TEXT_MAX */
};
int  iscsi_kv_add(struct iscsi_kv_buf *b, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int  iscsi_params_negotiate(struct iscsi_params *p, const char *key, const char *value,
                            bool discovery, bool leading, struct iscsi_kv_buf *out);
bool iscsi_key_is_security(const char *key);
void iscsi_params_finish(struct iscsi_params *p);

/* login.c */
void iscsi_login_rx(struct iscsi_conn *c, struct iscsi_pdu *p);
void iscsi_login_free(struct iscsi_login *l);
int  iscsi_chap_md5(uint8_t id, const void *secret, size_t slen, const void *chal,
                    size_t clen, uint8_t out[16]);
int  iscsi_hex_decode(const char *s, uint8_t *out, size_t max, size_t *len);

/* session.c: the full feature phase */
int  iscsi_sess_create(struct iscsi_conn *c, const char *initiator, const uint8_t isid[6],
                       struct iscsi_target *tgt, uint32_t cmdsn, struct iscsi_sess **out);
void iscsi_sess_destroy(struct iscsi_sess *s);
void iscsi_sess_rx(struct iscsi_conn *c, struct iscsi_pdu *p);
/* Drops a reference to t (queued PDUs hold one); frees it at zero. */
void iscsi_task_put(struct iscsi_task *t);
/* An rx header has arrived: may the data segment be read? (phase, length). */
int  iscsi_sess_hdr_check(struct iscsi_conn *c, const union iscsi_hdr *h);
void iscsi_sess_conn_lost(struct iscsi_sess *s);
void iscsi_sess_update_window(struct iscsi_sess *s);
void iscsi_sess_async_logout(struct iscsi_sess *s, unsigned secs);
void iscsi_conn_mem_kick(struct iscsi_conn *c);
void iscsi_conn_ping_check(struct iscsi_conn *c);

/* target.c */
int  iscsi_target_load(struct iscsi_srv *s, const char *iqn, struct iscsi_target **out);
void iscsi_target_free(struct iscsi_target *t);
bool iscsi_target_allows(const struct iscsi_target *t, const char *initiator);
/* SendTargets=All or one name (RFC 7143 12.3): appends to out. */
int  iscsi_target_send_targets(struct iscsi_conn *c, const char *which, const char *initiator,
                               struct iscsi_kv_buf *out);

#endif
