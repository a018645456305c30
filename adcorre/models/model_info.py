"""`ModelInfo`, what a loaded model says about itself, and the one function that builds it.

Every loader ends in `model_info(...)` (directly, or through `describe_keras` for a Keras model
whose shapes say most of it, or `load_export` for an export and its description), so the fields
are typed and defaulted in one place; `with_overrides` applies the caller's labels and input
range, in one place too (`weights_io.load_model`).

Example:
>>> info = model_info("m.h5", "project", labels=["a", "b"], input_size=(32, 32), channels=3,
...                   num_embeddings=2)
>>> info.kind, info.loader, info.labels, info.input_range, info.num_classes
('project', 'project', ('a', 'b'), (0.0, 1.0), 2)
>>> with_overrides(info, ("x", "y"), (-1.0, 1.0)).labels
('x', 'y')
"""

import dataclasses
import os

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras

from adcorre.config import InputDataSize
from adcorre.errors import WeightFileError
from adcorre.models import exported


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """How to feed a loaded model and read its output.

    Attributes:
        path: the file it came from.
        kind: `"project"`, `"official"`, `"classifier"` or `"torch"` (a Keras model built from
            the file), or the runtime an export runs on: `"litert"`, `"tflite-tensorflow"`,
            `"onnxruntime"` (an `exported.ExportedModel`, `predict_on_batch` only).
        loader: the `name` of the loader that recognised the file (`loaders.LOADERS`):
            `"project"`, `"official"`, `"classifier"`, `"torch"`, `"tflite"` or `"onnx"`.
        labels: the name of each output class, in output order.
        input_range: `(lo, hi)`; pixels in [0, 1] map linearly onto it.
        input_size: `(height, width)` the model takes.
        channels: 1 (grey) or 3 (RGB).
        num_embeddings: k embedding outputs after the probabilities (0 for plain classifiers).
        arch: a `registry.ARCH_NAMES` name, or None when unknown.
        outputs_probabilities: False when the classifier ends in logits (apply a softmax).
        metadata: everything else the file said (`extra` of `save_model`, Keras version...).
        assumed: what the file does not say and was guessed: `"labels"` (`class_0..`),
            `"input_range"` ([0, 1]); `assumptions_note` says so in one line.
    """

    path: str
    kind: str
    loader: str
    labels: tuple
    input_range: tuple
    input_size: tuple
    channels: int
    num_embeddings: int
    arch: str = None
    outputs_probabilities: bool = True
    metadata: dict = dataclasses.field(default_factory=dict)
    assumed: tuple = ()

    @property
    def num_classes(self):
        return len(self.labels)


def model_info(path, loader, *, labels, input_size, channels, num_embeddings, kind=None,
               input_range=(0.0, 1.0), arch=None, outputs_probabilities=True, metadata=None,
               range_assumed=False):
    """The `ModelInfo` of a loaded file: the one constructor every loader calls.

    Args:
        path: the file.
        loader: the loader's `name`; `kind` defaults to it.
        labels: the class names (any sequence of strings); `class_0..` (`unnamed_labels`)
            are a guess, recorded in `assumed`.
        input_size: `(height, width)`; channels, num_embeddings: as in `ModelInfo`.
        kind, input_range, arch, outputs_probabilities, metadata: as in `ModelInfo`.
        range_assumed: True where the file does not say its input range (`input_range` is
            then a guess, recorded in `assumed`).

    Returns:
        A `ModelInfo` with tuples and plain ints in its fields.
    """
    labels = tuple(labels)
    assumed = (("labels",) if labels == unnamed_labels(len(labels)) else ()) + (
        ("input_range",) if range_assumed else ())
    return ModelInfo(
        path=path, kind=kind or loader, loader=loader, labels=labels,
        input_range=tuple(float(v) for v in input_range),
        input_size=(int(input_size[0]), int(input_size[1])), channels=int(channels),
        num_embeddings=int(num_embeddings), arch=arch,
        outputs_probabilities=bool(outputs_probabilities), metadata=dict(metadata or {}),
        assumed=assumed)


def assumptions_note(info):
    """One line naming what a model's file does not say and was guessed (`info.assumed`), or
    None.

    A foreign classifier's file names neither its classes nor its input range, and a PyTorch
    checkpoint or an export without its description names no classes: they are read as
    `class_0..` and [0, 1], and a wrong guess gives wrong labels without a word. `TestModels`
    and every command that reads a model (`adcorre test`, `adcorre convert`) print this line.

    Example:
    >>> info = model_info("fer.hdf5", "classifier", labels=unnamed_labels(7), input_size=(64, 64),
    ...                   channels=1, num_embeddings=0, range_assumed=True)
    >>> print(assumptions_note(info))
    note: fer.hdf5 does not say how to read it: its classes are called class_0..class_6 (name them with --labels, labels=); its input range is taken as 0,1 (set it with --input-range, input_range=).
    >>> assumptions_note(with_overrides(info, unnamed_labels(7), (-1.0, 1.0))) is None
    True
    """
    said = {"labels": f"its classes are called class_0..class_{info.num_classes - 1} (name them "
                      "with --labels, labels=)",
            "input_range": f"its input range is taken as {info.input_range[0]:g},"
                           f"{info.input_range[1]:g} (set it with --input-range, input_range=)"}
    if not info.assumed:
        return None
    return (f"note: {os.path.basename(info.path)} does not say how to read it: "
            f"{'; '.join(said[name] for name in info.assumed)}.")


