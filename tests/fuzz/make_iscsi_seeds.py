#!/usr/bin/env python3
"""Writes seeds of the iSCSI fuzz target (fuzz_iscsi.c) into a directory.

Each seed is the byte stream of one initiator: a login straight to full
feature phase on the fuzz target's IQN, then SCSI Command PDUs (immediate
data, or Data-Out PDUs) with consistent ITT, CmdSN and lengths, so that
libFuzzer starts from commands that reach their parameter parsers. The
16 bytes NAA_MARK stand for the fuzz LU's NAA: fuzz_iscsi.c replaces them
with it before sending, as the NAA comes from the pool's random UUID; a
ROD token that starts with TOKEN_MARK is replaced by the last token the
server sent in the session (its secret is random); CHAP_MARK and the 18
bytes after it become the right CHAP_R for the fuzz target's discovery
account, computed on the challenge the server sent.

    tests/fuzz/make_iscsi_seeds.py tests/fuzz/fuzz_iscsi.in

The older seeds (login-*, session-*, discovery-*) were written by hand and
are not rewritten here.
"""
import os
import struct
import sys

IQN = b"iqn.2026-11.io.sluice:fuzz"
INITIATOR = b"iqn.2026-11.io.sluice:fuzzer"
NAA_MARK = b"\xfe\xedNAA-of-fuzz-LU"
TOKEN_MARK = b"\xfe\xedROD-token-here"
CHAP_MARK = b"\xfe\xedCHAP-response!"
assert len(NAA_MARK) == 16 and len(TOKEN_MARK) == 16 and len(CHAP_MARK) == 16
BLOCK = 512


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def be(n, v):
    return v.to_bytes(n, "big")


def keys(*kv):
    return b"".join(k + b"=" + v + b"\0" for k, v in kv)


def login_pdu(text, flags=0x87, isid=b"\x80\0\0\0\0\x01", itt=1):
    bhs = bytes([0x43, flags, 0, 0, 0]) + be(3, len(text)) + isid + b"\0\0" + \
        be(4, itt) + b"\0" * 4 + be(4, 0) + be(4, 0) + b"\0" * 16
    return bhs + pad4(text)


def login_normal():
    return login_pdu(keys((b"InitiatorName", INITIATOR), (b"SessionType", b"Normal"),
                          (b"TargetName", IQN), (b"HeaderDigest", b"None"),
                          (b"DataDigest", b"None"),
                          (b"MaxRecvDataSegmentLength", b"262144"),
                          (b"ImmediateData", b"Yes"), (b"InitialR2T", b"No"),
                          (b"MaxBurstLength", b"262144"),
                          (b"FirstBurstLength", b"65536"),
                          (b"ErrorRecoveryLevel", b"0")))


class Session:
    """Commands of one session after its login: ITT from 2, CmdSN from 0."""

    def __init__(self):
        self.out = bytearray(login_normal())
        self.itt = 2
        self.cmdsn = 0
        self.cmd(b"\0" * 6)    # TEST UNIT READY takes the power on unit attention

    def cmd(self, cdb, data=b"", edtl=None, read=False, unsolicited=None):
        """A SCSI Command; data goes as immediate data, or, when
        unsolicited is a size, that much immediate and the rest as
        Data-Out PDUs of that size."""
        cdb = cdb + b"\0" * (16 - len(cdb))
        if edtl is None:
            edtl = len(data) if data else (0x400 if read else 0)
        imm = data if unsolicited is None else data[:unsolicited]
        rest = b"" if unsolicited is None else data[unsolicited:]
        flags = (0x80 if not rest else 0) | (0x40 if read else 0) | \
            (0x20 if data else 0) | 1
        itt = self.itt
        bhs = bytes([0x01, flags, 0, 0, 0]) + be(3, len(imm)) + b"\0" * 8 + \
            be(4, itt) + be(4, edtl) + be(4, self.cmdsn) + be(4, self.cmdsn + 1) + cdb
        self.out += bhs + pad4(imm)
        off, sn = len(imm), 0
        while rest:
            piece, rest = rest[:unsolicited], rest[unsolicited:]
            bhs = bytes([0x05, 0 if rest else 0x80, 0, 0, 0]) + be(3, len(piece)) + \
                b"\0" * 8 + be(4, itt) + be(4, 0xffffffff) + b"\0" * 4 + \
                be(4, self.cmdsn + 1) + b"\0" * 4 + be(4, sn) + be(4, off) + b"\0" * 4
            self.out += bhs + pad4(piece)
            off += len(piece)
            sn += 1
        self.itt += 1
        self.cmdsn += 1

    def pr_clear(self):
        """Leaves no registration behind for the next input: REGISTER
        AND IGNORE EXISTING KEY, then CLEAR."""
        self.cmd(cdb_pr_out(6, 0, 24), pr_params(0, 0x5a5a))
        self.cmd(cdb_pr_out(3, 0, 24), pr_params(0x5a5a, 0))

    def logout(self):
        self.out += bytes([0x46, 0x80, 0, 0, 0, 0, 0, 0]) + b"\0" * 8 + \
            be(4, self.itt) + b"\0" * 4 + be(4, self.cmdsn) + be(4, self.cmdsn + 1) + \
            b"\0" * 16
        self.itt += 1

    def bytes(self):
        return bytes(self.out)


