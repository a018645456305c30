"""Running exported models without Keras: `.tflite` on LiteRT, `.onnx` on onnxruntime.

`TestModels.export(path, "tflite")` (and `"onnx"`) writes the model and a `<path>.json` beside it
(labels, input range and size, channels, outputs, and `trained_on`: the dataset the model was
trained on, so an export of the SynthFER demo still says it knows only drawn faces). `load_exported(path)` reads both back into an
`ExportedModel`, which answers `predict_on_batch` as the Keras model does (the probabilities
first, then the embeddings), so `TestModels` recognises pictures, folders and videos, evaluates
and serves with it unchanged. `.tflite` files run on LiteRT (`ai-edge-litert`), or on
TensorFlow's own interpreter where LiteRT is not installed; `.onnx` files on onnxruntime, an
optional package.

Example (an export of a `TestModels` model):

```python
tester.export("model.tflite", "tflite")
model, description = load_exported("model.tflite")
model.runtime, description["labels"][:2]   # ('litert', ['Neutral', 'Happy'])
probabilities = model.predict_on_batch(images)[0]
```
"""

import json
import math
import os
import re
import warnings

import numpy as np

from adcorre import runtime
from adcorre.errors import MissingDependencyError, WeightFileError, first_line

# A TFLite file is a FlatBuffer whose file identifier, at bytes 4-8, is "TFL3".
_TFLITE_IDENTIFIER = b"TFL3"
# An ONNX file is a serialised ModelProto: field 1 (ir_version, a varint) comes first, then
# the fields after it in number order: producer_name (2) ... graph (7), opset_import (8).
_ONNX_FIRST_TAG = 0x08
_ONNX_NEXT_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42}
_SIGNATURE = "serving_default"


def is_tflite(head):
    """Whether a file's first bytes are a TFLite FlatBuffer's (its `TFL3` identifier).

    Example:
    >>> is_tflite(b"1234TFL3"), is_tflite(b"PK..")
    (True, False)
    """
    return head[4:8] == _TFLITE_IDENTIFIER


def is_onnx(head):
    """Whether a file's first bytes are an ONNX ModelProto's: its `ir_version` field (a small
    varint) followed by one of the fields that come after it.

    Example:
    >>> is_onnx(bytes([0x08, 14, 0x12]) + b"tf2onnx"), is_onnx(b"HDF5....")
    (True, False)
    """
    return (len(head) >= 3 and head[0] == _ONNX_FIRST_TAG and 1 <= head[1] < 0x80
            and head[2] in _ONNX_NEXT_TAGS)


def sidecar_path(path):
    """Where an export's description lies: `<path>.json` (for a SavedModel folder too)."""
    return os.fspath(path).rstrip("/\\") + ".json"