def unnamed_labels(num_classes):
    """`class_0, class_1, ...`: the names of classes a file does not name."""
    return tuple(f"class_{i}" for i in range(num_classes))


def square_size(path, input_size, fixed=None):
    """The side a rebuilt network takes: the file's own (`fixed`), the caller's `input_size`, or
    the default 224; refused unless square (the backbones are built with square inputs)."""
    size = tuple(fixed or input_size or (InputDataSize.image_input_size,) * 2)
    if size[0] != size[1]:
        raise WeightFileError(f"{path!r}: its network is rebuilt with square inputs, got "
                              f"{size[0]}x{size[1]}.")
    return size


def describe_keras(model, path, loader, labels=None, input_size=None, **fields):
    """The `ModelInfo` of a Keras model read from a file, from the model's own shapes; refuses
    anything but a single-input image classifier.

    Args:
        model: the loaded Keras model (first output: class scores).
        path, loader: as for `model_info`.
        labels: the file's class names, or None (`class_0..`).
        input_size: for inputs whose size the model leaves open (default 224).
        **fields: the rest of `model_info`'s keywords (`arch`, `input_range`, `metadata`...);
            `num_embeddings` defaults to the outputs after the first.
    """
    if len(model.inputs) != 1:
        raise WeightFileError(
            f"{path!r} has {len(model.inputs)} inputs; expected a single-input image classifier.")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise WeightFileError(f"{path!r} takes inputs of shape {shape}; expected images (batch, "
                              "height, width, 1 or 3).")
    outputs = tuple(model.outputs[0].shape)
    if len(outputs) != 2 or outputs[-1] is None or outputs[-1] < 2:
        raise WeightFileError(f"{path!r}'s first output has shape {outputs}; expected class "
                              "scores (batch, classes).")
    size = (shape[1], shape[2])
    if None in size:
        size = tuple(input_size) if input_size else (InputDataSize.image_input_size,) * 2
    num_classes = outputs[-1]
    if labels is None:
        labels = unnamed_labels(num_classes)
    elif len(labels) != num_classes:
        raise WeightFileError(f"{path!r}: its metadata names {len(labels)} labels but the model "
                              f"has {num_classes} outputs; the file is inconsistent.")
    fields.setdefault("num_embeddings", len(model.outputs) - 1)
    return model_info(path, loader, labels=labels, input_size=size, channels=shape[-1],
                      outputs_probabilities=_ends_in_softmax(model), **fields)


def _ends_in_softmax(model):
    """Whether the first output is produced by a softmax (else the caller applies one)."""
    layer = model.outputs[0]._keras_history.operation
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", str(activation))
    return isinstance(layer, keras.layers.Softmax) or name == "softmax"


def load_export(probe, loader, labels=None, input_size=None):
    """An export on its runtime (`exported.load_exported`, the format named by `loader`:
    `"tflite"` or `"onnx"`), and its `ModelInfo` from the description beside it.

    Args:
        probe: the export's `FileProbe`.
        loader: the export loader's `name`, which is also the format's name.
        labels: class names overriding the description's (needed without one).
        input_size: `(height, width)` for a model that leaves them open, where its
            description does not say them.
    """
    model, description = exported.load_exported(probe.path, labels=labels, format=loader,
                                                 input_size=input_size)
    return model, describe_export(probe.path, loader, description)


def describe_export(path, loader, description):
    """The `ModelInfo` of an export, from its description (`exported.load_exported`)."""
    return model_info(
        path, loader, kind=description["runtime"], labels=description["labels"],
        input_range=description.get("input_range") or (0.0, 1.0),
        range_assumed=not description.get("input_range"),
        input_size=description["input_size"], channels=description["channels"],
        num_embeddings=description["num_embeddings"], arch=description.get("arch"),
        outputs_probabilities=description.get("outputs_probabilities", True),
        metadata={k: v for k, v in description.items() if k not in ("labels", "input_range")})


def with_overrides(info, labels=None, input_range=None):
    """`info` with the caller's labels and input range where given, the label count checked.

    Args:
        info: a `ModelInfo`.
        labels: a tuple of names (resolved: `weights_io.resolve_labels`), or None.
        input_range: `(lo, hi)` (checked: `weights_io.load_model`), or None.
    """
    if labels is not None and len(labels) != info.num_classes:
        raise WeightFileError(
            f"{info.path!r} has {info.num_classes} output classes but {len(labels)} labels were "
            f"given ({', '.join(labels)}). Expected exactly {info.num_classes} names.")
    given = {"labels": labels is not None, "input_range": input_range is not None}
    return dataclasses.replace(
        info,
        labels=tuple(labels) if labels is not None else info.labels,
        input_range=tuple(input_range) if input_range is not None else info.input_range,
        assumed=tuple(name for name in info.assumed if not given[name]))
