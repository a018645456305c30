"""Careless or hostile input in datasets and pictures: FIFOs, PNG bombs, JPEG headers that lie,
label files that are not text. Nothing is lost, no traceback (each test written to fail before
its fix).
"""

import io
import os
import struct
import threading
import zlib

import cv2
import numpy as np
import pytest

from adcorre.data import dataset_readers
from adcorre.data import pictures
from adcorre.data import synth_faces
from helpers import grace_hopper_path, skimage_data_path
from picture_files import write_grey_jpeg, write_lying_jpeg


# ------------------------------------------------------ three inputs the issue does not name


def test_a_fifo_among_a_datasets_images_is_skipped_not_waited_on(tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / "raf"), layout="rafdb", n=10, image_size=32)
    fifo = os.path.join(data, "Image", "aligned", "train_00002_aligned.jpg")
    os.remove(fifo)
    os.mkfifo(fifo)
    frame = dataset_readers.read_split("rafdb", data, "train")
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        out=pictures.validate_images(frame, warn=False)), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # opening the FIFO blocks; a writer that opens and closes frees it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("the header check waited on a FIFO")
    good, skipped = result["out"]
    assert skipped == [(fifo, "not a regular file")] and len(good) == len(frame) - 1
    with pytest.raises(pictures.ImageDecodeError, match="not a regular file"):
        pictures.read_picture(fifo)


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_png_bomb_behind_a_text_chunk_pil_refuses_is_still_refused(tmp_path):
    from PIL import Image

    # 12000 x 12000 black grey pixels after a zTXt chunk that unpacks to 4 MB: PIL will not
    # open the file at all, OpenCV would decode all 144 MP of it.
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(bytes(12001)) for _ in range(12000)) + compressor.flush()
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 12000, 12000, 8, 0, 0, 0, 0))
            + _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(4 << 20), 9))
            + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b""))
    assert len(data) < 500_000
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ValueError):  # the premise
        Image.open(str(path))
    for source in (str(path), data):
        with pytest.raises(pictures.PictureError, match="12000 x 12000 PNG"):
            pictures.read_picture(source)


@pytest.mark.parametrize("layout, name", [
    ("rafdb", "EmoLabel/list_patition_label.txt"),
    ("affectnet", "training.csv"),
    ("fer2013", "fer2013.csv"),
])
def test_label_file_that_is_not_utf8_text_names_the_file(layout, name, tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / layout), layout=layout, n=12, image_size=32)
    path = os.path.join(data, *name.split("/"))
    with open(path, "wb") as handle:  # e.g. a photo saved under the label file's name
        handle.write(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    with pytest.raises(dataset_readers.DatasetFormatError, match="not UTF-8 text") as raised:
        dataset_readers.read_split(layout, data, "train")
    assert path in str(raised.value)


def test_csv_with_an_overlong_field_names_the_file_and_line(tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / "fer"), layout="fer2013", n=12)
    path = os.path.join(data, "fer2013.csv")
    with open(path, "a") as handle:
        handle.write('0,"' + "1 " * 100_000 + '",Training\n')
    with pytest.raises(dataset_readers.DatasetFormatError, match="line 14.*cannot be read as CSV"):
        dataset_readers.read_split("fer2013", data, "train")


# --------------------------------------------------- a JPEG whose header promises what it lacks


def test_a_jpeg_header_promising_more_pixels_than_its_bytes_hold_is_truncated(tmp_path):
    """65500 x 65500 over a few hundred bytes, end marker and all: decoders pad it with grey
    (it came out as a grey 4000 x 4000 picture with a label); it is the truncated file it is."""
    liar = write_lying_jpeg(str(tmp_path / "liar.jpg"))
    with pytest.raises(pictures.ImageDecodeError,
                       match=r"liar.jpg: truncated JPEG \(its header promises 65500 x 65500"):
        pictures.read_picture(liar)
    with open(liar, "rb") as handle:
        with pytest.raises(pictures.ImageDecodeError, match="truncated JPEG"):
            pictures.read_picture(handle.read())  # the web app's uploads take this road


def test_real_and_the_flattest_jpegs_are_not_taken_for_liars(tmp_path):
    """The flattest JPEG a Huffman coder can write (2 bits per block: 256 pixels per byte) and
    real photographs pass the check."""
    flat = write_grey_jpeg(str(tmp_path / "flat.jpg"), 4000, 4000)
    assert os.path.getsize(flat) * 256 >= 4000 * 4000 * 0.99
    assert pictures._check_file(flat) is None
    assert pictures.read_picture(flat).shape == (4000, 4000, 3)
    for path in (grace_hopper_path(), skimage_data_path("chelsea.png", required=False)):
        if path is not None:
            assert pictures._check_file(path) is None


