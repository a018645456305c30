"""Data: dataset readers, pictures, the input pipeline and SynthFER (the root's `data_helper`).

The work is done by four modules (and the dataset records), one job each; this package re-exports what users call, each
name loaded on first use (so `import adcorre.data` loads neither pandas nor TensorFlow):

- `dataset_readers`: `read_split(dataset_name, data_dir, split)` for every dataset (no
  TensorFlow needed), with its errors `DatasetNotFoundError` and `DatasetFormatError`; each
  dataset is one record (`datasets.DATASETS`), its reader and SynthFER writer in its own module
  of `datasets/`;
- `pictures`: `load_image`, `validate_images`, `ImageDecodeError`, `BadImageWarning`;
- `input_pipeline`: `make_dataset`, `epoch_order`, `distribute_dataset` and `Augmentation`
  (TensorFlow's `tf.data`);
- `synth_faces`: SynthFER, the drawn faces this project generates in every real layout.

Example:

```python
import data_helper          # at the checkout's root: the same module as adcorre.data
train = data_helper.read_split("rafdb", "data/rafdb", "train")
ds = data_helper.make_dataset(train, input_size=224, training=True, batch_size=32, seed=1)
```
"""

import importlib

# Public name -> the module of this package that defines it.
_EXPORTS = {
    "IMAGENET_MEAN_RGB": "adcorre.config",
    "IMAGE_EXTENSIONS": "adcorre.config",
    "SPLITS": "adcorre.data.dataset_readers",
    "DatasetFormatError": "adcorre.errors",
    "DatasetNotFoundError": "adcorre.errors",
    "ferplus_label": "adcorre.data.dataset_readers",
    "read_split": "adcorre.data.dataset_readers",
    "BadImageWarning": "adcorre.data.pictures",
    "ImageDecodeError": "adcorre.errors",
    "load_image": "adcorre.data.pictures",
    "validate_images": "adcorre.data.pictures",
    "make_dataset": "adcorre.data.input_pipeline",
    "epoch_order": "adcorre.data.input_pipeline",
    "distribute_dataset": "adcorre.data.input_pipeline",
    "Augmentation": "adcorre.data.input_pipeline",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
