/* store/format.h: the pool's on-disk format (private to store/).
 *
 * All integers are little-endian; this build refuses big-endian hosts rather
 * than convert every field. Every structure is covered by a CRC32C
 * (crc32_iscsi from ISA-L, the Castagnoli polynomial iSCSI uses).
 *
 * Layout of the backing file or device:
 *
 *   0      superblock, copy A   (4 KiB)  written once, at format
 *   4 KiB  superblock, copy B   (4 KiB)  identical to A
 *   8 KiB  checkpoint root, slot 0 (4 KiB)  ping-pong: generation g goes to
 *   12 KiB checkpoint root, slot 1 (4 KiB)  slot g % 2; the newest valid wins
 *   1 MiB  segment 0, segment 1, ...  (segment_bytes each, to the end)
 *
 * Segments hold log records (the one append stream of every volume) and
 * checkpoint payloads. A log record is 4 KiB-aligned:
 *
 *   struct rec_hdr, then n_entries x struct rec_entry, zero-padded to
 *   hdr_bytes (a multiple of 4 KiB); then data_bytes of data (a multiple of
 *   4 KiB), each WRITE entry's sectors at data_off sectors into the data.
 *
 * A record is valid when: magic matches, uuid is the pool's, prev_seq is
 * the seq of the record before it (the checkpoint root gives the first) and
 * seq is larger, the header CRC (hdr_crc zeroed while computing) and the data
 * CRC match, and it lies inside its segment. Records follow each other in a
 * segment; when the next one does not fit, it starts at offset 0 of
 * next_seg, which every record of the segment (and the root) names in
 * advance. Replay stops at the first invalid record: a torn write is never
 * exposed, and a stale record from a segment's earlier life fails the
 * prev_seq test. Seqs are never reused: every open moves the next seq
 * FMT_SEQ_JUMP past the last valid record, so a record that was written
 * before a crash but lost its predecessor can never join the new chain.
 * The cleaner's records take seqs too, between two of the chain's, so a
 * record's seq may be up to 2 * FMT_SEQ_JUMP past its prev_seq.
 *
 * A WRITE entry's data has the log address seq << 16 | data_off (addr.h):
 * maps refer to data by that name, which never changes when data moves.
 *
 * The cleaner (store/clean.c) copies live data into segments of its own as
 * records with FMT_ENT_COLD entries, outside the log's chain (replay never
 * walks them; prev_seq 0, flushed_seq 0), then logs a MOVE record in the
 * chain once the copies are durable. Only replaying the MOVE makes the
 * copies live, so a crash in between leaves the original in place.
 *
 * flushed_seq tells a torn write from damage: a record names the newest
 * record a completed flush covered when it was sealed. If replay stops after
 * record L but a valid record claims flushed_seq > L, the record after L was
 * durable once and is damaged now: the pool refuses to open rather than
 * silently drop acknowledged writes.
 */
#ifndef SLUICE_STORE_FORMAT_H
#define SLUICE_STORE_FORMAT_H

#include <endian.h>
#include <stdint.h>

#if __BYTE_ORDER != __LITTLE_ENDIAN
#error "sluice's on-disk format is little-endian; this host is not"
#endif

#define FMT_VERSION         2u
#define FMT_SB_MAGIC        "SLUICEPL"
#define FMT_ROOT_MAGIC      "SLCKROOT"
#define FMT_CKPT_MAGIC      "SLCKPAYL"
#define FMT_REC_MAGIC       0x43524c53u     /* "SLRC" */
#define FMT_SB_OFF(i)       ((uint64_t)(i) * 4096)
#define FMT_ROOT_OFF(slot)  (8192 + (uint64_t)(slot) * 4096)
#define FMT_DATA_OFF        (1u << 20)
#define FMT_SEG_DEFAULT     (16u << 20)
#define FMT_SEG_MIN         (256u << 10)
#define FMT_SEG_MAX         (1u << 30)
#define FMT_ROOT_SEGS_MAX   ((4096 - 96) / 4)
#define FMT_SEQ_JUMP        (1ull << 24)

struct fmt_super {
	char     magic[8];
	uint32_t version;
	uint32_t crc;            /* of the 4 KiB block, this field zero */
	uint8_t  uuid[16];
	uint64_t pool_bytes;
	uint32_t segment_bytes;
	uint32_t segments;
	uint64_t created;        /* unix seconds */
};

struct fmt_root {
	char     magic[8];
	uint32_t version;
	uint32_t crc;            /* of the 4 KiB block, this field zero */
	uint8_t  uuid[16];
	uint64_t generation;
	uint64_t log_seq;        /* seq of the last record before the checkpoint */
	uint32_t log_seg;        /* replay starts at this segment and byte offset */
	uint32_t log_off;
	uint32_t next_seg;       /* where the log goes when log_seg is full */
	uint32_t payload_segs;
	uint64_t payload_bytes;
	uint32_t payload_crc;
	uint32_t reserved;
	uint32_t seg[FMT_ROOT_SEGS_MAX]; /* payload segments, in order */
};

