"""Reading pictures: one picture from a path, bytes or an array, and checking a dataset's files.

- `load_image(source)`: a path, encoded bytes or an array -> uint8 RGB, whatever the file
  extension (JPEG, PNG, BMP, GIF; grey and RGBA become RGB, 16-bit becomes 8-bit). Empty,
  truncated and non-image files raise one `ImageDecodeError` naming the file.
- `read_picture(source)`: `load_image` for pictures a person hands in (inference), paths and
  encoded bytes alike: EXIF orientation applied, and very large pictures decoded reduced, so a
  20000 x 20000 JPEG costs about 75 MB instead of 1.2 GB (libjpeg's DCT scaling, through PIL's
  draft mode), or refused (other formats over `MAX_FULL_DECODE_PIXELS`).
- `validate_images(frame)`: splits a `dataset_readers.read_split` frame into readable rows and
  skipped ones, with one `BadImageWarning` naming the first few skipped files.

Decoders are lenient (OpenCV returns a grey-padded picture for a JPEG cut short), so files are
checked on their end markers first. Nothing here needs TensorFlow.

Example:
>>> load_image(np.zeros((4, 5), np.uint8)).shape
(4, 5, 3)
"""

import concurrent.futures
import contextlib
import io
import math
import os
import stat
import threading
import warnings

import cv2
import numpy as np

from adcorre.errors import ImageDecodeError, PictureError

# Pictures above this many pixels are decoded reduced (JPEG) or refused (other formats, above
# MAX_FULL_DECODE_PIXELS): a face detector and a 224 px model gain nothing from more.
REDUCE_ABOVE_PIXELS = 16_000_000
# Non-JPEG formats cannot be decoded reduced; past this (about 300 MB as RGB) they are refused.
MAX_FULL_DECODE_PIXELS = 100_000_000
# Number of file names a bad-image warning lists.
_WARN_NAMES = 5

_PIL_LOCK = threading.Lock()


class BadImageWarning(UserWarning):
    """Some listed images were skipped because they are missing or unreadable."""


# ------------------------------------------------------------------------------ one picture


def _sniff(head, tail, size, read=None):
    """Why these bytes are not a complete JPEG/PNG/BMP/GIF image, or None if they look fine.

    `head` is the file's first bytes, `tail` its last few KB; `read(offset, count)` reads the
    file's first `_HEAD` bytes where a JPEG's frame header is looked for (default: from
    `head`). Decoders are lenient (OpenCV and PIL return a grey-padded picture for a JPEG cut
    short), so completeness is checked on the end markers, and a JPEG's size on what its bytes
    can hold.
    """
    if size == 0:
        return "empty file"
    if head[:3] == b"\xff\xd8\xff":
        # EOI may be followed by padding or a vendor trailer; it must be in the last KBs.
        if b"\xff\xd9" not in tail:
            return "truncated JPEG (no end-of-image marker)"
        return _jpeg_size_lie(read or _reader_of_bytes(head), size)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    if head[:2] == b"BM" and len(head) >= 6:
        declared = int.from_bytes(head[2:6], "little")
        return None if declared <= size else f"truncated BMP ({size} of {declared} bytes)"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return None if tail.rstrip(b"\x00").endswith(b";") else "truncated GIF"
    return f"not a JPEG, PNG, BMP or GIF image (starts with {head[:8]!r})"


_TAIL = 4096
# How far into a JPEG its frame header is looked for (EXIF and other APP segments come first and
# hold at most 64 KB each; a frame header further in is not checked). A file is read only at
# its segments' starts, a few bytes each, not all of this.
_HEAD = 1 << 17
# The most pixels one byte of a Huffman-coded JPEG can stand for. Every 8 x 8 block of the first
# component costs at least one bit (its DC code), so no such JPEG holds more than 512 pixels per
# byte; the flattest picture libjpeg writes (one grey value, optimised progressive Huffman)
# holds 255. A header that promises more than four times the floor is a lie: the scan it
# announces is not there (a truncated or forged file, which decoders would pad with grey).
MAX_JPEG_PIXELS_PER_BYTE = 2048
# Frame headers (SOFn) of Huffman-coded JPEGs; arithmetic coding (SOF9-15) can go below one bit
# per block, so those are not checked.
_HUFFMAN_FRAMES = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7)