# CDBs

def cdb_write10(lba, n):
    return bytes([0x2a, 0]) + be(4, lba) + b"\0" + be(2, n) + b"\0"


def cdb_caw(lba, n):
    return bytes([0x89, 0]) + be(8, lba) + b"\0\0\0" + bytes([n, 0, 0])


def cdb_unmap(plen):
    return bytes([0x42, 0, 0, 0, 0, 0, 0]) + be(2, plen) + b"\0"


def cdb_xcopy(plen, sa=0x00, list_id=0):
    return bytes([0x83, sa]) + b"\0" * 4 + be(4, list_id) + be(4, plen) + b"\0\0"


def cdb_rcr(sa, list_id, alloc=0x1000):     # RECEIVE COPY RESULTS / RRTI
    return bytes([0x84, sa]) + be(4, list_id) + b"\0" * 4 + be(4, alloc) + b"\0\0"


def cdb_pr_in(sa, alloc=0x400):
    return bytes([0x5e, sa, 0, 0, 0, 0, 0]) + be(2, alloc) + b"\0"


def cdb_pr_out(sa, typ, plen, scope=0):
    return bytes([0x5f, sa, scope << 4 | typ, 0, 0]) + be(4, plen) + b"\0"


def cdb_log_sense(page, sub=0, pc=1, alloc=0x400, ptr=0):
    return bytes([0x4d, 0, pc << 6 | page, sub, 0]) + be(2, ptr) + be(2, alloc) + b"\0"


def cdb_maint_in(sa, alloc=0x1000, opts=0, op=0, sa2=0):
    return bytes([0xa3, sa, opts, op]) + be(2, sa2) + be(4, alloc) + b"\0\0"


def cdb_mode_select10(plen, pf=1, sp=0):
    return bytes([0x55, pf << 4 | sp, 0, 0, 0, 0, 0]) + be(2, plen) + b"\0"


def cdb_mode_select6(plen, pf=1):
    return bytes([0x15, pf << 4, 0, 0, plen, 0])


def cdb_mode_sense10(page, sub=0, alloc=0x400):
    return bytes([0x5a, 0, page, sub, 0, 0, 0]) + be(2, alloc) + b"\0"


def cdb_inquiry_vpd(page, alloc=0x400):
    return bytes([0x12, 1, page]) + be(2, alloc) + b"\0"


# Parameter lists

def cscd_naa(naa=NAA_MARK, blen=BLOCK, kind=0xe4):
    """Identification descriptor CSCD naming a disk by NAA (32 bytes)."""
    return bytes([kind, 0x00, 0, 0, 0x01, 0x03, 0, 16]) + naa + b"\0" * 4 + \
        b"\0" + be(3, blen)


def seg_b2b(src, dst, n, slba, dlba, dlen=0x18):
    return bytes([0x02, 0]) + be(2, dlen) + be(2, src) + be(2, dst) + b"\0\0" + \
        be(2, n) + be(8, slba) + be(8, dlba)


