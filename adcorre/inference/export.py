"""Exporting a loaded model for serving: TF SavedModel, TFLite or ONNX, with a JSON beside it.

A SavedModel has two signatures: `serve` (Keras' own: float pixels already sized and scaled,
every output) and `serving_bytes` (encoded JPEG / PNG pictures in, `probabilities` and `labels`
out, the decoding, resizing and scaling inside the graph: `serving_signature`), which TF
Serving, Vertex AI and KServe host as they are.

`export_model` writes the model to a new path (or over an earlier export of itself) and a
`<path>.json` holding what a reader needs: labels, input range and size, channels, outputs,
and the dataset the model was trained on.
Nothing an export did not write is ever replaced (`check_export_target`).

Example (a model loaded by `weights_io.load_model`):

```python
model, info = weights_io.load_model("best.h5")
export_model(model, info, "best.tflite", format="tflite")   # and best.tflite.json
```
"""

import json
import os
import shutil
import tempfile

from adcorre import runtime  # Keras loads without TensorFlow's start-up noise
import keras

from adcorre import atomic_files
from adcorre.config import EXPORT_FORMATS
from adcorre.errors import MissingDependencyError, OutputExistsError, SettingError
from adcorre.models.exported import sidecar_path, trained_on


# What `quantize=` takes for a TFLite export.
QUANTIZATIONS = ("float16", "int8")


def export_model(model, info, path, format="saved_model", overwrite=False, labels=None,
                 quantize=None, representative=None):
    """Writes `model` to `path` in `format`, and `<path>.json` beside it.

    Args:
        model: the Keras model.
        info: its `weights_io.ModelInfo` (labels, input range and size, channels, source file).
        path: a folder (saved_model) or a file (`.tflite`, `.onnx`).
        format: `"saved_model"`, `"tflite"` or `"onnx"` (needs the optional tf2onnx package).
        overwrite: also replace a previous export of another model at `path`.
        labels: the class names to record (default `info.labels`).
        quantize: for `"tflite"`: None (float32), `"float16"` or `"int8"` (see `QUANTIZATIONS`).
        representative: for `"int8"`: model-ready float32 batches that calibrate the ranges.

    Returns:
        `path`.

    Raises:
        OutputExistsError: `path` (or `<path>.json`) holds something an export did not write.
    """
    labels = info.labels if labels is None else labels
    if format not in EXPORT_FORMATS:
        raise SettingError(f"Export format must be one of {EXPORT_FORMATS}, got {format!r}.")
    if quantize is not None and (format != "tflite" or quantize not in QUANTIZATIONS):
        raise SettingError(f"quantize takes {QUANTIZATIONS} with format 'tflite', got "
                           f"{quantize!r} with {format!r}.")
    if quantize == "int8" and not representative:
        raise SettingError("An int8 export needs pictures to calibrate on: representative= "
                           "(--representative DATASET:SPLIT).")
    if keras.backend.backend() != "tensorflow":
        raise SettingError("Export needs the TensorFlow backend (KERAS_BACKEND=tensorflow).")
    path = os.fspath(path)
    _check_export_target(path, os.path.abspath(info.path), overwrite)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as work:
        if format == "onnx":
            written = _export_onnx(model, os.path.join(work, "model.onnx"))
        elif format == "saved_model":
            written = _export_saved_model(model, info, labels, os.path.join(work, "saved_model"))
        else:  # TFLite converts the plain SavedModel: one signature, float input
            saved_model = os.path.join(work, "saved_model")
            model.export(saved_model, format="tf_saved_model", verbose=False)
            written = _to_tflite(saved_model, os.path.join(work, "model.tflite"), quantize,
                                 representative)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)  # an empty folder or a previous export (checked above)
        elif os.path.lexists(path):
            os.remove(path)
        os.replace(written, path)
    sidecar = {
        "exported_by": _EXPORT_MARK,
        "format": format,
        "labels": list(labels),
        "input_range": list(info.input_range),
        "input_size": list(info.input_size),
        "channels": info.channels,
        "outputs": ["probabilities"] + [f"embedding_{i + 1}" for i in
                                        range(len(model.outputs) - 1)],
        "outputs_probabilities": info.outputs_probabilities,
        "arch": info.arch,
        "quantize": quantize,
        "source": os.path.abspath(info.path),
        "trained_on": trained_on(info.metadata),  # the SynthFER note survives the export
    }
    atomic_files.write_json(sidecar_path(path), sidecar)
    return path


