"""Released weights by name, fetched once into the cache, against a loopback HTTP server.

The server holds an official-format file forged with tf_keras (Keras 2, `Lambda` and all, as
the release files were written) under the name of the official release, and can cut a transfer
short or answer with an HTML login page instead. `ADCORRE_WEIGHTS_MIRROR` points at it;
`ADCORRE_HOME` at a temporary folder.
"""

import hashlib
import os
import urllib.error

import numpy as np
import pytest

from adcorre import errors
from adcorre.cli import weights as weights_cli
from adcorre.inference.test_models import TestModels
from adcorre.models import downloads, named_weights, weights_io, weights_table
from forge_official import forge_official
from helpers import run_python
from weight_server import serving


@pytest.fixture(scope="module")
def forged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    return forge_official(folder / "RafDB_8696.h5", num_embeddings=2, input_size=71, seed=3)


@pytest.fixture
def mirror(forged, tmp_path, monkeypatch):
    """A loopback server holding the forged file as RafDB_8696.h5; the cache in tmp_path."""
    with serving({"RafDB_8696.h5": open(forged["path"], "rb").read()}) as server:
        monkeypatch.setenv("ADCORRE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("ADCORRE_WEIGHTS_MIRROR", server.url)
        monkeypatch.chdir(tmp_path)  # no file named like a release here
        yield server


def _cache_listing(tmp_path):
    folder = tmp_path / "home" / "weights"
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_a_name_is_fetched_once_cached_and_loaded_as_the_official_kind(mirror, forged, tmp_path):
    tester = TestModels(h5_address="adcorre-rafdb", verbose=False)
    assert mirror.requests == ["/RafDB_8696.h5"]  # the mirror's base URL + the file's name
    assert tester.info.kind == "official" and tester.info.arch == "xcp"
    assert tester.info.path == str(tmp_path / "home" / "weights" / "RafDB_8696.h5")
    # No digest is published for the official files: the first download's is recorded beside it.
    assert _cache_listing(tmp_path) == ["RafDB_8696.h5", "RafDB_8696.h5.sha256"]
    served = hashlib.sha256(mirror.files["RafDB_8696.h5"]).hexdigest()
    assert (tmp_path / "home" / "weights" / "RafDB_8696.h5.sha256").read_text() == \
        f"{served}  RafDB_8696.h5\n"
    probabilities = tester.model.predict(forged["images"], verbose=0)[0]
    np.testing.assert_allclose(probabilities, forged["outputs"][0], atol=1e-5)
    again = TestModels(h5_address="adcorre-rafdb", verbose=False)  # from the cache now
    assert mirror.requests == ["/RafDB_8696.h5"] and again.info.kind == "official"


def _table_row(out, name):
    """The cells of `name`'s row of `adcorre weights`' table (split on runs of 2+ spaces)."""
    import re

    rows = [re.split(r"\s{2,}", line) for line in out.splitlines() if line.startswith(name + " ")]
    assert len(rows) == 1, out
    return rows[0]


def test_the_listing_says_what_is_cached(mirror, capsys):
    assert weights_cli.main([]) == 0
    out = capsys.readouterr().out
    header = _table_row(out, "name")
    row = dict(zip(header, _table_row(out, "xcp.rafdb")))
    assert (row["aliases"], row["file"], row["reported"], row["cached"]) == (
        "adcorre-rafdb", "RafDB_8696.h5", "86.96 % on RAF-DB", "no")
    weights_io.load_model("adcorre-rafdb")
    weights_cli.main(["--json"])
    rows = [line for line in capsys.readouterr().out.splitlines() if '"adcorre-rafdb"' in line]
    assert len(rows) == 1 and named_weights.cached_path("adcorre-rafdb") in rows[0]


@pytest.mark.parametrize("mode, said", [("short", "was cut short"), ("html", "an HTML page")])
def test_a_transfer_cut_short_or_a_page_that_is_not_the_file_leaves_nothing(mode, said, mirror,
                                                                            tmp_path):
    mirror.mode = mode
    with pytest.raises(errors.WeightsUnavailableError, match=said) as raised:
        weights_io.load_model("adcorre-rafdb")
    assert "Nothing was kept" in str(raised.value)
    assert str(tmp_path / "home" / "weights" / "RafDB_8696.h5") in str(raised.value)
    assert _cache_listing(tmp_path) == []  # neither the file nor a temporary one


def test_a_chunked_transfer_cut_short_is_the_same_one_error(mirror, tmp_path):
    mirror.mode = "chunk_cut"
    with pytest.raises(errors.WeightsUnavailableError, match="Could not download") as raised:
        weights_io.load_model("adcorre-rafdb")
    assert "IncompleteRead" in str(raised.value) and _cache_listing(tmp_path) == []


def test_a_full_disk_under_the_cache_is_said_as_the_disks_and_leaves_nothing(mirror, tmp_path):
    # RLIMIT_FSIZE (EFBIG on the first write past 4 kB) stands in for a full disk.
    code = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from adcorre.cli.main import main
sys.exit(main(["test", "--weights", "adcorre-rafdb", "--image", "x.jpg"]))
"""
    (tmp_path / "x.jpg").write_bytes(b"there: the pictures are checked before the weights")
    run = run_python(code, env={"ADCORRE_HOME": os.environ["ADCORRE_HOME"],
                                "ADCORRE_WEIGHTS_MIRROR": os.environ["ADCORRE_WEIGHTS_MIRROR"],
                                "CUDA_VISIBLE_DEVICES": ""}, cwd=tmp_path)
    said = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert len(said) == 1 and "into the weights cache" in said[0], said
    assert "File too large" in said[0] and "Nothing was kept" in said[0]
    assert _cache_listing(tmp_path) == []


def test_a_download_that_does_not_load_is_removed_from_the_cache(mirror, tmp_path):
    import h5py

    broken = tmp_path / "broken.h5"  # HDF5, so the first bytes pass, but no model inside
    with h5py.File(broken, "w") as file:
        file.attrs["note"] = "an HDF5 file, not a model"
    mirror.files["RafDB_8696.h5"] = broken.read_bytes()
    with pytest.raises(errors.WeightFileError, match="holds no Keras model"):
        weights_io.load_model("adcorre-rafdb")
    assert _cache_listing(tmp_path) == []


def test_a_file_of_that_name_wins_over_the_release(mirror, tmp_path):
    from helpers import save_tiny_model

    path = save_tiny_model(str(tmp_path))
    os.replace(path, tmp_path / "adcorre-rafdb")
    _, info = weights_io.load_model("adcorre-rafdb")
    assert info.kind == "project" and mirror.requests == []


def test_offline_names_the_address_and_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ADCORRE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADCORRE_WEIGHTS_MIRROR", raising=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", offline)
    with pytest.raises(errors.WeightsUnavailableError) as raised:
        TestModels(h5_address="adcorre-fer2013", verbose=False)
    said = str(raised.value)
    assert named_weights.NAMED_WEIGHTS["adcorre-fer2013"].url in said
    assert str(tmp_path / "home" / "weights" / "Fer2013_7203.h5") in said
    assert "offline?" in said and _cache_listing(tmp_path) == []


def test_a_release_without_an_address_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ADCORRE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADCORRE_WEIGHTS_MIRROR", raising=False)
    with pytest.raises(errors.WeightsUnavailableError) as raised:
        weights_io.load_model("arm-rafdb")
    said = str(raised.value)
    assert "epoch59_acc0.9205.pth" in said and "drive.google.com" in said
    assert str(tmp_path / "home" / "weights" / "epoch59_acc0.9205.pth") in said


def test_the_command_line_takes_a_name_and_says_one_line_when_offline(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"there: the pictures are checked before the weights")
    run = run_python(module="adcorre", argv=["test", "--weights", "adcorre-rafdb", "--image",
                                             "x.jpg"],
                     env={"ADCORRE_HOME": str(tmp_path), "CUDA_VISIBLE_DEVICES": "",
                          "ADCORRE_WEIGHTS_MIRROR": "http://127.0.0.1:9/"}, cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    errors_said = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors_said) == 1 and "http://127.0.0.1:9/RafDB_8696.h5" in errors_said[0]


def test_the_progress_bar_draws_on_request(mirror, tmp_path, capsys):
    spec = named_weights.NAMED_WEIGHTS["adcorre-rafdb"]
    target = str(tmp_path / "bar" / spec.file)
    downloads.download(named_weights.address("adcorre-rafdb"), target, what=spec.name,
                       signatures=(b"\x89HDF",), progress=True)
    err = capsys.readouterr().err
    assert "\rRafDB_8696.h5: [##############################]" in err and os.path.isfile(target)
