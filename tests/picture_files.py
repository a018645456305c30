"""Writes very large pictures without ever holding their pixels in memory (test helper).

A 20000 x 20000 RGB picture is 1.2 GB of pixels; encoders want all of them at once. These
writers produce valid files of any size from a few MB of bytes:

- `write_grey_jpeg`: a baseline JPEG, one grey component, uniform mid-grey. Every 8x8 block has
  a DC difference of 0 and no AC coefficient, so with one-symbol Huffman tables each block costs
  two 0 bits and the scan is a run of zero bytes.
- `write_grey_png`: a PNG of black rows, compressed as a stream.
- `write_lying_jpeg`: a small complete JPEG whose header claims a huge size.
"""

import struct
import zlib


def _segment(marker, payload):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def write_grey_jpeg(path, width, height):
    """Writes a uniform grey (value 128) baseline JPEG of `width` x `height` pixels."""
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    quantisation = _segment(0xDB, b"\x00" + bytes([1] * 64))
    frame = _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    # One code of length 1 per table: DC category 0 ("diff 0") and AC 0x00 (end of block).
    one_symbol = bytes([1] + [0] * 15) + b"\x00"
    huffman = _segment(0xC4, b"\x00" + one_symbol + b"\x10" + one_symbol)
    scan_header = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    bits = 2 * blocks
    scan = bytes(bits // 8) + (b"\x3f" if bits % 8 == 2 else b"\x0f" if bits % 8 == 4
                               else b"\x03" if bits % 8 == 6 else b"")
    with open(path, "wb") as handle:
        handle.write(b"\xff\xd8" + quantisation + frame + huffman + scan_header)
        handle.write(scan)
        handle.write(b"\xff\xd9")
    return path


def write_grey_png(path, width, height):
    """Writes an all-black 8-bit grey PNG of `width` x `height` pixels."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the pixels
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        data = b""
        for _ in range(height):
            data += compressor.compress(row)
            if len(data) > 1 << 20:
                handle.write(chunk(b"IDAT", data))
                data = b""
        data += compressor.flush()
        handle.write(chunk(b"IDAT", data))
        handle.write(chunk(b"IEND", b""))
    return path


def write_lying_jpeg(path, width=65500, height=65500):
    """A small, complete 16 x 16 JPEG (end marker included) whose frame header claims `width` x
    `height`: what a forged or truncated file looks like to a lenient decoder."""
    import cv2
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    data = bytearray(cv2.imencode(".jpg", pixels)[1].tobytes())
    frame = data.index(b"\xff\xc0")
    data[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    return path