struct fmt_rec_hdr {
	uint32_t magic;
	uint32_t hdr_crc;
	uint8_t  uuid[16];
	uint64_t seq;
	uint64_t prev_seq;       /* seq of the record before this one */
	uint32_t hdr_bytes;
	uint32_t data_bytes;
	uint32_t data_crc;
	uint32_t n_entries;
	uint32_t next_seg;
	uint32_t reserved;
	uint64_t flushed_seq;    /* newest record known flushed when this one was sealed */
};

enum fmt_ent_type {
	FMT_ENT_WRITE = 1,       /* vol, lba, sectors at data_off */
	FMT_ENT_UNMAP,           /* vol, lba, sectors */
	FMT_ENT_VOL_CREATE,      /* vol, sectors = size, flags; a fmt_name_item */
	FMT_ENT_VOL_DELETE,      /* vol (a volume or a snapshot) */
	FMT_ENT_VOL_RESIZE,      /* vol, sectors = new size */
	FMT_ENT_VOL_SET_WB,      /* vol, flags */
	FMT_ENT_META_PUT,        /* name_len = key bytes, sectors = value bytes;
	                          * key then value at data_off */
	FMT_ENT_META_DEL,        /* name_len = key bytes; key at data_off */
	FMT_ENT_SNAPSHOT,        /* sectors = n fmt_name_items, each: src = the
	                          * volume, id = its new snapshot; all at once */
	FMT_ENT_CLONE,           /* vol = new id, lba = snapshot id, flags; a
	                          * fmt_name_item */
	FMT_ENT_ROLLBACK,        /* vol, lba = snapshot id */
	FMT_ENT_COPY,            /* vol, lba, sectors: share the data of a
	                          * fmt_copy_src range (copy by reference) */
	FMT_ENT_MOVE,            /* sectors = n fmt_moves: the cleaner copied
	                          * data; it is there now */
	FMT_ENT_COLD,            /* only in the cleaner's records (outside the
	                          * log's chain): lba = log address, sectors at
	                          * data_off, for fsck and for the next cleaning */
	FMT_ENT_REF,             /* inline dedup: vol, lba, sectors now hold the
	                          * data at log address data_off | reserved << 32;
	                          * no data. Applies only if all of that data is
	                          * still referenced then; else it changes nothing
	                          * (and the writer wrote the data again) */
};
#define FMT_ENT_F_WRITE_BACK 0x1u

/* One sector of record data naming a new volume, snapshot or clone. */
struct fmt_name_item {
	uint32_t src;            /* snapshot: the volume; clone: the snapshot */
	uint32_t id;             /* the new one's id */
	uint32_t name_len;
	uint32_t flags;
	uint64_t created;        /* unix seconds */
	char     name[488];      /* "vol" or "vol@snap", not NUL-terminated */
};

struct fmt_move {
	uint64_t la;             /* the data's log address */
	uint64_t from, to;       /* device sectors */
	uint32_t len;            /* sectors */
	uint32_t reserved;
};

struct fmt_copy_src {
	uint32_t vol;
	uint32_t reserved;
	uint64_t lba;
	uint8_t  pad[496];
};

struct fmt_rec_entry {
	uint8_t  type;
	uint8_t  flags;
	uint16_t name_len;
	uint32_t vol;
	uint64_t lba;
	uint64_t sectors;
	uint32_t data_off;       /* sectors from the start of the record's data */
	uint32_t reserved;
};

/* Checkpoint payload: header; n_nodes map nodes, each once however many
 * maps share it (store/map.c: store_map_save); n_vols fmt_ckpt_vols, each
 * naming its map's root node; n_addr_recs records of the address table
 * (store/addr.h); then n_meta metadata records, each a fmt_ckpt_meta, the
 * key and the value, padded to 8 bytes. */
struct fmt_ckpt_hdr {
	char     magic[8];
	uint32_t version;
	uint32_t n_vols;
	uint64_t n_nodes;
	uint64_t n_addr_recs;
	uint32_t next_vol_id;
	uint32_t n_meta;
};

#define FMT_VOL_F_SNAPSHOT   0x2u
#define FMT_FULL_NAME_MAX    257  /* "vol@snap" */

struct fmt_ckpt_vol {
	uint32_t id;
	uint32_t flags;          /* FMT_ENT_F_WRITE_BACK, FMT_VOL_F_SNAPSHOT */
	uint64_t sectors;
	uint64_t extents;        /* of its map */
	uint64_t mapped;         /* sectors */
	uint32_t root;           /* node id, 0: empty */
	uint32_t parent;         /* snapshot: its volume; clone: its snapshot */
	uint64_t created;
	char     name[264];      /* NUL-terminated */
};

struct fmt_ckpt_meta {
	uint16_t key_len;
	uint16_t reserved;
	uint32_t value_len;
};

_Static_assert(sizeof(struct fmt_super) <= 4096, "superblock fits a block");
_Static_assert(sizeof(struct fmt_root) <= 4096, "root fits a block");
_Static_assert(sizeof(struct fmt_rec_hdr) == 72, "record header layout");
_Static_assert(sizeof(struct fmt_rec_entry) == 32, "record entry layout");
_Static_assert(sizeof(struct fmt_name_item) == 512, "a name item is a sector");
_Static_assert(sizeof(struct fmt_copy_src) == 512, "a copy source is a sector");

#endif
