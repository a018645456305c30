"""Released weights by name, fetched once into the cache, against a loopback HTTP server.

The server holds an official-format file forged with tf_keras (Keras 2, `Lambda` and all, as
the release files were written) under the name of the official release, and can cut a transfer
short or answer with an HTML login page instead. `ADCORRE_WEIGHTS_MIRROR` points at it;
`ADCORRE_HOME` at a temporary folder.
"""

import hashlib
import os
import re
import urllib.error

import numpy as np
import pytest

from adcorre import errors
from adcorre.cli import weights as weights_cli
from adcorre.inference.model_tester import TestModels
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


# ------------------------------------------------------------------ the table of downloadable files


def test_one_table_lists_every_file_by_arch_tag_with_its_aliases(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ADCORRE_HOME", str(tmp_path / "home"))
    assert weights_cli.main([]) == 0
    out = capsys.readouterr().out
    header = _table_row(out, "name")
    assert header == ["name", "aliases", "file", "size", "cached", "digest", "reported", "source"]
    rows = {name: dict(zip(header, _table_row(out, name)))
            for name in weights_table.WEIGHT_FILES}  # each record: exactly one row
    assert rows["xcp.imagenet"]["file"] == "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert rows["xcp.imagenet"]["digest"] == "md5 published"
    assert rows["xcp.rafdb"]["aliases"] == "adcorre-rafdb"
    assert rows["xcp.rafdb"]["digest"] == "sha256 at 1st download"
    assert rows["resnet18.imagenet"]["digest"] == "sha256 prefix f37072fd"
    assert rows["resnet18_arm.rafdb"]["aliases"] == "arm-rafdb"
    assert not (tmp_path / "home").exists()  # listing makes nothing


def test_every_record_is_well_formed():
    from adcorre.models.registry import ARCH_NAMES, get_arch

    names = weights_table.names()
    assert len(names) == len(set(names))  # no name or alias twice
    for record in weights_table.weight_files():
        assert re.fullmatch(r"[a-z0-9_]+\.[a-z0-9]+", record.name) and record.arch in ARCH_NAMES
        assert record.kind in weights_table.KINDS and (record.url or record.how_to_get)
        assert os.path.splitext(record.file)[1] in (".h5", ".pth")
        if record.digest:
            algorithm, value = record.digest.split(":")
            assert algorithm in weights_table.DIGEST_ALGORITHMS
            assert re.fullmatch(r"[0-9a-f]{8,}", value) and record.digest_source
        # Other tools' caches are read only where a published digest vouches for the copy.
        assert not record.other_caches or record.digest
    for arch in ARCH_NAMES:
        imagenet = get_arch(arch).imagenet
        assert imagenet is None or weights_table.resolve(imagenet).kind in ("keras_backbone",
                                                                            "torch")
    # The digests recorded are those their publishers state: Keras' file_hash, torchvision's name.
    import keras.src.applications.resnet as keras_resnet
    import keras.src.applications.xception as keras_xception
    import inspect

    assert weights_table.resolve("xcp.imagenet").digest.split(":")[1] in \
        inspect.getsource(keras_xception)
    assert weights_table.resolve("resnet.imagenet").digest.split(":")[1] == \
        keras_resnet.WEIGHTS_HASHES["resnet50"][1]
    torchvision = weights_table.resolve("resnet18.imagenet")
    assert torchvision.file == f"resnet18-{torchvision.digest.split(':')[1]}.pth"


def test_the_mirror_serves_every_record_under_its_file_name(monkeypatch):
    monkeypatch.setenv("ADCORRE_WEIGHTS_MIRROR", "file:///srv/weights")
    for record in weights_table.weight_files():
        assert named_weights.address(record.name) == "file:///srv/weights/" + record.file
    monkeypatch.delenv("ADCORRE_WEIGHTS_MIRROR")
    assert named_weights.address("adcorre-rafdb") == weights_table.resolve("xcp.rafdb").url


def test_a_name_and_its_alias_are_one_file(mirror, tmp_path):
    _, by_alias = weights_io.load_model("adcorre-rafdb")
    _, by_name = weights_io.load_model("xcp.rafdb")
    assert by_alias.path == by_name.path and mirror.requests == ["/RafDB_8696.h5"]
    with pytest.raises(errors.SettingError, match="xcp.rafdb, adcorre-rafdb"):
        weights_table.resolve("xcp.rafbd")


# ---------------------------------------------------------------------- integrity of the files


def test_a_cached_file_that_changed_is_refused_naming_both_digests_and_verify_says_so(
        mirror, tmp_path, capsys):
    path, _ = named_weights.locate("adcorre-rafdb")
    recorded = hashlib.sha256(mirror.files["RafDB_8696.h5"]).hexdigest()
    assert weights_cli.main(["--verify"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^xcp\.rafdb\s+ok\s+.*matches the SHA-256 recorded at its first download", out, re.M), out
    assert re.search(r"^xcp\.imagenet\s+absent\s+not on this machine", out, re.M), out

    with open(path, "r+b") as handle:  # one byte changed, past the HDF5 signature
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    changed = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with pytest.raises(errors.WeightFileError) as raised:
        weights_io.load_model("adcorre-rafdb")
    said = str(raised.value)
    assert path in said and f"its SHA256 is {changed}, expected {recorded}" in said
    assert os.path.isfile(path) and mirror.requests == ["/RafDB_8696.h5"]  # kept, not refetched
    assert weights_cli.main(["--verify"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^xcp\.rafdb\s+mismatch\s+", out, re.M) and changed in out and recorded in out


def test_wrong_bytes_under_a_name_with_a_published_digest_are_refused_and_not_kept(
        mirror, tmp_path):
    impostor = b"PK\x03\x04" + b"not torchvision's ResNet-18" * 100  # starts as torch files do
    mirror.files["resnet18-f37072fd.pth"] = impostor
    with pytest.raises(errors.WeightFileError) as raised:
        weights_io.load_model("resnet18-imagenet")
    said = str(raised.value)
    assert "resnet18.imagenet (resnet18-f37072fd.pth)" in said
    assert f"its SHA256 is {hashlib.sha256(impostor).hexdigest()}, expected f37072fd..." in said
    assert not (tmp_path / "home").exists()


def test_a_fresh_download_unlike_the_recorded_digest_is_refused(mirror, tmp_path):
    path, _ = named_weights.locate("adcorre-rafdb")
    recorded = hashlib.sha256(mirror.files["RafDB_8696.h5"]).hexdigest()
    os.remove(path)  # the file is gone; its record stays
    mirror.files["RafDB_8696.h5"] += b"\0"  # the address now serves other bytes
    with pytest.raises(errors.WeightFileError) as raised:
        named_weights.locate("adcorre-rafdb")
    said = str(raised.value)
    assert f"expected {recorded}" in said
    assert hashlib.sha256(mirror.files["RafDB_8696.h5"]).hexdigest() in said
    assert _cache_listing(tmp_path) == ["RafDB_8696.h5.sha256"]


def test_a_file_under_an_official_name_that_is_not_that_release_is_refused(mirror, tmp_path):
    import keras

    # A plain Keras classifier with 7 outputs, served as RafDB_8696.h5: it used to load and
    # print "class_6 0.766" without a word.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "classifier.h5")
    mirror.files["RafDB_8696.h5"] = (tmp_path / "classifier.h5").read_bytes()
    with pytest.raises(errors.WeightFileError) as raised:
        TestModels(h5_address="adcorre-rafdb", verbose=False)
    said = str(raised.value)
    assert "is kept as xcp.rafdb but is not that release" in said
    assert "expected an official Ad-Corre Keras 2 .h5 model of arch xcp, 7 classes" in said
    assert "it holds a classifier model" in said and "(it was not kept)" in said
    assert _cache_listing(tmp_path) == []  # the download and the digest it recorded


def _keras_copy(tmp_path, monkeypatch, content):
    """Puts `content` where Keras keeps Xception's ImageNet file, with a published digest that
    is (patched to be) its MD5; returns its path."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    copy = tmp_path / "keras" / "models" / weights_table.resolve("xcp.imagenet").file
    copy.parent.mkdir(parents=True)
    copy.write_bytes(content)
    return copy


def test_a_copy_in_keras_own_cache_is_used_in_place_once_its_digest_is_checked(
        mirror, tmp_path, monkeypatch):
    import dataclasses

    copy = _keras_copy(tmp_path, monkeypatch, b"\x89HDF\r\n\x1a\n" + b"weights" * 100)
    record = weights_table.resolve("xcp.imagenet")
    published = record.digest.split(":")[1]
    with pytest.raises(errors.WeightFileError) as raised:  # the real MD5: not these bytes
        named_weights.fetch("xcp.imagenet")
    assert f"expected {published}" in str(raised.value) and copy.is_file()  # not ours: kept
    monkeypatch.setitem(weights_table.WEIGHT_FILES, "xcp.imagenet", dataclasses.replace(
        record, digest="md5:" + hashlib.md5(copy.read_bytes()).hexdigest()))
    assert named_weights.fetch("xcp.imagenet") == str(copy)
    # `imagenet` and the record's name are one thing, for both arches that read it.
    assert named_weights.initial_weights("xcp", "xcp.imagenet") == "imagenet"
    assert named_weights.initial_weights("xcp_arm", "xcp.imagenet") == "imagenet"
    with pytest.raises(errors.SettingError, match="starts arch 'xcp', not 'resnet'"):
        named_weights.initial_weights("resnet", "xcp.imagenet")
    assert mirror.requests == [] and not (tmp_path / "home").exists()  # no download, no copy


def test_imagenet_weights_are_fetched_into_the_cache_and_load_into_the_backbone(
        mirror, tmp_path, monkeypatch):
    import dataclasses

    import tf_keras

    # Xception's ImageNet file as Keras publishes it: a Keras 2 weights-only HDF5 of the
    # backbone without its top (random weights here, written by tf_keras).
    published = tf_keras.applications.Xception(include_top=False, weights=None,
                                               input_shape=(71, 71, 3))
    record = weights_table.resolve("xcp.imagenet")
    published.save_weights(tmp_path / record.file)
    body = (tmp_path / record.file).read_bytes()
    mirror.files[record.file] = body
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # none there
    monkeypatch.setitem(weights_table.WEIGHT_FILES, "xcp.imagenet", dataclasses.replace(
        record, digest="md5:" + hashlib.md5(body).hexdigest()))
    from adcorre.models.cnn_model import CNNModel

    model = CNNModel().get_model("xcp", weights="imagenet", input_size=71, num_embeddings=1)
    again = CNNModel().get_model("xcp", weights="xcp.imagenet", input_size=71, num_embeddings=1)
    assert mirror.requests == ["/" + record.file]  # once, then from the cache
    assert _cache_listing(tmp_path) == [record.file]  # a published digest: nothing recorded
    expected = published.get_layer("block14_sepconv2").get_weights()
    for built in (model, again):
        for got, want in zip(built.get_layer("block14_sepconv2").get_weights(), expected):
            np.testing.assert_array_equal(got, want)


def test_training_starts_from_a_released_file_by_name(mirror, forged, tmp_path):
    from adcorre.training.train_model import TrainModel

    trainer = TrainModel(weights="adcorre-rafdb", input_size=71, num_embeddings=2)
    model = trainer.make_model("xcp")
    released, _ = weights_io.load_model("adcorre-rafdb")  # read as the official file it is
    for name in ("block1_conv1", "block14_sepconv2", "dense", "dense_1", "out"):
        for got, want in zip(model.get_layer(name).get_weights(),
                             released.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(errors.SettingError, match="starts arch 'xcp', not 'tiny'"):
        trainer.make_model("tiny")
    assert mirror.requests == ["/RafDB_8696.h5"]


# ------------------------------------------------------- the command line, before TensorFlow loads


BEFORE_TENSORFLOW = """
import sys, time
from adcorre.cli.main import main
started = time.monotonic()
status = main(sys.argv[1:])
print("tensorflow loaded:", "tensorflow" in sys.modules, "status:", status,
      "seconds: %.1f" % (time.monotonic() - started))
"""


@pytest.mark.parametrize("argv, said", [
    (["test", "--weights", "adcorre-rafdb", "--image", "x.jpg"], "http://127.0.0.1:9/RafDB_8696.h5"),
    (["train", "--arch", "xcp", "--weights", "xcp.rafdb"], "http://127.0.0.1:9/RafDB_8696.h5"),
    (["train", "--weights", "adcorre-rafdb"], "starts arch 'xcp', not 'tiny' (--arch xcp)"),
])
def test_a_named_file_that_cannot_be_had_is_one_error_before_tensorflow_loads(argv, said,
                                                                              tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"there: the pictures are checked before the weights")
    run = run_python(BEFORE_TENSORFLOW, argv=argv, cwd=tmp_path,
                     env={"ADCORRE_HOME": str(tmp_path / "home"), "CUDA_VISIBLE_DEVICES": "",
                          "ADCORRE_WEIGHTS_MIRROR": "http://127.0.0.1:9/"})
    assert "tensorflow loaded: False status: 2" in run.stdout, run.stdout + run.stderr[-2000:]
    errors_said = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors_said) == 1 and said in errors_said[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr and not (tmp_path / "home").exists()


def test_a_backbone_file_is_no_model_to_test(capsys):
    from adcorre.cli import inference_options

    with pytest.raises(SystemExit) as stopped:
        inference_options.parse_args(["--weights", "xcp.imagenet", "--image", __file__])
    assert stopped.value.code == 2
    assert "adcorre train --arch xcp --weights xcp.imagenet" in capsys.readouterr().err