def read_sidecar(path, format=None):
    """The `<path>.json` an export wrote beside its file, every field checked, or None where
    there is none.

    Args:
        path: the export.
        format: the export's format (`"tflite"`, `"onnx"`), which the description's `format`
            must name; None: not checked.

    Raises:
        WeightFileError: the file is there but is not an export's description, or one of its
            fields is not what `export` writes (naming the file and the field).
    """
    sidecar = sidecar_path(path)
    if not os.path.isfile(sidecar):
        return None
    try:
        with open(sidecar, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise WeightFileError(f"{sidecar!r} cannot be read as an export's description "
                              f"({error}); expected the JSON `export` wrote.") from None
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
        raise WeightFileError(f"{sidecar!r} is not an export's description (no labels list); "
                              "expected the JSON `export` wrote beside the model.")
    for field, (fits, expected) in _FIELDS.items():
        if field in data and not fits(data[field]):
            raise _bad_field(sidecar, field, data[field], expected)
    if format is not None and data.get("format", format) != format:
        raise _bad_field(sidecar, "format", data["format"], f"{format!r}, the file's format")
    return data


def _number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _names(value):
    return (isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
            and len(set(value)) == len(value))


# Each field an export's description may hold: a test of its value, and what it must be.
_FIELDS = {
    "labels": (_names, "a list of distinct, non-empty class names, one per output class"),
    "input_range": (lambda v: isinstance(v, list) and len(v) == 2 and all(map(_number, v))
                    and v[0] < v[1], "two numbers [low, high] with low < high"),
    "input_size": (lambda v: isinstance(v, list) and len(v) == 2 and all(map(_positive_int, v)),
                   "two positive integers [height, width]"),
    "channels": (lambda v: v in (1, 3) and not isinstance(v, bool), "1 (grey) or 3 (RGB)"),
    "outputs": (_names, "a list of distinct output names, probabilities first"),
    "outputs_probabilities": (lambda v: isinstance(v, bool), "true or false"),
    "format": (lambda v: v in ("tflite", "onnx", "saved_model"),
               "'tflite', 'onnx' or 'saved_model'"),
    "arch": (lambda v: v is None or isinstance(v, str), "an arch name or null"),
    "quantize": (lambda v: v is None or isinstance(v, str), "null, 'float16' or 'int8'"),
    "exported_by": (lambda v: isinstance(v, str), "a string"),
    "source": (lambda v: isinstance(v, str), "the path of the model it came from"),
    "trained_on": (lambda v: v is None or isinstance(v, str),
                   "the name of a dataset (or null), as `export` writes it"),
}


def _bad_field(sidecar, field, value, expected):
    shown = json.dumps(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return WeightFileError(f"{sidecar!r}: its field {field!r} is {shown}; expected {expected}.")


def trained_on(metadata):
    """The dataset a model was trained on, as far as its file says, or None.

    A training run's `.h5` names it in its metadata (`extra["dataset"]`), an export's
    `<path>.json` in `trained_on` (copied from the file it was exported from), a converted file
    in the metadata of its source (`extra["source_metadata"]`).

    Args:
        metadata: a `weights_io.ModelInfo`'s `metadata`.

    Returns:
        A dataset name (`"synth"` for SynthFER), or None.

    Example:
    >>> trained_on({"extra": {"dataset": "synth", "epoch": 8}}), trained_on({"trained_on": "rafdb"})
    ('synth', 'rafdb')
    """
    metadata = metadata if isinstance(metadata, dict) else {}
    extra = metadata.get("extra") if isinstance(metadata.get("extra"), dict) else {}
    found = metadata.get("trained_on") or extra.get("dataset")
    if found is None and "source_metadata" in extra:
        return trained_on(extra["source_metadata"])
    return found


# What the tester feeds an export: one batch of pictures as float32, in the input range.
FEEDABLE = "one float32 input of pictures, [N, H, W, C] or [N, C, H, W] with C 1 or 3"


def input_layout(path, inputs):
    """How the tester feeds an export's inputs, or why it cannot.

    Args:
        path: the export, for the messages.
        inputs: `[(name, shape, dtype)]` of the model's inputs: `shape` with None where a
            dimension is open, `dtype` a NumPy type name ("float32", "uint8"...).

    Returns:
        `(name, (height, width, channels), channels_first)`: height and width may be None.

    Raises:
        WeightFileError: several inputs, a type other than float32, or no picture layout
            (naming what the model wants and what the tester gives).

    Example:
    >>> input_layout("m.onnx", [("x", (None, 3, 64, 64), "float32")])
    ('x', (64, 64, 3), True)
    """
    wants = ", ".join(f"{name} {dtype}{list(shape)}".replace("None", "?")
                      for name, shape, dtype in inputs)
    problem = None
    if len(inputs) != 1:
        problem = f"takes {len(inputs)} inputs ({wants})"
    else:
        name, shape, dtype = inputs[0]
        if dtype != "float32":
            problem = f"takes {wants}: {dtype} values, not pictures scaled to a float range"
        elif len(shape) == 4 and shape[3] in (1, 3):
            return name, (shape[1], shape[2], shape[3]), False
        elif len(shape) == 4 and shape[1] in (1, 3):
            return name, (shape[2], shape[3], shape[1]), True
        else:
            problem = f"takes {wants}, which is no batch of pictures with 1 or 3 channels"
    raise WeightFileError(f"{os.fspath(path)!r} {problem}; the tester can give {FEEDABLE}.")


def _open_dim(value):
    """A dimension as an int, or None where the file leaves it open (-1, a name, None)."""
    return int(value) if isinstance(value, (int, np.integer)) and value > 0 else None


# onnxruntime's type names -> NumPy's.
_ONNX_TYPES = {"float": "float32", "double": "float64", "float16": "float16"}


class ExportedModel:
    """An exported model with the part of the Keras model's face `TestModels` uses.

    It feeds one float32 input of pictures (`input_layout`), channels last or, where the
    model takes them so, first (the pictures are transposed); any other input is refused.

    Args:
        path: the `.tflite` or `.onnx` file.
        num_threads: CPU threads the runtime may use (default: all cores).
        format: `"tflite"` or `"onnx"` (default: by the file's suffix).
        input_size: `(height, width)` for a model that leaves them open (else unused).

    Attributes:
        runtime: `"litert"`, `"tflite-tensorflow"` (TensorFlow's interpreter, where LiteRT is
            missing) or `"onnxruntime"`: what `ModelInfo.kind` says.
        input_shape: `(height, width, channels)` the model is fed (channels last, as every
            picture of this project is); `fixed_size` the `(height, width)` the file fixes
            (None where open).
        outputs: the outputs' names, in the Keras model's order (probabilities, then one per
            embedding head); `num_outputs` their count.
        num_classes: the width of the probabilities output.
        name: the file's name.
    """

    def __init__(self, path, num_threads=None, format=None, input_size=None):
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path)
        threads = num_threads or os.cpu_count() or 1
        format = format or ("onnx" if self.path.lower().endswith(".onnx") else "tflite")
        if format == "onnx":
            self._open_onnx(threads)
        else:
            self._open_tflite(threads)
        self._input_name, (height, width, channels), self._channels_first = input_layout(
            self.path, self._inputs)
        self.fixed_size = (height, width)
        if None in self.fixed_size:
            if input_size is None:
                raise WeightFileError(
                    f"{self.path!r} leaves its input size open ({height or '?'}x{width or '?'}) "
                    f"and nothing names it; expected input_size in {sidecar_path(self.path)!r} "
                    "or input_size= (--input-size).")
            height, width = (fixed or int(given) for fixed, given in zip(self.fixed_size,
                                                                        input_size))
        self.input_shape = (height, width, channels)
        # One run on a blank picture: the runtimes set up (and LiteRT's CPU delegate announces
        # itself) on first use, here rather than on the user's first picture; it also gives the
        # width of the probabilities, which the file's shapes may leave open.
        with runtime.start_up_noise_removed():
            blank = self.predict_on_batch(np.zeros((1, *self.input_shape), np.float32))
        self.num_classes = int(blank[0].shape[-1])

    # ------------------------------------------------------------------------------ LiteRT

    def _open_tflite(self, threads):
        with open(self.path, "rb") as handle:
            if not is_tflite(handle.read(8)):
                raise WeightFileError(f"{self.path!r} is not a TFLite model (no TFL3 identifier); "
                                      "expected a .tflite file `export` wrote.")
        try:
            self._interpreter, name = tflite_interpreter(self.path, threads)
        except (ValueError, RuntimeError) as error:
            raise WeightFileError(f"{self.path!r} cannot be run by LiteRT "
                                  f"({first_line(error)}); expected a .tflite file `export` "
                                  "wrote.") from None
        self.runtime = "litert" if name == "litert" else "tflite-tensorflow"
        signatures = self._interpreter.get_signature_list()
        if _SIGNATURE not in signatures:
            raise WeightFileError(f"{self.path!r} has no {_SIGNATURE!r} signature; expected a "
                                  ".tflite file `export` wrote.")
        self._runner = self._interpreter.get_signature_runner(_SIGNATURE)
        self.outputs = tuple(_in_output_order(signatures[_SIGNATURE]["outputs"]))
        self._inputs = [(name, tuple(_open_dim(d) for d in details["shape_signature"]),
                         np.dtype(details["dtype"]).name)
                        for name, details in self._runner.get_input_details().items()]
        self._run = self._run_tflite

    def _run_tflite(self, images):
        outputs = self._runner(**{self._input_name: images})
        return [np.asarray(outputs[name]) for name in self.outputs]

    # ------------------------------------------------------------------------- onnxruntime

    def _open_onnx(self, threads):
        try:
            import onnxruntime
        except ImportError:
            raise MissingDependencyError(
                f"Running {self.path!r} needs the optional package onnxruntime (pip install "
                "onnxruntime); a .tflite export runs on LiteRT.") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # its warnings of optimisations it skipped are noise
        try:
            self._session = onnxruntime.InferenceSession(self.path, options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail / InvalidProtobuf kinds
            raise WeightFileError(f"{self.path!r} cannot be run by onnxruntime "
                                  f"({first_line(error)}); expected a .onnx file `export` "
                                  "wrote.") from None
        self._inputs = [(given.name, tuple(_open_dim(d) for d in given.shape),
                         _ONNX_TYPES.get(given.type[7:-1], given.type[7:-1]))
                        for given in self._session.get_inputs()]  # type: "tensor(float)"
        self.outputs = tuple(output.name for output in self._session.get_outputs())
        self.runtime = "onnxruntime"
        self._run = lambda images: self._session.run(None, {self._input_name: images})

    # ------------------------------------------------------------------------------ shared

    @property
    def num_outputs(self):
        return len(self.outputs)

    def predict_on_batch(self, images):
        """Every output for a batch (float32 (n, h, w, c) in the model's input range, whatever
        layout the model takes), as the Keras model's `predict_on_batch` gives them:
        probabilities first, then embeddings."""
        images = np.asarray(images, dtype=np.float32)
        if self._channels_first:
            images = images.transpose(0, 3, 1, 2)
        return self._run(np.ascontiguousarray(images))


def tflite_interpreter(path, threads, runtime_name=None):
    """A TFLite interpreter of `path`, allocated, and the name of the runtime it is.

    Args:
        path: a `.tflite` file.
        threads: CPU threads it may use.
        runtime_name: `"litert"` (the `ai-edge-litert` package, installed with this one) or
            `"tensorflow"` (TensorFlow's own `tf.lite.Interpreter`, deprecated); None takes
            LiteRT where it imports.

    Returns:
        `(interpreter, runtime_name)`.
    """
    if runtime_name is None:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
            runtime_name = "litert"
        except ImportError:
            runtime_name = "tensorflow"
    if runtime_name == "litert":
        from ai_edge_litert.interpreter import Interpreter
    else:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    with warnings.catch_warnings(), runtime.start_up_noise_removed():
        # TensorFlow's interpreter announces its move to LiteRT on every construction, and
        # LiteRT the XNNPACK delegate it uses: neither says anything to the user.
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter, runtime_name


def load_exported(path, labels=None, format=None, input_size=None):
    """An exported model and what its description says.

    Args:
        path: a `.tflite` or `.onnx` file that `export` wrote (its `<path>.json` beside it).
        labels: class names overriding the description's (needed without one).
        format: `"tflite"` or `"onnx"` (default: by the file's suffix).
        input_size: `(height, width)` for a model that leaves them open and whose description
            does not say them.

    Returns:
        `(ExportedModel, description)`: the description as `export` wrote it (labels, input
        range, outputs...), with `input_size`, `channels`, `num_embeddings` from the model.

    Raises:
        WeightFileError: not a file of that kind, a description whose fields lie (about the
            model too: its outputs, channels, input size), inputs the tester cannot feed, or
            no labels to name its outputs by.
        MissingDependencyError: an `.onnx` file and no onnxruntime.
    """
    sidecar = read_sidecar(path, format)
    description = dict(sidecar or {})
    model = ExportedModel(path, format=format,
                          input_size=description.get("input_size") or input_size)
    if sidecar is not None:
        _check_against_model(sidecar_path(path), description, model)
    if labels:
        description["labels"] = list(labels)
    if not description.get("labels"):
        missing = (f"{sidecar_path(path)!r} names no classes" if sidecar is not None else
                   f"there is no {sidecar_path(path)!r} beside it to name its classes")
        raise WeightFileError(f"{os.fspath(path)!r}: {missing}; expected the description "
                              "`export` wrote, or labels= (--labels).")
    named = description["labels"]
    if len(named) != model.num_classes:
        given = "were given" if labels else f"are in {sidecar_path(path)!r}"
        raise WeightFileError(
            f"{os.fspath(path)!r} has {model.num_classes} output classes but {len(named)} labels "
            f"{given} ({', '.join(map(str, named))}). Expected exactly {model.num_classes} names.")
    height, width, channels = model.input_shape
    description.update(input_size=[height, width], channels=channels,
                       num_embeddings=model.num_outputs - 1, runtime=model.runtime)
    return model, description


def _check_against_model(sidecar, description, model):
    """Refuses a description that says another model than the file holds (naming the field)."""
    checks = {"outputs": (len(description.get("outputs", model.outputs)) == model.num_outputs,
                          f"{model.num_outputs} names, one per output of the model"),
              "channels": (description.get("channels", model.input_shape[2])
                           == model.input_shape[2],
                           f"{model.input_shape[2]}, the channels the model takes")}
    size = description.get("input_size")
    fixed = model.fixed_size
    checks["input_size"] = (size is None or all(f is None or f == s for f, s in zip(fixed, size)),
                            f"{[f or '?' for f in fixed]}, the size the model takes")
    for field, (fits, expected) in checks.items():
        if not fits:
            raise _bad_field(sidecar, field, description[field], expected)


def _in_output_order(names):
    """TFLite signatures list `output_0, output_1, output_10, output_2, ...` by name: back into
    the Keras model's order by their number."""
    def number(name):
        found = re.search(r"(\d+)$", name)
        return int(found.group(1)) if found else -1

    return sorted(names, key=number)
