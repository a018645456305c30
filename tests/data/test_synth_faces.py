"""SynthFER generator: determinism, labels, expression signal, on-disk formats, CLI."""

import csv
import hashlib
import os
import re

import cv2
import numpy as np
import pytest

from adcorre import config
from adcorre.data import synth_faces
from adcorre.errors import SettingError
from helpers import run_python


def test_generate_shapes_and_types():
    images, labels = synth_faces.generate(12, image_size=40, seed=1)
    assert images.shape == (12, 40, 40, 3) and images.dtype == np.uint8
    assert labels.shape == (12,) and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() <= 6
    # Not blank: real drawings have many distinct values in every channel.
    assert all(len(np.unique(images[i, :, :, c])) > 20 for i in range(12) for c in range(3))


def test_generate_is_deterministic_by_seed():
    a_images, a_labels = synth_faces.generate(6, image_size=48, seed=7)
    b_images, b_labels = synth_faces.generate(6, image_size=48, seed=7)
    c_images, c_labels = synth_faces.generate(6, image_size=48, seed=8)
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(a_images, c_images)


# These hashes pin the renderer's output so that refactors cannot change the data: the
# cases below draw every class (Contempt too), both hair lengths and bald heads, fringes,
# moustaches, both kinds of glasses, hands and objects over the face, blur and JPEG, and
# every clutter count. Change a hash only on purpose, with the reason in the commit.
# They hold for the OpenCV build they were computed with (anti-aliased drawing and the
# bundled libjpeg may change between releases), so another OpenCV skips the check.
_PINNED_OPENCV = "4.14.0"
_PINNED_GENERATE = [
    # (n, image_size, seed, labels), sha256 of the images, sha256 of the labels
    ((40, 48, 0, None),
     "cf80761e7263b2a26cfa9ff87cc144cdb9d58011b31cbcd8dd8ada04e9a4edce",
     "6854f4d502205ba250648645763a302d3093bfdaa3cec7cfc657e9721968fbbe"),
    ((32, 64, 1, None),
     "8aeba3ce035f689b16d1269cb98bfec2b2bd66d75099344d6999c1fe59918669",
     "ca661a627005d8228c51f176023d5ae6376228978bbcc329f9d4500f7d6f46fa"),
    ((24, 112, 7, None),
     "2cc6051942e10859f5988cc3506a23a0cbbdb9fe05576106ea981ee78db9e2da",
     "86a653210add519fe8817c748dbd26e28a4683b02255d8d80c8c0b9eb24993cf"),
    ((16, 80, 5, tuple(np.arange(16) % 8)),
     "a6cf9465ba03ec49d452f2d4d0a5bfb6cfd0b1b52c24d45c5ab0aebc2bd2eb96",
     "8334b97b99c49618eebe82407faf0dbd0f4f5f9e6b8a1a322a59ecfe6d6ff715"),
]
_PINNED_SHEET = "e6b72187b18fb1d73f5498b6e87be607f3efd99f5c0ac736fbaee0195694c56b"
_PINNED_FERPLUS = {
    "fer2013.csv": "a2c25555d8cd36ee1728a5bd5765f0c3f1a631b1d5444795949072c844a40856",
    "fer2013new.csv": "da7ec4336dad5d56080c036cf72fa31b99d240ffecc916a341a1df4380cd2718",
}


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(cv2.__version__ != _PINNED_OPENCV,
                    reason=f"pixel hashes were computed with OpenCV {_PINNED_OPENCV}")
def test_pinned_pixels(tmp_path):
    for (n, size, seed, labels), images_sha, labels_sha in _PINNED_GENERATE:
        images, drawn = synth_faces.generate(n, size, seed=seed, labels=labels)
        assert _sha256(images.tobytes()) == images_sha, f"images of {(n, size, seed)} changed"
        assert _sha256(drawn.tobytes()) == labels_sha, f"labels of {(n, size, seed)} changed"
    sheet = synth_faces.contact_sheet(per_class=2, image_size=48, seed=3)
    assert _sha256(sheet.tobytes()) == _PINNED_SHEET
    synth_faces.write_dataset(str(tmp_path), layout="ferplus", n=12, seed=4, test_fraction=0.5)
    for name, sha in _PINNED_FERPLUS.items():
        assert _sha256((tmp_path / name).read_bytes()) == sha, name


def test_labels_do_not_depend_on_image_size():
    _, small = synth_faces.generate(30, image_size=24, seed=3)
    _, large = synth_faces.generate(30, image_size=64, seed=3)
    np.testing.assert_array_equal(small, large)


def test_class_prior_follows_rafdb_imbalance():
    _, labels = synth_faces.generate(600, image_size=24, seed=0)
    freq = np.bincount(labels, minlength=7) / len(labels)
    # RAF-DB basic counts, canonical order, computed independently of the module.
    rafdb = np.array([3204, 5957, 2460, 1619, 355, 877, 867]) / 15339
    np.testing.assert_allclose(freq, rafdb, atol=0.05)
    assert freq.argmax() == 1  # Happy most frequent
    assert freq[4] < 0.06  # Fear rare


