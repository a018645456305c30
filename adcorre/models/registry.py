"""One record per arch: what the model builder, the options, Grad-CAM and the file readers know.

An arch is a backbone (built by `cnn_model`'s builder of that name), a pooling of its last 2-D
feature map (global average or ARM) and the heads. Everything else that differs between arches
is data, kept here in one `ArchSpec` per arch, so a new arch is one record plus, when its
backbone is new, one builder in `cnn_model.BACKBONES`. This module imports no Keras: the
commands read it to offer `--arch` before TensorFlow loads.

Example:
>>> spec = get_arch("xcp")
>>> spec.backbone, spec.feature_map, spec.input_scaling, spec.default_embeddings
('xception', 'block14_sepconv2_act', 'xception', 7)
>>> [name for name in ARCH_NAMES if get_arch(name).weights_format == "torch"]
['resnet18', 'resnet18_arm']

This module imports nothing of ours but `errors`.
"""

import dataclasses

from adcorre.errors import SettingError


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """What one arch is.

    Attributes:
        name: the arch's name (`--arch`, `arch=`, the `arch` of a saved file).
        description: one line for `--help` and the docs.
        backbone: the key of its builder in `cnn_model.BACKBONES`.
        feature_map: the layer whose output is the last 2-D feature map: what the pooling (or
            ARM) takes and Grad-CAM weighs.
        pooling: `"average"` (global average pooling) or `"arm"` (`AmendRepresentation`).
        pooling_layer: the pooling layer's name (weight files match layers by name).
        input_scaling: the `cnn_model.ScaleInputs` mode that maps RGB in [0, 1] to what the
            backbone's ImageNet weights expect.
        input_size: the side the arch is trained and released at, in pixels.
        min_input_size: the smallest side its layers accept.
        default_embeddings: k when `num_embeddings=None` (Ad-Corre's 7; 0 for ARM's networks).
        imagenet: the name of the `weights_table` record its `weights="imagenet"` reads (the
            backbone's ImageNet file; None: it has none).
        weights_format: `"keras"` (`.h5` files) or `"torch"` (its ImageNet and published
            weights are PyTorch `.pth` files).
        official: True where the official Ad-Corre code builds it (its `.h5` files rebuild to it).
    """

    name: str
    description: str
    backbone: str
    feature_map: str
    pooling: str = "average"
    pooling_layer: str = "global_average_pooling2d"
    input_scaling: str = "none"
    input_size: int = 224
    min_input_size: int = 32
    default_embeddings: int = 7
    imagenet: str = None
    weights_format: str = "keras"
    official: bool = False


# ImageNet's per-channel mean and standard deviation of RGB in [0, 1] (torchvision's Normalize):
# ScaleInputs("torchvision") subtracts this mean, and ARM's erasing fills with it, which that
# normalisation maps to torchvision's fill value 0.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

# In the order `--help` lists them. Xception's stem needs 71 px; ARM's 32x32 kernel needs a 3x3
# map after Xception (71 px) and a 2x2 map after ResNet-18 (33 px).
_SPECS = (
    ArchSpec("xcp", "Xception + global average pooling + k heads (the paper's model)",
             backbone="xception", feature_map="block14_sepconv2_act", input_scaling="xception",
             min_input_size=71, imagenet="xcp.imagenet", official=True),
    ArchSpec("xcp_arm", "Xception + ARM in place of the pooling + k heads",
             backbone="xception", feature_map="block14_sepconv2_act", pooling="arm",
             pooling_layer="amend_representation", input_scaling="xception", min_input_size=71,
             imagenet="xcp.imagenet"),
    ArchSpec("resnet", "ResNet50 + global average pooling + k heads (the official code's "
             "second arch)", backbone="resnet50", feature_map="conv5_block3_out",
             pooling_layer="avg_pool", input_scaling="caffe", imagenet="resnet.imagenet",
             official=True),
    ArchSpec("tiny", "a four-block CNN of about 0.9 M parameters, for tests and CPU demos "
             "(in neither paper)", backbone="tiny", feature_map="tiny_relu3", input_size=64,
             min_input_size=16),
    ArchSpec("resnet18", "torchvision's ResNet-18 + average pooling + Linear (ARM's baseline)",
             backbone="resnet18", feature_map="layer4_1_relu2", pooling_layer="avgpool",
             input_scaling="torchvision", default_embeddings=0,
             imagenet="resnet18.imagenet", weights_format="torch"),
    ArchSpec("resnet18_arm", "torchvision's ResNet-18 + ARM + Linear (ARM's own network)",
             backbone="resnet18", feature_map="layer4_1_relu2", pooling="arm",
             pooling_layer="arm", input_scaling="torchvision", min_input_size=33,
             default_embeddings=0, imagenet="resnet18.imagenet",
             weights_format="torch"),
)

ARCHS = {spec.name: spec for spec in _SPECS}
ARCH_NAMES = tuple(ARCHS)


def get_arch(name):
    """The `ArchSpec` of `name`.

    Raises:
        SettingError: `name` is not a registered arch (the message lists them).
    """
    try:
        return ARCHS[name]
    except (KeyError, TypeError):
        raise SettingError(f"Unknown arch {name!r}; expected one of {ARCH_NAMES}.") from None