def xcopy_list(cscds, segs, list_id=1, usage=0, tdl=None, sdl=None, inl=0):
    c, s = b"".join(cscds), b"".join(segs)
    return bytes([list_id, usage << 3]) + be(2, len(c) if tdl is None else tdl) + \
        b"\0" * 4 + be(4, len(s) if sdl is None else sdl) + be(4, inl) + c + s


def ranges(rs):
    return b"".join(be(8, lba) + be(4, n) + b"\0" * 4 for lba, n in rs)


def populate_token(rs, timeout=0, rod=None, dlen=None, rdl=None):
    r = ranges(rs)
    flags = 0x02 if rod is not None else 0
    body = bytes([flags, 0]) + be(4, timeout) + be(4, rod or 0) + b"\0\0" + \
        be(2, len(r) if rdl is None else rdl) + r
    return be(2, len(body) if dlen is None else dlen) + body


def rod_token(rod_type, naa=NAA_MARK, tid=1, length=504):
    t = bytearray(512)
    t[0:4] = be(4, rod_type)
    t[6:8] = be(2, length)
    t[8:16] = be(8, tid)
    t[16] = 0xe4
    t[20], t[21], t[23] = 0x01, 0x03, 16
    t[24:40] = naa
    t[46:48] = be(2, BLOCK)
    t[56:64] = be(8, 8 * BLOCK)
    return bytes(t)


def write_using_token(token, rs, off=0, del_tkn=False, rdl=None):
    r = ranges(rs)
    body = bytes([0x02 if del_tkn else 0]) + b"\0" * 5 + be(8, off) + token + \
        b"\0" * 6 + be(2, len(r) if rdl is None else rdl) + r
    return be(2, len(body) + 0) + body


def unmap_list(rs, dlen=None, bdl=None):
    r = ranges(rs)
    return be(2, 6 + len(r) if dlen is None else dlen) + \
        be(2, len(r) if bdl is None else bdl) + b"\0" * 4 + r


def pr_params(key, sakey, flags=0):
    return be(8, key) + be(8, sakey) + b"\0" * 4 + bytes([flags, 0, 0, 0])


def transport_id(name, fmt=1, alen=None):
    n = pad4(name + b"\0")
    return bytes([fmt << 6 | 0x05, 0]) + be(2, len(n) if alen is None else alen) + n


def pr_move(key, sakey, tid, rtpi=1, flags=0, tlen=None):
    return be(8, key) + be(8, sakey) + bytes([0, flags]) + be(2, rtpi) + \
        be(4, len(tid) if tlen is None else tlen) + tid


def mode_pages10(*pages):
    p = b"".join(pages)
    return be(2, 0) + bytes([0, 0, 0, 0]) + be(2, 0) + p


def mode_pages6(*pages):
    return bytes([0, 0, 0, 0]) + b"".join(pages)


CACHING_WCE = bytes([0x08, 0x12, 0x04]) + b"\0" * 17
CACHING_WT = bytes([0x08, 0x12, 0x00]) + b"\0" * 17
CONTROL = bytes([0x0a, 0x0a, 0x02, 0x00, 0x00, 0x00]) + b"\0" * 6
LBP_1C02 = bytes([0x5c, 0x02]) + be(2, 12) + b"\0" * 4 + \
    bytes([0x80, 0x01, 0x00, 0x00]) + be(4, 16)


OTHER_PORT = b"iqn.2026-11.io.sluice:other,i,0x800000000002"


