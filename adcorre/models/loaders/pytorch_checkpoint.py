"""Loader of PyTorch checkpoints (`.pth`, recognised by content): ARM's own networks and
torchvision's ResNet-18, rebuilt in Keras.

`ResNet18_ARM___RAF` -> arch `resnet18_arm`, `ResNet18` -> `resnet18` (as ARM's
train_raf-db.py saves them, or as bare state dicts), and torchvision-layout ResNet-18 state
dicts -> `resnet18`. `torch_checkpoints` reads them with `weights_only=True` (torch is needed
then; nothing in the file runs) and copies every tensor, key and shape checked, into the network
`cnn_model` builds (RGB in [0, 1] at 224 px, ImageNet mean / std inside). ARM's networks answer
in RAF-DB's order (`LABEL_PRESETS["rafdb"]`), and their ARM layer uses each picture's own
affinity map (`arm_affinity="sample"`), so a prediction never depends on the rest of the batch.

Example (needs torch and ARM's checkpoint):

```python
with FileProbe("epoch59_acc0.9205.pth") as probe:
    model, info = load(probe)
info.arch, info.labels[0], info.metadata["affinity"]   # ('resnet18_arm', 'Surprise', 'sample')
```
"""

from adcorre.config import LABEL_PRESETS
from adcorre.errors import WeightFileError
from adcorre.models import cnn_model, torch_checkpoints
from adcorre.models.loaders import Loader, register
from adcorre.models.model_info import model_info, square_size, unnamed_labels


def sniff(probe):
    """torch.save's legacy pickle (its magic number) or zip archive (a `data.pkl` member)."""
    return torch_checkpoints.looks_like_torch(probe.head, probe.members)


def load(probe, *, labels=None, input_size=None, arm_affinity=None):
    """The network of a checkpoint, rebuilt in Keras with its weights.

    Args:
        probe: the file's `FileProbe` (`sniff` recognised it).
        input_size: the side the network is built for (default 224; square).
        arm_affinity: the ARM layer's inference affinity (default `"sample"`).
        labels: unused (`load_model` applies the caller's).
    """
    path = probe.path
    arm_affinity = arm_affinity or "sample"
    checkpoint = torch_checkpoints.read_checkpoint(path)
    if checkpoint.num_classes is None:
        raise WeightFileError(
            f"{path!r} holds a {checkpoint.network} backbone without its classifier (no "
            "'fc.weight'), so it recognises nothing by itself. Expected a whole network; a "
            "backbone initialises one to train: TrainModel(weights=path) or "
            "CNNModel().get_model('resnet18_arm', weights=path).")
    size = square_size(path, input_size)
    try:
        model = cnn_model.CNNModel().get_model(
            checkpoint.arch, num_classes=checkpoint.num_classes, weights=None,
            input_size=size[0], num_embeddings=0, arm_affinity=arm_affinity)
        torch_checkpoints.load_into(model, checkpoint, whole=True)
    except ValueError as error:  # CheckpointError included
        raise WeightFileError(str(error)) from None
    # ARM's networks were trained on RAF-DB's labels minus one; torchvision's order is unknown.
    if checkpoint.network != "torchvision_resnet18" and checkpoint.num_classes == 7:
        labels = LABEL_PRESETS["rafdb"]
    else:
        labels = unnamed_labels(checkpoint.num_classes)
    metadata = {"network": checkpoint.network, "container": checkpoint.container}
    if checkpoint.arch == "resnet18_arm":
        metadata["affinity"] = arm_affinity
    return model, model_info(path, LOADER.name, labels=labels, input_size=size, channels=3,
                             num_embeddings=0, arch=checkpoint.arch, metadata=metadata)


LOADER = register(Loader(
    name="torch", order=40, suffixes=(".pth", ".pt", ".pth.tar", ".ckpt"),
    description="a PyTorch .pth checkpoint (ARM's networks, torchvision's ResNet-18)",
    sniff=sniff, load=load,
    misnamed="is not a PyTorch file (neither the zip archive torch.save writes nor its legacy "
             "pickle); it may be truncated. Expected a complete .pth checkpoint."))
