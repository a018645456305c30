"""Loader of `.onnx` exports (`TestModels.export(path, "onnx")`), run on onnxruntime.

Recognised by the first fields of an ONNX ModelProto (`exported.is_onnx`), whatever the file's
name. onnxruntime is an optional package (`MissingDependencyError` names it); labels, input range
and arch come from the `<path>.json` the export wrote beside it (or `labels=`).

Example (an export `TestModels.export` wrote):

```python
with FileProbe("model.onnx") as probe:
    model, info = load(probe)
info.kind, info.loader   # ('onnxruntime', 'onnx')
```
"""

from adcorre.models import exported
from adcorre.models.loaders import Loader, register
from adcorre.models.model_info import load_export


def sniff(probe):
    """An ONNX ModelProto's first fields in the file's first bytes."""
    return exported.is_onnx(probe.head)


def load(probe, *, labels=None, input_size=None, arm_affinity=None):
    """The export on onnxruntime (an optional package), described by its `.json`; `labels`
    name its classes where that description does not and `input_size` its size where the model
    leaves it open and the description does not say it (arm_affinity does not apply to an
    export)."""
    return load_export(probe, LOADER.name, labels, input_size)


LOADER = register(Loader(
    name="onnx", order=60, suffixes=(".onnx",), description="an .onnx export", sniff=sniff,
    load=load,
    misnamed="is not an ONNX model (no ModelProto header);"
             " expected a .onnx file `export` wrote."))
