"""The official module name for data: dataset readers, pictures and the input pipeline.

The work is done by three modules, one job each, and this one re-exports what users call:

- `dataset_readers`: `read_split(dataset_name, data_dir, split)` for every on-disk format
  (no TensorFlow needed), with its errors `DatasetNotFoundError` and `DatasetFormatError`;
- `pictures`: `load_image`, `validate_images`, `ImageDecodeError`, `BadImageWarning`;
- `input_pipeline`: `make_dataset`, `epoch_order`, `distribute_dataset` and `Augmentation`,
  loaded on first use, so `import data_helper` does not import TensorFlow.

Example:

```python
import data_helper
train = data_helper.read_split("rafdb", "data/rafdb", "train")
ds = data_helper.make_dataset(train, input_size=224, training=True, batch_size=32, seed=1)
```
"""

import importlib

from config import IMAGENET_MEAN_RGB  # noqa: F401
from dataset_readers import (  # noqa: F401
    IMAGE_EXTENSIONS,
    SPLITS,
    DatasetFormatError,
    DatasetNotFoundError,
    ferplus_label,
    read_split,
)
from pictures import BadImageWarning, ImageDecodeError, load_image, validate_images  # noqa: F401

# The tf.data names: importing input_pipeline imports TensorFlow, so it waits for first use.
_PIPELINE_NAMES = ("make_dataset", "epoch_order", "distribute_dataset", "Augmentation")


def __getattr__(name):
    if name in _PIPELINE_NAMES:
        return getattr(importlib.import_module("input_pipeline"), name)
    raise AttributeError(f"module 'data_helper' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_PIPELINE_NAMES))
