/* tests/lib/crash_backend.h: a memory backend that can lose power.
 *
 * Like SQLite's crash VFS: writes since the last completed flush sit in a
 * list; at the armed cut (the Nth submitted bio) that bio and every later one
 * fail with -EIO, and crash_backend_image() builds what the media would hold:
 * everything flushed, plus each unflushed write applied whole, dropped, or
 * torn (an arbitrary subset of its 512-byte sectors). Completions run on the
 * loop, never inside submit.
 */
#ifndef SLUICE_CRASH_BACKEND_H
#define SLUICE_CRASH_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "store/backend.h"

struct crash_backend;

/* A backend of size bytes holding a copy of image (zeros when NULL). */
struct crash_backend *crash_backend_create(uint64_t size, const uint8_t *image);
struct store_backend *crash_backend_base(struct crash_backend *cb);
/* Power is cut at the cut-th bio submitted from now (0: never). */
void crash_backend_arm(struct crash_backend *cb, uint64_t cut);
bool crash_backend_fired(const struct crash_backend *cb);
uint64_t crash_backend_submitted(const struct crash_backend *cb);
/* Fails every bio from the nth one on with -EIO, without a power cut. */
void crash_backend_fail_from(struct crash_backend *cb, uint64_t nth);
/* The media after the cut, torn by rng; the caller frees it. */
uint8_t *crash_backend_image(const struct crash_backend *cb, uint64_t *rng);
/* A new backend holding that media (the same image for the same rng). */
struct crash_backend *crash_backend_after_cut(const struct crash_backend *cb, uint64_t *rng);
/* The durable bytes (a pointer into the backend, valid until free). */
uint8_t *crash_backend_durable(struct crash_backend *cb);
/* The pool's close only detaches; the test frees the backend. */
void crash_backend_free(struct crash_backend *cb);

#endif