def _behind_a_big_app_segment(jpeg, payload=60_000):
    """The JPEG with a 60 kB APP1 segment (an EXIF block with a thumbnail, as cameras write)
    after its start marker, so its frame header lies 60 kB in."""
    segment = b"\xff\xe1" + struct.pack(">H", payload + 2) + bytes(payload)
    return jpeg[:2] + segment + jpeg[2:]


def test_the_header_check_walks_a_jpegs_segments_without_reading_them(tmp_path, monkeypatch):
    """It read the first 128 kB of every picture (36 GB for AffectNet's 280k photos): now the
    segments' starts only, and the verdicts stay those of the whole header."""
    liar = open(write_lying_jpeg(str(tmp_path / "liar.jpg")), "rb").read()
    honest = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()
    cases = {"honest.jpg": _behind_a_big_app_segment(honest) + bytes(200_000),
             "liar.jpg": _behind_a_big_app_segment(liar)}
    read = []

    class Counting(io.FileIO):
        def read(self, size=-1):
            data = super().read(size)
            read.append(len(data))
            return data

    for name, data in cases.items():
        (tmp_path / name).write_bytes(data + b"\xff\xd9")
    monkeypatch.setattr(pictures, "open", lambda path, mode="rb": Counting(path, "r"),
                        raising=False)
    verdicts = {name: pictures._check_file(str(tmp_path / name)) for name in cases}
    assert verdicts["honest.jpg"] is None
    assert verdicts["liar.jpg"].startswith("truncated JPEG (its header promises 65500 x 65500")
    assert sum(read) < 2 * (4096 + 4096 + 9 * 8)  # head, tail and a few segment starts each
    # The same verdicts from the bytes (an upload) as from the file.
    for name, data in cases.items():
        data = data + b"\xff\xd9"
        assert pictures._sniff(data[:pictures._HEAD], data[-4096:], len(data)) == verdicts[name]


def test_a_lying_jpeg_in_a_dataset_is_skipped_and_counted(tmp_path):
    root = synth_faces.write_dataset(str(tmp_path / "raf"), layout="rafdb", n=20, image_size=32,
                                     test_fraction=0.5, seed=2)
    frame = dataset_readers.read_split("rafdb", root, "train")
    write_lying_jpeg(frame["image"][1])
    with pytest.warns(pictures.BadImageWarning, match="truncated JPEG"):
        good, skipped = pictures.validate_images(frame)
    assert len(good) == len(frame) - 1
    assert skipped == [(frame["image"][1], skipped[0][1])] and "65500 x 65500" in skipped[0][1]


# ------------------------------------------------------------ file names that are not UTF-8


def _latin1_name(folder, source):
    """Copies `source` to a file named café.jpg in Latin-1 bytes (b"caf\\xe9.jpg"): Python sees a
    str with a surrogate, which a UTF-8 writer or a TensorFlow string refuses."""
    target = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")
    with open(source, "rb") as handle, open(target, "wb") as out:
        out.write(handle.read())
    return os.fsdecode(target)


def test_a_folder_dataset_with_a_latin1_file_name_is_read(tmp_path):
    """Training on such a folder stopped with TensorFlow's "Error converting unicode string"."""
    from adcorre.data import input_pipeline

    root = synth_faces.write_dataset(str(tmp_path / "folder"), layout="folder", n=14,
                                     image_size=32, test_fraction=0.5, seed=4)
    frame = dataset_readers.read_split("folder", root, "train")
    first = frame["image"][0]
    odd = _latin1_name(os.path.dirname(first), first)
    os.remove(first)
    frame = dataset_readers.read_split("folder", root, "train")
    assert odd in list(frame["image"])
    good, skipped = pictures.validate_images(frame)
    assert skipped == [] and len(good) == len(frame)
    batches = list(input_pipeline.make_dataset(frame, input_size=32, batch_size=len(frame)))
    images, labels = batches[0]
    assert images.shape == (len(frame), 32, 32, 3) and labels.shape == (len(frame),)
    assert pictures.describe_image(odd).endswith("caf\\xe9.jpg")