def _reader_of_bytes(data):
    """`read(offset, count)` over `data`'s first `_HEAD` bytes."""
    return lambda at, count: data[at:min(at + count, _HEAD)]


def _reader_of_file(handle):
    """`read(offset, count)` over an open file's first `_HEAD` bytes."""
    def read(at, count):
        count = min(count, _HEAD - at)
        if count <= 0:
            return b""
        handle.seek(at)
        return handle.read(count)

    return read


def _jpeg_frame(read):
    """`(width, height, marker)` of the JPEG frame header, walking the marker segments with
    `read(offset, count)`, or None."""
    at = 2
    while True:
        segment = read(at, 9)
        if len(segment) < 4 or segment[0] != 0xFF:
            return None
        marker = segment[1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = int.from_bytes(segment[2:4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if len(segment) < 9:
                return None
            height = int.from_bytes(segment[5:7], "big")
            width = int.from_bytes(segment[7:9], "big")
            return width, height, marker
        if marker == 0xDA or length < 2:  # the scan started without a frame: not ours to judge
            return None
        at += 2 + length


def _jpeg_size_lie(read, size):
    """Why a JPEG's header promises more pixels than its `size` bytes can hold, or None."""
    frame = _jpeg_frame(read)
    if frame is None or frame[2] not in _HUFFMAN_FRAMES:
        return None
    width, height, _ = frame
    if width * height <= MAX_JPEG_PIXELS_PER_BYTE * size:
        return None
    return (f"truncated JPEG (its header promises {width} x {height} pixels, which {size} "
            "bytes cannot hold)")


def _check_file(path, decode=False):
    """None if `path` looks like a complete image, else the reason it is skipped."""
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            # Opening a FIFO or a device would block or never end.
            return "a folder, not a picture" if stat.S_ISDIR(status.st_mode) else "not a regular file"
        size = status.st_size
        with open(path, "rb") as f:
            if decode:
                return _decode_bytes(f.read())[1]
            head = f.read(_TAIL)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
            return _sniff(head, tail, size, read=_reader_of_file(f))
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"


def _decode_bytes(data):
    """`(image, None)` with OpenCV's decode (BGR(A) order), or `(None, reason)` for bad bytes."""
    reason = _sniff(data[:_HEAD], data[-_TAIL:], len(data))
    if reason is not None:
        return None, reason
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return (None, "could not be decoded") if image is None else (image, None)


def to_rgb_uint8(image, name="array"):
    """Grey / RGB / RGBA, uint8 / uint16 / float in [0, 1] -> uint8 RGB (h, w, 3)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)) or image.size == 0:
        raise ImageDecodeError(f"{name}: expected an image array (h, w), (h, w, 3) or (h, w, 4), "
                               f"got shape {image.shape}.")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # as tf.image.convert_image_dtype does
    elif np.issubdtype(image.dtype, np.floating):
        image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageDecodeError(f"{name}: expected uint8, uint16 or float pixels, got {image.dtype}.")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image)


def load_image(source):
    """Loads one image as uint8 RGB, whatever its file extension.

    Args:
        source: a file path, the encoded bytes of a JPEG/PNG/BMP/GIF, or an
            array (grey, RGB or RGBA; uint8, uint16 or float in [0, 1]; arrays
            are taken as RGB).

    Returns:
        uint8 array (h, w, 3), RGB. Grey is repeated, alpha dropped, 16-bit
        reduced to 8-bit.

    Raises:
        FileNotFoundError: the path does not exist.
        ImageDecodeError: empty, truncated or not an image (the message names
            the file).

    Example:

    >>> load_image(np.zeros((4, 5), np.uint8)).shape
    (4, 5, 3)
    """
    if isinstance(source, np.ndarray):
        return to_rgb_uint8(source)
    return _decode_rgb(*_source_bytes(source))


def _source_bytes(source):
    """`(data, name)` of a path or encoded bytes; a folder, a FIFO or a device is refused unread."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "image bytes"
    path = os.fspath(source)
    name = printable_path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"Image not found: {name}.") from None
    except OSError as error:  # a symlink loop, a path too long, no permission...
        raise ImageDecodeError(f"{name}: cannot be read ({error.strerror or error}); expected "
                               "a picture file.") from None
    if stat.S_ISDIR(mode):
        raise ImageDecodeError(f"{name} is a folder, not a picture; expected a JPEG, PNG, BMP or "
                               "GIF file (the CLI's --image takes folders).")
    if not stat.S_ISREG(mode):
        raise ImageDecodeError(f"{name} is not a regular file (a FIFO, socket or device); "
                               "expected a JPEG, PNG, BMP or GIF file.")
    try:
        with open(path, "rb") as f:
            return f.read(), name
    except OSError as error:
        raise ImageDecodeError(f"{name}: cannot be read ({error.strerror or error}); expected "
                               "a picture file.") from None


def _decode_rgb(data, name):
    """Encoded bytes -> uint8 RGB with OpenCV; `ImageDecodeError` naming `name` for bad bytes."""
    image, reason = _decode_bytes(data)
    if reason is not None:
        raise ImageDecodeError(f"{name}: {reason}; expected a JPEG, PNG, BMP or GIF image.")
    if image.ndim == 3 and image.shape[-1] >= 3:
        image = image[..., [2, 1, 0] + ([3] if image.shape[-1] == 4 else [])]  # BGR(A) -> RGB(A)
    return to_rgb_uint8(image, name)


# ------------------------------------------------------------------- a dataset's pictures


def validate_images(frame, mode="header", num_threads=8, warn=True):
    """Splits a frame into readable rows and skipped ones.

    Args:
        frame: a `read_split` frame.
        mode: "header" checks each file exists, is not empty, starts like a
            JPEG/PNG/BMP/GIF and ends with its end marker (a truncated file is
            caught; it reads about 8 KB per file). "decode" also decodes every file
            with OpenCV (slower: a full pass over the data). "none" checks
            nothing (the pipeline still drops undecodable files, uncounted).
            Arrays are checked for a valid image shape and dtype.
        num_threads: threads for the file checks (I/O bound).
        warn: emit one `BadImageWarning` naming the first few skipped files.

    Returns:
        `(good_frame, skipped)`: the readable rows (index reset; `attrs`
        kept, plus `attrs["skipped"]`), and a list of `(image, reason)`.

    Example:

    >>> from adcorre.data.dataset_readers import read_split
    >>> good, skipped = validate_images(read_split("synth", None, "test", n=4, image_size=32))
    >>> len(good), skipped
    (4, [])
    """
    if mode not in ("header", "decode", "none"):
        raise ValueError(f"mode must be 'header', 'decode' or 'none', got {mode!r}.")
    items = list(frame["image"])
    if mode == "none" or not items:
        reasons = [None] * len(items)
    else:
        def check(item):
            if isinstance(item, np.ndarray):
                try:
                    to_rgb_uint8(item)
                    return None
                except ImageDecodeError as e:
                    return str(e)
            if isinstance(item, (bytes, bytearray)):
                return _sniff(item[:_HEAD], item[-_TAIL:], len(item))
            return _check_file(os.fspath(item), decode=mode == "decode")

        if len(items) > 64 and not isinstance(items[0], np.ndarray):
            with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
                reasons = list(pool.map(check, items, chunksize=64))
        else:
            reasons = [check(item) for item in items]
    bad = [i for i, r in enumerate(reasons) if r is not None]
    skipped = [(describe_image(items[i]), reasons[i]) for i in bad]
    good = frame.drop(index=frame.index[bad]).reset_index(drop=True) if bad else frame.reset_index(drop=True)
    good.attrs = dict(frame.attrs, skipped=skipped)
    if warn:
        warn_skipped(skipped, len(items), stacklevel=4)
    return good, skipped


def warn_skipped(skipped, total, stacklevel=3):
    """One `BadImageWarning` naming the first few of `skipped` (`(image, reason)` pairs), if any."""
    if not skipped:
        return
    listed = "; ".join(f"{name} ({reason})" for name, reason in skipped[:_WARN_NAMES])
    more = f" and {len(skipped) - _WARN_NAMES} more" if len(skipped) > _WARN_NAMES else ""
    warnings.warn(f"Skipped {len(skipped)} of {total} images that are missing or unreadable: "
                  f"{listed}{more}.", BadImageWarning, stacklevel=stacklevel)


def picture_size(path):
    """`(width, height)` of a picture file from its header alone, or None if it cannot be read.

    Only the first bytes are read (PIL opens lazily), so checking a dataset's face boxes
    against its photos costs no decoding. The size is the stored one: EXIF orientation is not
    applied, as the training pipeline's decoder does not apply it either.

    Example:
    >>> picture_size("no_such_file.jpg") is None
    True
    """
    with _pil_without_pixel_limit() as Image:
        try:
            with Image.open(os.fspath(path)) as picture:
                return tuple(int(v) for v in picture.size)
        except Exception:  # missing, unreadable, not a picture: validate_images says which
            return None


def picture_sizes(paths, num_threads=8):
    """`picture_size` of each of `paths`, read by `num_threads` threads (the reads are I/O).

    Example:
    >>> picture_sizes(["no_such_file.jpg"])
    [None]
    """
    paths = list(paths)
    if len(paths) <= 64:
        return [picture_size(path) for path in paths]
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        return list(pool.map(picture_size, paths, chunksize=64))


def describe_image(item):
    """How a frame's `image` entry is named in messages: its path, or its kind and size."""
    if isinstance(item, np.ndarray):
        return f"array{item.shape}"
    if isinstance(item, (bytes, bytearray)):
        return f"<{len(item)} bytes>"
    return printable_path(item)


def printable_path(path):
    """`path` as text any UTF-8 output takes: a file name whose bytes are not UTF-8 (a Latin-1
    é on Linux) shows them escaped, `caf\\xe9.jpg`, where Python's own string would stop a
    UTF-8 writer ("surrogates not allowed").

    Example:
    >>> printable_path(os.fsdecode(b"caf\\xe9.jpg")), printable_path("café.jpg")
    ('caf\\\\xe9.jpg', 'café.jpg')
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# ------------------------------------------------------------------ pictures people hand in


def read_picture(source, reduce_above=REDUCE_ABOVE_PIXELS):
    """Reads a picture as uint8 RGB, decoding very large JPEGs reduced.

    Paths and encoded bytes take the same road: the size is read from the header first, so
    a small file that unpacks to a huge picture (a decompression bomb) is decoded reduced or
    refused before its pixels exist, and EXIF orientation is applied.

    Args:
        source: a path, encoded image bytes, or an array (grey, RGB or RGBA; uint8, uint16 or
            float in [0, 1]).
        reduce_above: pictures with more pixels come back downscaled to about this many.

    Returns:
        uint8 array (h, w, 3); 16-bit pictures are scaled to 8 bits (the high byte).

    Raises:
        An error of `load_image` (missing, a folder, empty, not an image, truncated), or
        `PictureError` for a huge non-JPEG picture.

    Example:

    >>> read_picture(np.zeros((4, 5), np.uint16)).shape
    (4, 5, 3)
    """
    if isinstance(source, np.ndarray):
        return to_rgb_uint8(source)
    data, name = _source_bytes(source)
    reason = _sniff(data[:_HEAD], data[-_TAIL:], len(data))
    if reason is not None:
        raise ImageDecodeError(f"{name}: {reason}; expected a JPEG, PNG, BMP or GIF image.")
    header = _peek(data)
    if header is not None and header[0] * header[1] > reduce_above:
        return _read_reduced(data, name, header, reduce_above)
    image = _decode_rgb(data, name)
    if header is not None:
        # Phone photos store their rotation in EXIF; a sideways face is not found.
        image = _apply_orientation(image, header[3])
    return image


@contextlib.contextmanager
def _pil_without_pixel_limit():
    """PIL's Image module with its decompression-bomb limit lifted for this block only.

    The limit is a module global, so the lock keeps other threads from seeing it lifted
    or from restoring it in the middle of this block.
    """
    from PIL import Image

    with _PIL_LOCK:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield Image
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _peek(data):
    """`(width, height, format, exif_orientation)` from the header alone, or None if unknown."""
    with _pil_without_pixel_limit() as Image:
        try:
            with Image.open(io.BytesIO(data)) as picture:
                orientation = picture.getexif().get(0x0112, 1) if picture.format == "JPEG" else 1
                return picture.size[0], picture.size[1], picture.format, orientation
        except Exception:  # PIL refuses it; OpenCV may not, so the size still has to be known
            size = _declared_size(data)
            return None if size is None else (*size, None, 1)


def _declared_size(data):
    """`(width, height)` a PNG, GIF or BMP header declares, or None.

    PIL refuses some files OpenCV decodes (a PNG with a text chunk over PIL's limit before
    its pixels); their size still decides whether they are decoded at all.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:2] == b"BM" and len(data) >= 26:
        return (abs(int.from_bytes(data[18:22], "little", signed=True)),
                abs(int.from_bytes(data[22:26], "little", signed=True)))
    return None


def _read_reduced(data, name, header, reduce_above):
    from PIL import Image

    width, height, kind, orientation = header
    megapixels = width * height / 1e6
    if kind != "JPEG" and width * height > MAX_FULL_DECODE_PIXELS:
        shown = kind or _sniff_kind(data)
        raise PictureError(
            f"{name!r} is a {width} x {height} {shown} picture ({megapixels:.0f} MP); only JPEG "
            f"pictures that large are decoded (reduced). Expected at most "
            f"{MAX_FULL_DECODE_PIXELS / 1e6:.0f} MP for {shown}: downscale it first."
        )
    factor = math.sqrt(reduce_above / (width * height))
    if kind is None:  # PIL cannot read it (see _declared_size): OpenCV decodes it in full
        image = _decode_rgb(data, name)
        return cv2.resize(image, (max(1, int(image.shape[1] * factor)),
                                  max(1, int(image.shape[0] * factor))),
                          interpolation=cv2.INTER_AREA)
    target = (max(1, int(width * factor)), max(1, int(height * factor)))
    with _pil_without_pixel_limit():
        try:
            with Image.open(io.BytesIO(data)) as picture:
                if kind == "JPEG":
                    # libjpeg scales by 1/2, 1/4 or 1/8 while decoding, to at least `target`.
                    picture.draft(picture.mode, target)
                picture.load()
                if picture.size[0] * picture.size[1] > target[0] * target[1]:
                    # Area averaging before the RGB copy keeps the peak small.
                    picture = picture.resize(target, Image.Resampling.BOX)
                image = _pil_to_rgb_uint8(picture, name)
        except (OSError, SyntaxError, ValueError) as error:
            raise PictureError(
                f"{name!r} ({width} x {height} {kind}) could not be decoded ({error}); "
                "expected a complete image file."
            ) from None
    return _apply_orientation(image, orientation)


def _pil_to_rgb_uint8(picture, name):
    """A PIL picture -> uint8 RGB; 16-bit grey keeps its scale (PIL's RGB copy would clip it)."""
    if picture.mode.startswith("I;16") or picture.mode == "I":
        pixels = np.clip(np.asarray(picture), 0, 65535).astype(np.uint16)
        return to_rgb_uint8(pixels, name)
    return np.array(picture.convert("RGB"))


def _sniff_kind(data):
    return {b"\x89P": "PNG", b"GI": "GIF", b"BM": "BMP"}.get(data[:2], "image")


def _apply_orientation(image, orientation):
    """Turns an image stored with EXIF orientation 2..8 upright (1 or unknown: unchanged)."""
    if orientation == 2:
        return np.ascontiguousarray(image[:, ::-1])
    if orientation == 3:
        return np.ascontiguousarray(image[::-1, ::-1])
    if orientation == 4:
        return np.ascontiguousarray(image[::-1])
    if orientation == 5:
        return np.ascontiguousarray(image.transpose(1, 0, 2))
    if orientation == 6:
        return np.ascontiguousarray(np.rot90(image, -1))
    if orientation == 7:
        return np.ascontiguousarray(image.transpose(1, 0, 2)[::-1, ::-1])
    if orientation == 8:
        return np.ascontiguousarray(np.rot90(image, 1))
    return image