def seeds():
    s = {}

    def new():
        return Session()

    # COMPARE AND WRITE: write a pattern, compare it (match), then miscompare
    x = new()
    pat = b"\xa5" * BLOCK
    x.cmd(cdb_write10(64, 1), pat)
    x.cmd(cdb_caw(64, 1), pat + b"\x5a" * BLOCK)
    x.cmd(cdb_caw(64, 1), pat + b"\x11" * BLOCK)
    x.cmd(cdb_caw(65, 2), b"\0" * (4 * BLOCK), unsolicited=BLOCK)
    s["caw"] = x
    x = new()
    x.cmd(cdb_caw(64, 1), b"\0" * BLOCK)                 # half the data
    x.cmd(cdb_caw(2047, 2), b"\0" * (4 * BLOCK))         # past the end
    x.cmd(cdb_caw(0, 0), b"")                            # zero blocks
    x.cmd(cdb_caw(0, 255), b"\0" * BLOCK, edtl=255 * 2 * BLOCK)
    x.cmd(cdb_caw(0xffffffffffffffff, 1), b"\0" * (2 * BLOCK))
    s["caw-bad"] = x

    # UNMAP
    x = new()
    x.cmd(cdb_write10(8, 8), b"\x42" * (8 * BLOCK), unsolicited=2048)
    p = unmap_list([(8, 8), (100, 4)])
    x.cmd(cdb_unmap(len(p)), p)
    s["unmap"] = x
    x = new()
    for p in (unmap_list([(8, 8)], bdl=0xfff0), unmap_list([(8, 8)], dlen=0xffff),
              unmap_list([(0xfffffffffffffff0, 0x20)]), unmap_list([]),
              unmap_list([(0, 0xffffffff)]), unmap_list([(1, 1)], bdl=17)):
        x.cmd(cdb_unmap(len(p)), p)
    x.cmd(cdb_unmap(0xffff), b"\0" * 8, edtl=0xffff)
    s["unmap-bad"] = x

    # MODE SELECT / MODE SENSE
    x = new()
    p = mode_pages10(CACHING_WT, CONTROL)
    x.cmd(cdb_mode_select10(len(p)), p)
    x.cmd(cdb_mode_sense10(0x08), read=True)
    p = mode_pages6(CACHING_WCE)
    x.cmd(cdb_mode_select6(len(p)), p)
    x.cmd(cdb_mode_sense10(0x3f, 0xff), read=True)
    x.cmd(cdb_mode_sense10(0x1c, 0x02), read=True)
    p = mode_pages10(LBP_1C02)
    x.cmd(cdb_mode_select10(len(p)), p)
    s["mode-select"] = x
    x = new()
    for p in (mode_pages10(bytes([0x08, 0x40]) + b"\0" * 8),     # page length past end
              mode_pages10(bytes([0x08, 0x12, 0x04])),           # truncated page
              mode_pages10(bytes([0x0a, 0x0a, 0xff]) + b"\xff" * 9),
              be(2, 0xffff) + b"\0" * 4 + be(2, 0xfff8) + CACHING_WCE,
              mode_pages10(bytes([0x00, 0x00]))):
        x.cmd(cdb_mode_select10(len(p)), p)
    x.cmd(cdb_mode_select10(len(CACHING_WCE) + 8, pf=0), mode_pages10(CACHING_WCE))
    x.cmd(cdb_mode_select6(255), mode_pages6(CACHING_WCE), edtl=255)
    s["mode-select-bad"] = x

    # LOG SENSE, REPORT TARGET PORT GROUPS, REPORT SUPPORTED OPCODES, VPD
    x = new()
    x.cmd(cdb_log_sense(0x00), read=True)
    x.cmd(cdb_log_sense(0x0c), read=True)
    x.cmd(cdb_log_sense(0x0c, alloc=4), read=True)
    x.cmd(cdb_log_sense(0x0c, ptr=0x0002), read=True)
    x.cmd(cdb_log_sense(0x0c, pc=0), read=True)
    x.cmd(cdb_log_sense(0x0d), read=True)
    x.cmd(cdb_log_sense(0x00, sub=0xff), read=True)
    x.cmd(cdb_maint_in(0x0a), read=True)
    x.cmd(cdb_maint_in(0x2a), read=True)                 # extended header
    x.cmd(cdb_maint_in(0x0a, alloc=2), read=True)
    x.cmd(cdb_maint_in(0x0c, opts=1, op=0x83), read=True)
    x.cmd(cdb_maint_in(0x0c, opts=2, op=0x83, sa2=0x10), read=True)
    x.cmd(cdb_maint_in(0x0c, opts=2, op=0x5f, sa2=7), read=True)
    x.cmd(cdb_maint_in(0x0c, opts=0x80), read=True)
    x.cmd(cdb_inquiry_vpd(0x83), read=True)
    x.cmd(cdb_inquiry_vpd(0x8f), read=True)
    x.cmd(cdb_inquiry_vpd(0xb2), read=True)
    s["log-sense-rtpg"] = x

    # RESERVE / RELEASE (6) and (10)
    x = new()
    for op in (0x16, 0x17, 0x56, 0x57, 0x16, 0x16, 0x57):
        x.cmd(bytes([op]) + b"\0" * (5 if op < 0x20 else 9))
    x.cmd(bytes([0x56, 0x02]) + b"\0" * 6 + be(2, 8), OTHER_PORT[:8])  # 3rd party
    x.cmd(cdb_write10(0, 1), b"\0" * BLOCK)
    p = pr_params(0, 0x1111)
    x.cmd(cdb_pr_out(0, 0, len(p)), p)                   # conflicts with RESERVE
    x.cmd(bytes([0x17, 0, 0, 0, 0, 0]))
    x.pr_clear()
    s["reserve-release"] = x

    # PERSISTENT RESERVE OUT / IN, every service action
    x = new()
    for sa, typ, p in ((0, 0, pr_params(0, 0x1111)),
                       (6, 0, pr_params(0, 0x2222)),     # REGISTER AND IGNORE
                       (0, 0, pr_params(0x2222, 0x1111, 0x01)),   # APTPL
                       (1, 3, pr_params(0x1111, 0)),     # RESERVE EA
                       (1, 3, pr_params(0x1111, 0)),     # again, same type
                       (1, 1, pr_params(0x1111, 0)),     # other type: conflict
                       (2, 3, pr_params(0x1111, 0)),     # RELEASE
                       (1, 5, pr_params(0x1111, 0)),     # RESERVE WERO
                       (4, 5, pr_params(0x1111, 0x1111)),  # PREEMPT self
                       (4, 1, pr_params(0x1111, 0x9999)),  # PREEMPT unknown key
                       (5, 1, pr_params(0x1111, 0x1111)),  # PREEMPT AND ABORT
                       (3, 0, pr_params(0x1111, 0))):    # CLEAR
        x.cmd(cdb_pr_out(sa, typ, len(p)), p)
        x.cmd(cdb_pr_in(sa % 4), read=True)
    x.pr_clear()
    s["pr-out"] = x
    x = new()
    x.cmd(cdb_pr_out(0, 0, 24), pr_params(0, 0xabc))
    x.cmd(cdb_pr_out(1, 1, 24), pr_params(0xabc, 0))     # WE, held by us
    p = pr_move(0xabc, 0xdef, transport_id(OTHER_PORT), flags=0x02)
    x.cmd(cdb_pr_out(7, 1, len(p)), p)                   # REGISTER AND MOVE, UNREG
    x.cmd(cdb_pr_in(3), read=True)                       # READ FULL STATUS
    x.cmd(cdb_pr_in(1), read=True)
    x.cmd(cdb_write10(0, 1), b"\0" * BLOCK)              # now a conflict
    x.cmd(cdb_pr_out(0, 0, 24), pr_params(0, 0x777))
    x.cmd(cdb_pr_out(4, 1, 24), pr_params(0x777, 0xdef))  # PREEMPT the mover
    x.cmd(cdb_pr_out(3, 0, 24), pr_params(0x777, 0))
    x.pr_clear()
    s["pr-move"] = x
    x = new()
    x.cmd(cdb_pr_out(0, 0, 24), pr_params(0, 0xabc))
    x.cmd(cdb_pr_out(1, 3, 24), pr_params(0xabc, 0))
    for p in (pr_move(0xabc, 0xdef, transport_id(OTHER_PORT), tlen=0xfffffff0),
              pr_move(0xabc, 0xdef, transport_id(OTHER_PORT, alen=0xfffc)),
              pr_move(0xabc, 0xdef, transport_id(b"iqn.x", fmt=0)),
              pr_move(0xabc, 0xdef, transport_id(b"iqn.2026-11.io.sluice:other")),
              pr_move(0xabc, 0xdef, transport_id(OTHER_PORT), rtpi=0),
              pr_move(0xabc, 0xdef, transport_id(OTHER_PORT), rtpi=0xffff),
              pr_move(0xabc, 0, transport_id(OTHER_PORT)),
              pr_move(0xabc, 0xdef, b"\x45\0\x01\0" + b"A" * 0x100),
              pr_move(0xabc, 0xdef, b"")[:21]):
        x.cmd(cdb_pr_out(7, 3, len(p)), p)
    x.cmd(cdb_pr_out(0, 0, 0xffffffff), pr_params(0xabc, 0), edtl=24)
    x.cmd(cdb_pr_out(0, 0, 23), pr_params(0xabc, 0)[:23])
    x.cmd(cdb_pr_out(0, 0, 0), b"")
    x.cmd(cdb_pr_out(0x1f, 0xf, 24), pr_params(0xabc, 0))
    x.cmd(cdb_pr_out(1, 0xf, 24), pr_params(0xabc, 0))
    x.cmd(cdb_pr_out(0, 0, 24, scope=3), pr_params(0xabc, 0, 0x0c))  # SPEC_I_PT ALL_TG_PT
    x.cmd(cdb_pr_in(0x1f), read=True)
    x.cmd(cdb_pr_in(3, alloc=9), read=True)
    x.cmd(cdb_pr_out(3, 0, 24), pr_params(0xabc, 0))
    x.pr_clear()
    s["pr-bad"] = x

    # EXTENDED COPY (LID1), block to block inside the fuzz LU
    x = new()
    x.cmd(cdb_write10(16, 4), b"\x33" * (4 * BLOCK))
    p = xcopy_list([cscd_naa()], [seg_b2b(0, 0, 4, 16, 32), seg_b2b(0, 0, 0, 0, 0)],
                   list_id=7)
    x.cmd(cdb_xcopy(len(p)), p)
    x.cmd(cdb_rcr(0x00, 7 << 24), read=True)             # copy status, list 7
    x.cmd(cdb_rcr(0x03, 0), read=True)                   # operating parameters
    p = xcopy_list([cscd_naa(), cscd_naa(b"\0" * 16)],
                   [seg_b2b(0, 0, 2, 32, 48)], list_id=8, usage=3)
    x.cmd(cdb_xcopy(len(p)), p)
    x.cmd(cdb_xcopy(0), b"")
    s["xcopy"] = x
    x = new()
    good = [cscd_naa()]
    for p in (xcopy_list(good, [seg_b2b(0, 1, 1, 0, 0)]),          # index past CSCDs
              xcopy_list([cscd_naa(b"\1" * 16)], [seg_b2b(0, 0, 1, 0, 0)]),  # unknown LU
              xcopy_list(good, [seg_b2b(0, 0, 0xffff, 2040, 0)]),  # past the end
              xcopy_list(good, [seg_b2b(0, 0, 1, 0, 0xfffffffffffffff0)]),
              xcopy_list(good, [seg_b2b(0, 0, 1, 0, 0, dlen=0x14)]),
              xcopy_list(good, [seg_b2b(0, 0, 1, 0, 0)], sdl=0xfffffff0),
              xcopy_list(good, [seg_b2b(0, 0, 1, 0, 0)], tdl=0xffe0),
              xcopy_list(good, [seg_b2b(0, 0, 1, 0, 0)], tdl=31),
              xcopy_list(good, [seg_b2b(0, 0, 1, 0, 0)], inl=0xffffffff),
              xcopy_list(good * 17, []),
              xcopy_list(good, [seg_b2b(0, 0, 1, 0, 0)] * 129),
              xcopy_list([cscd_naa(blen=4096)], [seg_b2b(0, 0, 1, 0, 0)]),
              xcopy_list([cscd_naa(kind=0xe0)], [seg_b2b(0, 0, 1, 0, 0)]),
              xcopy_list(good, [b"\x0a\0\0\x18" + b"\0" * 24]),
              xcopy_list(good, [b"\x02\0\xff\xff"]),
              xcopy_list(good, [seg_b2b(0, 0, 1, 0, 0)], usage=1),
              xcopy_list(good, [seg_b2b(0, 0, 1, 0, 0)])[:15]):
        x.cmd(cdb_xcopy(len(p)), p)
    x.cmd(cdb_xcopy(0x10001), b"\0" * 16, edtl=0x10001)
    x.cmd(cdb_xcopy(0x4000), xcopy_list(good, []), edtl=0x4000)
    x.cmd(cdb_rcr(0x00, 0), read=True)
    x.cmd(cdb_rcr(0x05, 0), read=True)
    s["xcopy-bad"] = x

    # POPULATE TOKEN, RRTI, WRITE USING TOKEN (zero ROD and a forged token)
    x = new()
    x.cmd(cdb_write10(128, 8), b"\x77" * (8 * BLOCK))
    p = populate_token([(600, 8), (700, 8)], timeout=30)   # no write waits there
    x.cmd(cdb_xcopy(len(p), sa=0x10, list_id=0x100), p)
    x.cmd(cdb_rcr(0x07, 0x100, alloc=0x800), read=True)
    x.cmd(cdb_rcr(0x07, 0x100, alloc=40), read=True)
    p = write_using_token(rod_token(0xffff0001, naa=b"\0" * 16), [(300, 4), (310, 2)])
    x.cmd(cdb_xcopy(len(p), sa=0x11, list_id=0x101), p, unsolicited=256)
    x.cmd(cdb_rcr(0x07, 0x101), read=True)
    p = write_using_token(rod_token(0x00800001), [(400, 8)], del_tkn=True)
    x.cmd(cdb_xcopy(len(p), sa=0x11, list_id=0x102), p)
    x.cmd(cdb_rcr(0x07, 0x102), read=True)
    x.cmd(cdb_rcr(0x03, 0), read=True)
    s["token"] = x
    x = new()
    for p in (populate_token([(0, 8)], dlen=0xffff),
              populate_token([(0, 8)], rdl=0xfff0),
              populate_token([(0, 8)], rdl=15),
              populate_token([]),
              populate_token([(0, 8)] * 65),
              populate_token([(0xfffffffffffffff8, 16)]),
              populate_token([(0, 0xffffffff)] * 2),
              populate_token([(0, 8)], rod=0x12345678),
              populate_token([(0, 8)], rod=0x00800000),
              populate_token([(0, 8)], timeout=0xffffffff),
              populate_token([(0, 8)])[:15]):
        x.cmd(cdb_xcopy(len(p), sa=0x10, list_id=0x200), p)
    p = populate_token([(0, 8)])
    x.cmd(cdb_xcopy(len(p), sa=0x10, list_id=0x201), p)
    x.cmd(cdb_xcopy(len(p), sa=0x10, list_id=0x201), p)  # same list id again
    tok = rod_token(0x00800001)
    for p in (write_using_token(tok, [(0, 8)], off=0xffffffffffffffff),
              write_using_token(tok, [(0, 8)], rdl=0xfff0),
              write_using_token(rod_token(0x00800001, length=0), [(0, 8)]),
              write_using_token(rod_token(0x00800001, tid=0), [(0, 8)]),
              write_using_token(rod_token(0xffff0001), [(0xffffffffffffff00, 0x200)]),
              write_using_token(rod_token(0xffff0001), []),
              write_using_token(tok, [(0, 8)])[:535]):
        x.cmd(cdb_xcopy(len(p), sa=0x11, list_id=0x202), p)
    x.cmd(cdb_xcopy(0x10000, sa=0x11), b"\0" * 64, edtl=0x10000)
    x.cmd(cdb_rcr(0x07, 0x202), read=True)
    x.cmd(cdb_rcr(0x07, 0x999), read=True)
    s["token-bad"] = x

    # WRITE USING TOKEN with the token RRTI returned (TOKEN_MARK)
    tok = TOKEN_MARK + b"\0" * 496
    x = new()
    p = populate_token([(600, 8), (700, 8)], timeout=60)
    x.cmd(cdb_xcopy(len(p), sa=0x10, list_id=0x300), p)
    x.cmd(cdb_rcr(0x07, 0x300, alloc=0x800), read=True)
    p = write_using_token(tok, [(800, 12), (820, 4)])
    x.cmd(cdb_xcopy(len(p), sa=0x11, list_id=0x301), p)
    p = write_using_token(tok, [(900, 8)], off=4, del_tkn=True)
    x.cmd(cdb_xcopy(len(p), sa=0x11, list_id=0x302), p)
    x.cmd(cdb_rcr(0x07, 0x302), read=True)
    p = write_using_token(tok, [(910, 8)])             # deleted by now
    x.cmd(cdb_xcopy(len(p), sa=0x11, list_id=0x303), p)
    x.cmd(cdb_rcr(0x00, 0x301), read=True)
    s["token-wut"] = x
    x = new()
    p = populate_token([(1000, 16)])
    x.cmd(cdb_xcopy(len(p), sa=0x10, list_id=0x400), p)
    x.cmd(cdb_rcr(0x07, 0x400, alloc=0x800), read=True)
    for p in (write_using_token(tok, [(1100, 8)], off=16),          # past the token
              write_using_token(tok, [(1100, 8)], off=0xffffffffffff),
              write_using_token(tok, [(2040, 0x100)]),             # past the LU
              write_using_token(tok, [(1100, 4)] * 70),
              write_using_token(tok, [(1100, 0)]),
              write_using_token(tok, [(1100, 8), (1050, 8)], off=15),
              write_using_token(tok, [(1004, 8)])):               # over its own source
        x.cmd(cdb_xcopy(len(p), sa=0x11, list_id=0x401), p)
    x.cmd(cdb_write10(1000, 1), b"\x99" * BLOCK)         # revokes it
    p = write_using_token(tok, [(1200, 8)])
    x.cmd(cdb_xcopy(len(p), sa=0x11, list_id=0x402), p)
    x.cmd(cdb_rcr(0x07, 0x402), read=True)
    s["token-wut-bad"] = x
    for v in s.values():
        v.logout()
    return {k: v.bytes() for k, v in s.items()}


