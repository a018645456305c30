"""Loader of `.tflite` exports (`TestModels.export(path, "tflite")`), run on LiteRT.

Recognised by the FlatBuffer identifier `TFL3` at bytes 4-8, whatever the file's name. The
model runs on LiteRT (`ai-edge-litert`), or on TensorFlow's own interpreter where LiteRT is not
installed (`exported.ExportedModel`: `predict_on_batch` only); labels, input range and arch come
from the `<path>.json` the export wrote beside it (or `labels=`).

Example (an export `TestModels.export` wrote):

```python
with FileProbe("model.tflite") as probe:
    model, info = load(probe)
info.kind, info.loader   # ('litert', 'tflite')
```
"""

from adcorre.models import exported
from adcorre.models.loaders import Loader, register
from adcorre.models.model_info import load_export


def sniff(probe):
    """The TFLite FlatBuffer identifier in the file's first bytes."""
    return exported.is_tflite(probe.head)


def load(probe, *, labels=None, input_size=None, arm_affinity=None):
    """The export on LiteRT (TensorFlow's interpreter where LiteRT is missing), described by
    its `.json`; `labels` name its classes where that description does not and `input_size` its size where
    the model leaves it open and the description does not say it (arm_affinity does not
    apply to an export)."""
    return load_export(probe, LOADER.name, labels, input_size)


LOADER = register(Loader(
    name="tflite", order=50, suffixes=(".tflite",), description="a .tflite export", sniff=sniff,
    load=load,
    misnamed="is not a TFLite model (no TFL3 identifier);"
             " expected a .tflite file `export` wrote."))
