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
#include <stddef.h>
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

/* Tracing, for tests that record one run and cut its power at many points
 * of it instead of replaying the run for each: fn sees every bio as it is
 * submitted (CRASH_TRACE_SUBMIT) and again just before it takes effect on
 * the device (CRASH_TRACE_RUN; not for a bio that fails). At either call
 * crash_backend_image() or _after_cut() builds what a power cut at that
 * moment leaves of the completed writes; the writes submitted and not yet
 * run are in flight, and their buffers are still valid. fn must not submit
 * to cb. NULL: off. */
enum crash_trace_event { CRASH_TRACE_SUBMIT, CRASH_TRACE_RUN };
typedef void crash_trace_fn(void *arg, enum crash_trace_event ev, const struct store_bio *b);
void crash_backend_trace(struct crash_backend *cb, crash_trace_fn *fn, void *arg);
/* Puts len bytes at off straight on the media (durable), as a write in
 * flight at a cut may have left them: for building an image after a cut. */
void crash_backend_poke(struct crash_backend *cb, uint64_t off, const void *data, size_t len);

#endif