# What an export's `<path>.json` says of itself: how a later export knows it may replace it.
_EXPORT_MARK = "adcorre TestModels.export"
_SIDECAR_KEYS = {"labels", "input_range", "source", "outputs"}
# What a SavedModel folder holds; anything else in it is someone else's.
_SAVED_MODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "fingerprint.pb",
                        "keras_metadata.pb"}


def _export_sidecar(path):
    """The `<path>.json` an earlier export wrote, or None if there is none or it is not one."""
    try:
        with open(sidecar_path(path), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("exported_by") == _EXPORT_MARK or _SIDECAR_KEYS <= set(data):
        return data
    return None


def _check_export_target(path, source, overwrite):
    """Refuses an export `path` that holds anything an export did not write (see `export`)."""
    sidecar = sidecar_path(path)
    target = os.path.abspath(path)
    how = ("Choose a new --out (path), or move it away yourself; an export only ever "
           "replaces an earlier export")
    if target == os.path.abspath(os.curdir) or os.path.abspath(os.curdir).startswith(
            target.rstrip(os.sep) + os.sep):
        raise OutputExistsError(f"Will not export to {path!r}: it is the current folder or holds "
                              f"it. {how}.")
    previous = _export_sidecar(path)
    if os.path.lexists(sidecar) and previous is None:
        raise OutputExistsError(f"Will not export to {path!r}: {sidecar!r} exists and is "
                              f"not an export's description, and the export writes it. {how}.")
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        entries = set(os.listdir(path))
        if not entries:
            return
        if previous is None or not entries <= _SAVED_MODEL_ENTRIES:
            raise OutputExistsError(
                f"Will not export to {path!r}: it is a folder that is not empty and not an "
                f"earlier export (it holds {', '.join(sorted(entries)[:5])}"
                f"{'...' if len(entries) > 5 else ''}). {how}.")
    elif previous is None:
        raise OutputExistsError(f"Will not export to {path!r}: the file exists and is not an "
                              f"earlier export (no {sidecar!r} beside it). {how}.")
    if previous.get("source") != source and not overwrite:
        raise OutputExistsError(
            f"{path!r} is an earlier export of another model ({previous.get('source')}); "
            "pass --overwrite (overwrite=True) to replace it, or choose a new --out (path).")


def _export_saved_model(model, info, labels, path):
    """A SavedModel with Keras' `serve` endpoint (float pixels in the model's range, every
    output; also `serving_default`) and `serving_bytes` (encoded pictures in, probabilities and
    labels out: `serving_signature`)."""
    from adcorre.inference import serving_signature

    (source,) = model.inputs
    spec = keras.InputSpec(shape=(None,) + tuple(source.shape[1:]), dtype=source.dtype,
                           name=source.name)
    archive = keras.export.ExportArchive()
    archive.track_and_add_endpoint("serve", model, [spec])
    archive.add_endpoint(serving_signature.SIGNATURE,
                         serving_signature.serving_bytes_function(model, info, labels))
    archive.write_out(path, verbose=False)
    return path


def _to_tflite(saved_model, path, quantize=None, representative=None):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        # Weights and activations in 8 bits, calibrated on the pictures; input and output stay
        # float32, so the export is fed and read as the float one is.
        converter.representative_dataset = lambda: ([batch[i:i + 1]] for batch in representative
                                                    for i in range(len(batch)))
    with runtime.start_up_noise_removed():  # the converter's one-line calibration summary
        converted = converter.convert()
    with open(path, "wb") as handle:
        handle.write(converted)
    return path


def _export_onnx(model, path):
    try:
        import tf2onnx
    except ImportError:
        raise MissingDependencyError(
            "ONNX export needs the optional package tf2onnx (pip install tf2onnx); "
            "saved_model and tflite need nothing more."
        ) from None
    import tensorflow as tf

    spec = (tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), tf.float32, name="image"),)

    @tf.function(input_signature=spec, autograph=False)
    def serve(image):
        return model(image, training=False)

    tf2onnx.convert.from_function(serve, input_signature=spec, output_path=path)
    return path
