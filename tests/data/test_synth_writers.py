"""SynthFER's writers write, byte for byte, what they wrote before each layout's writer moved
beside its reader (one module per dataset under `adcorre/data/datasets/`).

`synthfer_writer_digests.json` holds the SHA-256 of every file `write_dataset` wrote for each
layout (RAF-DB twice: aligned faces, and original photos with their box files) at n=12,
image_size=32, seed=5, test_fraction=0.25. The digests were recorded on main at commit a20f0e2,
before any writer moved, with OpenCV 4.14.0 and NumPy 2.4.6; the writers of that commit are gone,
so these digests are what "byte-identical to the old writer" means. OpenCV's JPEG encoder (its
bundled libjpeg) may change between releases, so another OpenCV skips the check, as
`test_synth_faces.test_pinned_pixels` does.
"""

import hashlib
import json
import os

import cv2
import pytest

from adcorre.data import synth_faces

_PINNED_OPENCV = "4.14.0"
_DIGESTS = os.path.join(os.path.dirname(__file__), "synthfer_writer_digests.json")
# The digests' keys: the layout, and "_original" for RAF-DB written with aligned=False.
_CASES = {"rafdb": ("rafdb", True), "rafdb_original": ("rafdb", False),
          "affectnet": ("affectnet", True), "fer2013": ("fer2013", True),
          "ferplus": ("ferplus", True), "preprocessed": ("preprocessed", True),
          "folder": ("folder", True)}


def _tree_digests(root):
    """`{relative path: sha256}` of every file under `root`."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            found[os.path.relpath(path, root).replace(os.sep, "/")] = digest
    return found


@pytest.mark.skipif(cv2.__version__ != _PINNED_OPENCV,
                    reason=f"the digests were recorded with OpenCV {_PINNED_OPENCV}")
@pytest.mark.parametrize("case", sorted(_CASES))
def test_each_layout_writes_the_same_bytes_as_before(case, tmp_path):
    with open(_DIGESTS, encoding="utf-8") as handle:
        expected = json.load(handle)[case]
    layout, aligned = _CASES[case]
    synth_faces.write_dataset(str(tmp_path), layout=layout, n=12, image_size=32, seed=5,
                              test_fraction=0.25, aligned=aligned)
    written = _tree_digests(str(tmp_path))
    assert sorted(written) == sorted(expected)  # the same files, no more, no fewer
    changed = sorted(name for name in expected if written[name] != expected[name])
    assert not changed, changed


def test_the_digests_cover_every_layout():
    with open(_DIGESTS, encoding="utf-8") as handle:
        recorded = json.load(handle)
    assert set(recorded) == set(_CASES)
    assert {layout for layout, _ in _CASES.values()} == set(synth_faces.LAYOUTS)
