"""Hostile image files for the tests and benchmarks of the size guards."""

from __future__ import annotations

import struct
import zlib

__all__ = ["png_bomb"]


def png_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit grayscale PNG of zeros: a few hundred KB that decode to width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(width + 1)  # filter byte + pixels
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