def test_explicit_labels_and_uniform_prior():
    images, labels = synth_faces.generate(7, image_size=32, seed=0, labels=np.arange(7))
    np.testing.assert_array_equal(labels, np.arange(7))
    _, uniform = synth_faces.generate(700, image_size=24, seed=0, class_prior=np.ones(7))
    assert np.bincount(uniform, minlength=7).min() > 60
    with pytest.raises(ValueError, match="class_prior"):
        synth_faces.generate(3, image_size=32, class_prior=[1, 2])
    with pytest.raises(ValueError, match="labels"):
        synth_faces.generate(2, image_size=32, labels=[0, 9])


def test_expression_changes_the_face_only():
    # With one seed and an explicit label, person, pose and nuisances are identical
    # across classes: the pixels that change must lie on the face, and every class
    # must differ from neutral.
    size = 96
    faces = np.stack([synth_faces.generate(1, size, seed=11, labels=[c])[0][0]
                      for c in range(7)]).astype(np.int32)
    for c in range(1, 7):
        diff = np.abs(faces[c] - faces[0]).sum(-1) > 30
        assert diff.sum() > 0.004 * size * size, f"class {c} barely differs from neutral"
        ys, xs = np.nonzero(diff)
        # The changed pixels sit in a compact region (the face), not all over the background.
        assert (ys.max() - ys.min()) < 0.85 * size and (xs.max() - xs.min()) < 0.85 * size
    # Classes differ from each other too.
    for a in range(1, 7):
        for b in range(a + 1, 7):
            assert np.abs(faces[a] - faces[b]).sum(-1).max() > 30


def test_bad_arguments(tmp_path):
    with pytest.raises(SettingError, match="image_size"):
        synth_faces.generate(2, image_size=8)
    with pytest.raises(SettingError, match="layout"):
        synth_faces.write_dataset("/tmp/never", layout="imagenet", n=2)
    with pytest.raises(SettingError, match="test_fraction must be in"):
        synth_faces.write_dataset(str(tmp_path / "never"), layout="folder", n=2, test_fraction=2)
    sheet = str(tmp_path / "sheet.gif")
    with pytest.raises(SettingError, match=r"sheet\.gif': expected a file ending in \.png, "):
        synth_faces.write_preview(sheet)
    assert os.listdir(tmp_path) == []


def test_rafdb_file_format(tmp_path):
    synth_faces.write_dataset(str(tmp_path), layout="rafdb", n=10, image_size=32, seed=2)
    _, labels = synth_faces.generate(10, 32, seed=2)
    lines = (tmp_path / "EmoLabel" / "list_patition_label.txt").read_text().splitlines()
    assert len(lines) == 10
    raf_names = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}  # RAF-DB code -> canonical (DESIGN.md)
    for i, line in enumerate(lines):
        match = re.fullmatch(r"(train_\d{5}|test_\d{4})\.jpg ([1-7])", line)
        assert match, line
        assert raf_names[int(match.group(2))] == labels[i]
        image = cv2.imread(str(tmp_path / "Image" / "aligned" / f"{match.group(1)}_aligned.jpg"))
        assert image.shape == (32, 32, 3)


def test_fer_csv_formats(tmp_path):
    synth_faces.write_dataset(str(tmp_path), layout="ferplus", n=12, seed=4, test_fraction=0.5)
    with open(tmp_path / "fer2013.csv", newline="") as f:
        fer = list(csv.DictReader(f))
    with open(tmp_path / "fer2013new.csv", newline="") as f:
        plus = list(csv.DictReader(f))
    assert len(fer) == len(plus) == 12 + 3 * 5  # 5 rule-testing extras per usage group
    for row in fer:
        assert len(row["pixels"].split()) == 48 * 48
        assert row["Usage"] in ("Training", "PublicTest", "PrivateTest")
    for fer_row, plus_row in zip(fer, plus):
        assert fer_row["Usage"] == plus_row["Usage"]
        votes = [int(plus_row[c]) for c in config.FERPLUS_VOTE_COLUMNS]
        assert sum(votes) == 10 and min(votes) >= 0
    usages = [row["Usage"] for row in fer]
    assert usages.count("Training") == 6 + 5


def test_affectnet_csv_format(tmp_path):
    synth_faces.write_dataset(str(tmp_path), layout="affectnet", n=10, image_size=40, seed=1)
    with open(tmp_path / "training.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["subDirectory_filePath", "face_x", "face_y", "face_width",
                             "face_height", "facial_landmarks", "expression", "valence", "arousal"]
    codes = [int(r["expression"]) for r in rows]
    assert codes[-3:] == [8, 9, 10] and 7 in codes
    for r in rows:
        photo = cv2.imread(str(tmp_path / "Manually_Annotated_Images" / r["subDirectory_filePath"]))
        x, y, w, h = (int(r[k]) for k in ("face_x", "face_y", "face_width", "face_height"))
        assert w == h == 40 and x + w <= photo.shape[1] and y + h <= photo.shape[0]
        assert len(r["facial_landmarks"].split(";")) == 136


def test_cli_writes_dataset_and_preview(tmp_path):
    preview = tmp_path / "sheet.png"
    out = tmp_path / "folder"
    result = run_python(
        module="adcorre",
        argv=["synth", "--layout", "folder", "--out", out, "--n", "14", "--image-size", "32",
              "--preview", preview, "--per-class", "3"], timeout=120)
    assert result.returncode == 0, result.stderr
    sheet = cv2.imread(str(preview))
    assert sheet.shape[0] == 7 * 32  # one row per class
    files = [f for _, _, fs in os.walk(out) for f in fs]
    assert len(files) == 14
