"""What the first bytes of an HDF5 file say about it: the superblock, read without the HDF5 library.

The rollout store checks a shard's superblock before handing the file to HDF5, because HDF5 alone does not
say clearly what is wrong with a damaged file, and in one case does not say it at all:

* a file that a writer has open (or that a killed writer left) is opened in SWMR mode, and HDF5 skips its
  truncation check in that mode; reading a truncated file's missing metadata is then retried for a very long
  time (minutes; the retries are meant for a writer that is still writing it);
* a truncated file opened normally fails with "truncated file: eof = ..., stored_eof = ...", which names
  neither the cause nor the fix.

Superblock versions 2 and 3 (what ``libver="latest"`` writes; every shard has one) are laid out as: the
8-byte signature, version, size of offsets (``O``), size of lengths, file consistency flags, then four
addresses of ``O`` bytes (base, superblock extension, end of file, root group object header) and a
Jenkins lookup3 checksum of everything before it. The flags are nonzero while a writer has the file open
(bit 0: write access, bit 2: SWMR write); a writer that is killed leaves them set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class Superblock:
    version: int
    offset_size: int
    flags: int  # file consistency flags: nonzero while open for writing (or left so by a killed writer)
    end_of_file: int  # the file's size as HDF5 recorded it
    checksum_ok: bool
    raw: bytes  # the superblock's bytes, checksum included

    @property
    def open_for_writing(self) -> bool:
        return self.flags != 0

    def with_flags_cleared(self) -> bytes:
        """The superblock bytes with the consistency flags cleared and the checksum recomputed (what h5clear
        does), so that HDF5 opens the file normally rather than in SWMR mode."""
        body = bytearray(self.raw[:-4])
        body[11] = 0
        return bytes(body) + lookup3(bytes(body)).to_bytes(4, "little")


def read_superblock(path: Path) -> Superblock | str:
    """The superblock of ``path``, or a sentence saying why it has none we can use."""
    size = os.path.getsize(path)
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:8] != SIGNATURE:
            return "it does not start with the HDF5 signature (not an HDF5 file, or its first bytes are damaged)"
        version, offset_size = head[8], head[9]
        if version not in (2, 3):
            return f"its superblock has version {version}; rollout shards are written with version 2 or 3"
        if offset_size not in (2, 4, 8):
            return f"its superblock is damaged (size of offsets {offset_size})"
        rest = f.read(4 * offset_size + 4)
    raw = head + rest
    if len(raw) < 12 + 4 * offset_size + 4:
        return f"the file ends inside its superblock ({size} bytes)"
    eof_at = 12 + 2 * offset_size
    end_of_file = int.from_bytes(raw[eof_at : eof_at + offset_size], "little")
    stored = int.from_bytes(raw[-4:], "little")
    return Superblock(version, offset_size, head[11], end_of_file, stored == lookup3(raw[:-4]), raw)


def _rotate(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def _add_words(a: int, b: int, c: int, block: bytes) -> tuple[int, int, int]:
    """Add a 12-byte block to (a, b, c) as three little-endian 32-bit words."""
    words = [int.from_bytes(block[k : k + 4], "little") for k in (0, 4, 8)]
    return (a + words[0]) & _MASK, (b + words[1]) & _MASK, (c + words[2]) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum HDF5 puts on its metadata (superblock v2+, ...)."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    i = 0
    while length - i > 12:
        a, b, c = _add_words(a, b, c, data[i : i + 12])
        # lookup3's mix(): three rounds of subtract, xor with a rotation, add, on (a, b, c) in turn
        for shift_a, shift_b in ((4, 6), (8, 16), (19, 4)):
            a = ((a - c) & _MASK) ^ _rotate(c, shift_a)
            c = (c + b) & _MASK
            b = ((b - a) & _MASK) ^ _rotate(a, shift_b)
            a = (a + c) & _MASK
            a, b, c = c, a, b  # the next round works on the next pair
        i += 12
    if length == i:  # nothing left (only possible for empty input)
        return c
    a, b, c = _add_words(a, b, c, data[i:] + bytes(12 - (length - i)))
    c = (c ^ b) - _rotate(b, 14) & _MASK
    a = (a ^ c) - _rotate(c, 11) & _MASK
    b = (b ^ a) - _rotate(a, 25) & _MASK
    c = (c ^ b) - _rotate(b, 16) & _MASK
    a = (a ^ c) - _rotate(c, 4) & _MASK
    b = (b ^ a) - _rotate(a, 14) & _MASK
    c = (c ^ b) - _rotate(b, 24) & _MASK
    return c