# Discovery logins that offer CHAP (fuzz_iscsi.c sets a discovery CHAP
# account for inputs that carry "AuthMethod=CHAP"): the security stage,
# CHAP_A, then a (wrong) response and a mutual challenge.
def chap_seeds():
    disc = (b"InitiatorName", INITIATOR), (b"SessionType", b"Discovery")
    out = {}
    a = login_pdu(keys(*disc, (b"AuthMethod", b"CHAP,None")), flags=0x01, itt=1)
    b = login_pdu(keys((b"CHAP_A", b"7,5")), flags=0x01, itt=1)
    c = login_pdu(keys((b"CHAP_N", b"disc"), (b"CHAP_R", b"0x" + b"00" * 16),
                       (b"CHAP_I", b"9"), (b"CHAP_C", b"0x" + b"ab" * 16)),
                  flags=0x81, itt=1)
    out["login-discovery-chap"] = a + b + c
    a = login_pdu(keys(*disc, (b"AuthMethod", b"CHAP")), flags=0x01, itt=1)
    b = login_pdu(keys((b"CHAP_A", b"5")), flags=0x01, itt=1)
    c = login_pdu(keys((b"CHAP_N", b"disc"), (b"CHAP_R", b"0xzz"),
                       (b"CHAP_I", b"300"), (b"CHAP_C", b"")), flags=0x81, itt=1)
    out["login-discovery-chap-bad"] = a + b + c
    resp = CHAP_MARK + b"." * 18
    for name, extra in (("login-discovery-chap-ok", ()),
                        ("login-discovery-chap-mutual", ((b"CHAP_I", b"77"),
                                                         (b"CHAP_C", b"0x" + b"5a" * 16))),
                        ("login-discovery-chap-mutual-bad", ((b"CHAP_I", b"256"),
                                                             (b"CHAP_C", b"0x")))):
        a = login_pdu(keys(*disc, (b"AuthMethod", b"CHAP,None")), flags=0x01, itt=1)
        b = login_pdu(keys((b"CHAP_A", b"5")), flags=0x01, itt=1)
        c = login_pdu(keys((b"CHAP_N", b"disc"), (b"CHAP_R", resp), *extra),
                      flags=0x81, itt=1)
        d = login_pdu(keys((b"HeaderDigest", b"None"), (b"DataDigest", b"None"),
                           (b"MaxRecvDataSegmentLength", b"65536")), flags=0x87, itt=1)
        text = keys((b"SendTargets", b"All"))
        st = bytes([0x44, 0x80, 0, 0, 0]) + be(3, len(text)) + b"\0" * 8 + be(4, 2) + \
            be(4, 0xffffffff) + be(4, 0) + be(4, 1) + b"\0" * 16 + pad4(text)
        out[name] = a + b + c + d + st
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    allseeds = seeds()
    allseeds.update(chap_seeds())
    for name, data in sorted(allseeds.items()):
        assert len(data) < 8192, (name, len(data))
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        print("%-28s %5d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
