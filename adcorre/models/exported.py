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
import os
import re
import warnings

import numpy as np

from adcorre import runtime
from adcorre.errors import MissingDependencyError, WeightFileError, first_line

# The exported files this module runs, by suffix.
EXPORT_SUFFIXES = (".tflite", ".onnx")
# A TFLite file is a FlatBuffer whose file identifier, at bytes 4-8, is "TFL3".
_TFLITE_IDENTIFIER = b"TFL3"
_SIGNATURE = "serving_default"


def is_exported(path):
    """True for a `.tflite` or `.onnx` file (by suffix; the content is checked on loading)."""
    return os.path.splitext(os.fspath(path))[1].lower() in EXPORT_SUFFIXES


def sidecar_path(path):
    """Where an export's description lies: `<path>.json` (for a SavedModel folder too)."""
    return os.fspath(path).rstrip("/\\") + ".json"


def read_sidecar(path):
    """The `<path>.json` an export wrote beside its file, or None where there is none.

    Raises:
        WeightFileError: the file is there but is not an export's description.
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
    if not isinstance(data.get("trained_on"), (str, type(None))):
        raise WeightFileError(f"{sidecar!r}: trained_on is {data['trained_on']!r}; expected the "
                              "name of a dataset (or null), as `export` writes it.")
    return data


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


class ExportedModel:
    """An exported model with the part of the Keras model's face `TestModels` uses.

    Args:
        path: the `.tflite` or `.onnx` file.
        num_threads: CPU threads the runtime may use (default: all cores).

    Attributes:
        runtime: `"litert"`, `"tflite-tensorflow"` (TensorFlow's interpreter, where LiteRT is
            missing) or `"onnxruntime"`: what `ModelInfo.kind` says.
        input_shape: `(height, width, channels)` the model takes.
        outputs: the outputs' names, in the Keras model's order (probabilities, then one per
            embedding head); `num_outputs` their count.
        num_classes: the width of the probabilities output.
        name: the file's name.
    """

    def __init__(self, path, num_threads=None):
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path)
        threads = num_threads or os.cpu_count() or 1
        if self.path.lower().endswith(".onnx"):
            self._open_onnx(threads)
        else:
            self._open_tflite(threads)
        # One run on a blank picture: the runtimes set up (and LiteRT's CPU delegate announces
        # itself) on first use, here rather than on the user's first picture; it also gives the
        # width of the probabilities, which the file's shapes may leave open.
        with runtime.start_up_noise_removed():
            blank = self.predict_on_batch(np.zeros((1, *self.input_shape), np.float32))
        self.num_classes = int(blank[0].shape[-1])

    # ------------------------------------------------------------------------------ LiteRT

    def _open_tflite(self, threads):
        with open(self.path, "rb") as handle:
            if handle.read(8)[4:8] != _TFLITE_IDENTIFIER:
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
        (self._input_name,) = signatures[_SIGNATURE]["inputs"]
        self.outputs = tuple(_in_output_order(signatures[_SIGNATURE]["outputs"]))
        details = self._runner.get_input_details()[self._input_name]
        self.input_shape = tuple(int(s) for s in details["shape_signature"][1:])
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
        (model_input,) = self._session.get_inputs()
        self._input_name = model_input.name
        self.input_shape = tuple(int(s) for s in model_input.shape[1:])
        self.outputs = tuple(output.name for output in self._session.get_outputs())
        self.runtime = "onnxruntime"
        self._run = lambda images: self._session.run(None, {self._input_name: images})

    # ------------------------------------------------------------------------------ shared

    @property
    def num_outputs(self):
        return len(self.outputs)

    def predict_on_batch(self, images):
        """Every output for a batch (float32 (n, h, w, c) in the model's input range), as the
        Keras model's `predict_on_batch` gives them: probabilities first, then embeddings."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        return self._run(images)


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


def load_exported(path, labels=None):
    """An exported model and what its description says.

    Args:
        path: a `.tflite` or `.onnx` file that `export` wrote (its `<path>.json` beside it).
        labels: class names overriding the description's (needed without one).

    Returns:
        `(ExportedModel, description)`: the description as `export` wrote it (labels, input
        range, outputs...), with `input_size`, `channels`, `num_embeddings` from the model.

    Raises:
        WeightFileError: not a file of that kind, or no labels to name its outputs by.
        MissingDependencyError: an `.onnx` file and no onnxruntime.
    """
    model = ExportedModel(path)
    sidecar = read_sidecar(path)
    description = dict(sidecar or {})
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


def _in_output_order(names):
    """TFLite signatures list `output_0, output_1, output_10, output_2, ...` by name: back into
    the Keras model's order by their number."""
    def number(name):
        found = re.search(r"(\d+)$", name)
        return int(found.group(1)) if found else -1

    return sorted(names, key=number)
