"""Ad-Corre for Keras 3 / TensorFlow: facial expression recognition with the adaptive
correlation loss (Xception, k L2-normalised embedding heads) and the Amend Representation Module.

The names people use come from here; importing `adcorre` loads no TensorFlow: each name is
imported when it is first used.

```python
from adcorre import TrainModel, TestModels
best_h5 = TrainModel(dataset_name="synth").train()          # the CPU demo on SynthFER
TestModels(h5_address=best_h5).recognize_fer("face.jpg")    # prints the label, returns the scores
```

Subpackages, one per layer (docs/architecture.md): `models`, `data`, `training`, `inference`,
`serve`, `reproduce`, `cli`; and `config`, `errors`, `runtime`, `reports`, `atomic_files`.
"""

import importlib

__version__ = "0.3.0"

# Public name -> the module that defines it (imported on first use: most load TensorFlow).
_PUBLIC = {
    "TrainModel": "adcorre.training.train_model",
    "TestModels": "adcorre.inference.test_models",
    "CNNModel": "adcorre.models.cnn_model",
    "AdCorreLoss": "adcorre.training.custom_loss",
    "AmendRepresentation": "adcorre.models.arm",
    "load_model": "adcorre.models.weights_io",
    "save_model": "adcorre.models.weights_io",
    "read_split": "adcorre.data.dataset_readers",
}
__all__ = list(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # the next use is a plain attribute
        return value
    raise AttributeError(f"module 'adcorre' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_PUBLIC))
