/* tests/iscsi/iscsi_setup.c: prepares a pool for the iSCSI tests while no
 * daemon runs: creates volumes and writes targets into the pool's
 * metadata exactly as the HTTP API does (key "target/<iqn>", the JSON
 * object of mgmt/mgmt.h), then closes the pool so sluiced can open it.
 *
 *   iscsi-setup POOL POOL_BYTES [vol NAME BYTES]... [target JSON]...
 *
 * The tests use it when the HTTP API is not asked for (SLUICE_TEST_API=1
 * makes them use curl instead), so a problem in one plane does not hide
 * the other's results.
 */
#include <ev.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static int pending, failed;

static void op_done(void *arg, int err)
{
	if (err < 0) {
		fprintf(stderr, "iscsi-setup: %s: %s\n", (const char *)arg, store_strerror(err));
		failed = 1;
	}
	pending--;
}

static void wait_all(struct ev_loop *loop)
{
	while (pending > 0)
		ev_run(loop, EVRUN_ONCE);
}

static int target_put(struct store_pool *p, const char *text)
{
	json_t *t = json_loads(text, 0, NULL);
	const char *iqn = t ? json_string_value(json_object_get(t, "iqn")) : NULL;
	char key[300];

	if (!iqn) {
		fprintf(stderr, "iscsi-setup: not a target: %s\n", text);
		json_decref(t);
		return -1;
	}
	snprintf(key, sizeof(key), "target/%s", iqn);
	pending++;
	store_meta_put(p, key, text, strlen(text), op_done, (void *)"target");
	json_decref(t);
	return 0;
}

int main(int argc, char **argv)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store_pool_opts o = { .engine = STORE_ENGINE_THREADS, .segment_bytes = 1u << 20 };
	struct store_pool *p;
	int err, i;

	if (argc < 3) {
		fprintf(stderr, "usage: %s POOL POOL_BYTES [vol NAME BYTES]... [target JSON]...\n",
		        argv[0]);
		return 2;
	}
	o.path = argv[1];
	o.create_bytes = strtoull(argv[2], NULL, 0);
	err = store_pool_open(loop, &o, &p);
	if (err < 0) {
		fprintf(stderr, "iscsi-setup: %s: %s\n", argv[1], store_strerror(err));
		return 1;
	}
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "vol") == 0 && i + 2 < argc) {
			pending++;
			store_vol_create(p, argv[i + 1], strtoull(argv[i + 2], NULL, 0) / STORE_SECTOR,
			                 false, op_done, argv[i + 1]);
			i += 2;
		} else if (strcmp(argv[i], "target") == 0 && i + 1 < argc) {
			failed |= target_put(p, argv[++i]) < 0;
		} else {
			fprintf(stderr, "iscsi-setup: bad argument %s\n", argv[i]);
			failed = 1;
			break;
		}
		wait_all(loop);
	}
	pending++;
	store_pool_close(p, op_done, (void *)"close");
	wait_all(loop);
	ev_loop_destroy(loop);
	return failed;
}
