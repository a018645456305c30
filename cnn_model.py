"""The Ad-Corre network: a backbone, k L2-normalised embedding heads and a softmax classifier.

`CNNModel().get_model(arch, num_classes, weights)` builds a functional Keras model
with one input (RGB scaled to [0, 1]) and the outputs `[probs, emb_1, ..., emb_k]`,
as the official Ad-Corre code does. Arches:

- `xcp`: Xception cut at `block14_sepconv2_act`, global average pooling (the paper's model).
- `xcp_arm`: the same backbone with the Amend Representation Module in place of the pooling.
- `resnet`: ResNet50 with global average pooling (the official code's second arch).
- `tiny`: a four-block CNN of about 0.9 M parameters (with the heads), only for tests and quick CPU demos;
  it is not part of either paper.
- `resnet18_arm`: ARM's own network (`ResNet18_ARM___RAF`): torchvision's ResNet-18 cut before its
  average pool, then ARM (121 features at 224 px) and `Linear(121, num_classes)`.
- `resnet18`: the same backbone with global average pooling and `Linear(512, num_classes)`
  (ARM's `ResNet18` baseline).

With `num_embeddings=0` the features go straight to the softmax classifier and the model has one
output, `probs`: for `resnet18` / `resnet18_arm` that is the official network exactly, and their
default. Their `weights` may be a PyTorch checkpoint (`torch_checkpoints`).

Only `keras.ops` and Keras layers are used, so the module also runs under the JAX backend.
"""

import os

import keras
from keras import layers, ops

import torch_checkpoints
from arm import AmendRepresentation
from config import (
    ARCHES,
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    InputDataSize,
    LearningConfig,
)
from resnet import resnet18_features

# The arches built on torchvision's ResNet-18, whose weights come as PyTorch files.
TORCH_ARCHES = ("resnet18", "resnet18_arm")

# What each backbone's ImageNet weights expect after our [0, 1] RGB input.
_INPUT_SCALING = {"xcp": "xception", "xcp_arm": "xception", "resnet": "caffe", "tiny": "none",
                  "resnet18": "torchvision", "resnet18_arm": "torchvision"}
# The file keras.applications downloads for each backbone (include_top=False).
_IMAGENET_FILES = {
    "xcp": "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "xcp_arm": "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
# Smallest input each backbone accepts (Xception's stem and ARM's 32x32 kernel need 71 px
# and a 3x3 final map respectively; ResNet50's 32 px; ResNet-18's map is ceil(size / 32), and
# ARM's kernel needs 2x2 of it).
_MIN_INPUT_SIZE = {"xcp": 71, "xcp_arm": 71, "resnet": 32, "tiny": 16, "resnet18": 32,
                   "resnet18_arm": 33}


@keras.saving.register_keras_serializable(package="adcorre")
class L2Normalize(layers.Layer):
    """Scales each row to unit Euclidean norm (the official `Lambda(tf.math.l2_normalize)`).

    Args:
        axis: axis along which to normalise.
        epsilon: lower bound on the squared norm, so an all-zero row stays finite
            (the same 1e-12 as `tf.math.l2_normalize`).

    Returns:
        A tensor of the input's shape whose rows have norm 1.

    Example:
    >>> keras.ops.convert_to_numpy(L2Normalize()(np.array([[3.0, 4.0]])))
    array([[0.6, 0.8]], dtype=float32)
    """

    def __init__(self, axis=-1, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon

    def call(self, inputs):
        squared_norm = ops.sum(ops.square(inputs), axis=self.axis, keepdims=True)
        return inputs * ops.rsqrt(ops.maximum(squared_norm, self.epsilon))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="adcorre")
class ScaleInputs(layers.Layer):
    """Maps RGB in [0, 1] to the range a backbone's ImageNet weights were trained on.

    Keeping this inside the model means every model of the project takes the same
    input (RGB in [0, 1], as the official release files do) and a saved file carries
    its own preprocessing.

    Args:
        mode: `"xception"` (to [-1, 1]), `"caffe"` (to BGR in [0, 255] minus the
            ImageNet channel means, as ResNet50 expects), `"torchvision"` (minus the ImageNet
            mean, over the ImageNet standard deviation, per RGB channel, as torchvision's
            `Normalize` does for its ResNets and ARM's networks) or `"none"`.

    Returns:
        The scaled images, same shape.

    Example:
    >>> keras.ops.convert_to_numpy(ScaleInputs("xception")(np.array([[[[0.0, 0.5, 1.0]]]])))
    array([[[[-1.,  0.,  1.]]]], dtype=float32)
    """

    _CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
    MODES = ("xception", "caffe", "torchvision", "none")

    def __init__(self, mode="xception", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"ScaleInputs mode must be one of {self.MODES}, got {mode!r}.")
        self.mode = mode

    def call(self, inputs):
        if self.mode == "xception":
            return inputs * 2.0 - 1.0
        if self.mode == "caffe":
            bgr = ops.flip(inputs, axis=-1) * 255.0
            return bgr - ops.convert_to_tensor(self._CAFFE_MEAN_BGR, dtype=bgr.dtype)
        if self.mode == "torchvision":
            mean = ops.convert_to_tensor(IMAGENET_MEAN_RGB, dtype=inputs.dtype)
            std = ops.convert_to_tensor(IMAGENET_STD_RGB, dtype=inputs.dtype)
            return (inputs - mean) / std
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


def _keras_models_dir():
    """Keras' download folder (`$KERAS_HOME/models`, by default `~/.keras/models`)."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(keras_home, "models")


def imagenet_weights_path(arch):
    """Where Keras keeps the ImageNet weight file of `arch`'s backbone once downloaded."""
    return os.path.join(_keras_models_dir(), _IMAGENET_FILES[arch])


def torchvision_weights_path():
    """Where `weights="imagenet"` finds torchvision's `resnet18-f37072fd.pth` for `resnet18*`.

    torchvision's own cache (`$TORCH_HOME/hub/checkpoints`, by default
    `~/.cache/torch/hub/checkpoints`) if the file is there, else Keras' (`~/.keras/models`),
    where a download would go.
    """
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    torch_home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    torch_path = os.path.join(torch_home, "hub", "checkpoints",
                              torch_checkpoints.TORCHVISION_RESNET18_FILE)
    if os.path.isfile(torch_path):
        return torch_path
    return os.path.join(_keras_models_dir(), torch_checkpoints.TORCHVISION_RESNET18_FILE)


def _torch_checkpoint(arch, weights):
    """The PyTorch checkpoint `weights` names for `arch`, read; None where it names none."""
    if weights is None:
        return None
    if arch not in TORCH_ARCHES:
        if (weights != "imagenet" and os.path.isfile(weights)
                and torch_checkpoints.is_torch_file(weights)):
            raise ValueError(
                f"{weights!r} is a PyTorch checkpoint; those initialise arch {TORCH_ARCHES[0]!r} "
                f"or {TORCH_ARCHES[1]!r} (torchvision's ResNet-18 or ARM's networks), not {arch!r}."
            )
        return None
    if weights == "imagenet":
        weights = _require_torchvision_file(arch)
    elif not os.path.isfile(weights):
        raise FileNotFoundError(
            f"Weight file not found: {weights!r} (expected a PyTorch .pth or a Keras .h5 file).")
    elif not torch_checkpoints.is_torch_file(weights):
        return None  # a Keras weight file of this arch
    return torch_checkpoints.read_checkpoint(weights)


class CNNModel:
    """Builds the official-style Ad-Corre models (see the module docstring)."""

    def get_model(
        self,
        arch="xcp",
        num_classes=7,
        weights="imagenet",
        input_size=InputDataSize.image_input_size,
        num_embeddings=None,
        embedding_size=LearningConfig.embedding_size,
        dropout=LearningConfig.dropout,
        scale_inputs=True,
        arm_affinity="moving",
    ):
        """Returns the model `image -> [probs, emb_1, ..., emb_k]`.

        Args:
            arch: one of `ARCHES`: `"xcp"`, `"xcp_arm"`, `"resnet"`, `"tiny"`, `"resnet18"`,
                `"resnet18_arm"`.
            num_classes: size of the softmax output (7, or 8 for AffectNet with Contempt).
            weights: `None` (random), `"imagenet"` (backbone only; needs the Keras
                cache file, see `imagenet_weights_path`; for `resnet18*` torchvision's
                `resnet18-f37072fd.pth`, see `torchvision_weights_path`) or the path of a weight
                file of this same architecture (`.h5` or `.weights.h5`). For `resnet18*` also a
                PyTorch file: torchvision's ResNet-18 state dict initialises the backbone, an
                ARM checkpoint (`ResNet18_ARM___RAF` / `ResNet18`) the whole network, which
                then needs `num_embeddings=0` and the checkpoint's class count.
            input_size: side of the square RGB input.
            num_embeddings: k, the number of embedding heads; 0 feeds the features straight
                into the classifier (one output). `None`: 7 (Ad-Corre), 0 for `resnet18*`.
            embedding_size: d, the width of each embedding.
            dropout: dropout rate on the concatenated embeddings.
            scale_inputs: put the backbone's input scaling in the model so it takes RGB in
                [0, 1]. `False` rebuilds the official graph, which fed [0, 1] straight in.
            arm_affinity: the ARM layer's affinity in inference (`arm.AmendRepresentation`):
                `"moving"`, `"batch"` or `"sample"`.

        Returns:
            A functional `keras.Model` with input `"image"` and `1 + num_embeddings` outputs
            (Keras returns a lone output as a tensor, not a list of one).

        Example:
        >>> model = CNNModel().get_model("tiny", num_classes=7, weights=None, input_size=64)
        >>> probs, *embeddings = model(np.zeros((2, 64, 64, 3)))
        >>> tuple(probs.shape), len(embeddings), tuple(embeddings[0].shape)
        ((2, 7), 7, (2, 256))
        """
        if arch not in ARCHES:
            raise ValueError(f"Unknown arch {arch!r}; expected one of {ARCHES}.")
        if input_size < _MIN_INPUT_SIZE[arch]:
            raise ValueError(
                f"arch {arch!r} needs input_size >= {_MIN_INPUT_SIZE[arch]}, got {input_size}."
            )
        if num_embeddings is None:
            # Ad-Corre's k = 7 heads, or none on ARM's networks, as published.
            num_embeddings = 0 if arch in TORCH_ARCHES else LearningConfig.num_embeddings
        if num_embeddings < 0 or embedding_size < 1 or num_classes < 2:
            raise ValueError(
                "Expected num_embeddings >= 0, embedding_size >= 1 and num_classes >= 2, got "
                f"{num_embeddings}, {embedding_size}, {num_classes}."
            )
        if weights == "imagenet" and arch == "tiny":
            raise ValueError("arch 'tiny' has no ImageNet weights; use weights=None.")
        # A PyTorch file is read before anything is built, so a bad one fails at once.
        checkpoint = _torch_checkpoint(arch, weights)

        image = keras.Input((input_size, input_size, 3), name="image")
        x = ScaleInputs(_INPUT_SCALING[arch], name="scale_inputs")(image) if scale_inputs else image
        backbone_weights = "imagenet" if weights == "imagenet" else None
        features = self._features(arch, x, backbone_weights, arm_affinity)
        model = self._add_heads(
            image, features, num_classes, num_embeddings, embedding_size, dropout, arch
        )
        if checkpoint is not None:
            # torchvision's own classifier is ImageNet's: only its backbone is of use here.
            whole = checkpoint.network != "torchvision_resnet18"
            torch_checkpoints.load_into(model, checkpoint, whole=whole)
        elif weights not in (None, "imagenet"):
            self._load_weight_file(model, weights)
        return model

    def _features(self, arch, x, backbone_weights, arm_affinity="moving"):
        """Backbone output: a (n, d) vector per image."""
        if arch in TORCH_ARCHES:
            feature_map = resnet18_features(x)
            if arch == "resnet18_arm":
                # Named as ARM's module is (`arm.*` keys), so its checkpoint maps by name.
                return AmendRepresentation(affinity=arm_affinity, name="arm")(feature_map)
            return layers.GlobalAveragePooling2D(name="avgpool")(feature_map)
        if backbone_weights == "imagenet":
            _require_imagenet_file(arch)
        if arch in ("xcp", "xcp_arm"):
            backbone = keras.applications.Xception(
                include_top=False, weights=backbone_weights, input_tensor=x
            )
            feature_map = backbone.get_layer("block14_sepconv2_act").output
            if arch == "xcp_arm":
                return AmendRepresentation(affinity=arm_affinity,
                                           name="amend_representation")(feature_map)
            return layers.GlobalAveragePooling2D(name="global_average_pooling2d")(feature_map)
        if arch == "resnet":
            backbone = keras.applications.ResNet50(
                include_top=False, weights=backbone_weights, input_tensor=x
            )
            return layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
        return _tiny_backbone(x)

    def _add_heads(self, image, features, num_classes, k, d, dropout, arch):
        if k == 0:
            # As ARM's networks end: the features straight into Linear(features, C) (their
            # drop_rate is 0), with torch's default Linear initialisation, U(+-1/sqrt(fan_in)).
            bound = features.shape[-1] ** -0.5
            probs = layers.Dense(
                num_classes, activation="softmax", name="out", dtype="float32",
                kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
                bias_initializer=keras.initializers.RandomUniform(-bound, bound),
            )(features)
            return keras.Model(image, [probs], name=arch)
        embeddings = []
        for i in range(k):
            suffix = "" if i == 0 else f"_{i}"
            # Names as the official Keras-2 model auto-named them, so weights match by name.
            emb = layers.Dense(d, name=f"dense{suffix}")(features)
            embeddings.append(L2Normalize(name=f"l2_normalize{suffix}", dtype="float32")(emb))
        fused = layers.Concatenate(axis=1, name="concatenate")(embeddings) if k > 1 else embeddings[0]
        fused = layers.Dropout(dropout, name="dropout")(fused)
        # float32 softmax keeps the probabilities exact under mixed precision.
        probs = layers.Dense(num_classes, activation="softmax", name="out", dtype="float32")(fused)
        return keras.Model(image, [probs] + embeddings, name=f"adcorre_{arch}")

    def _load_weight_file(self, model, path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Weight file not found: {path!r} (expected a .h5 file).")
        try:
            model.load_weights(path)
        except Exception as error:  # Keras raises several types for a mismatched file.
            raise ValueError(
                f"Could not load {path!r} into arch {model.name!r}: {error}. Expected a weight "
                "file saved from the same arch, num_classes and heads; for official or foreign "
                "files use weights_io / TestModels."
            ) from error


def _require_imagenet_file(arch):
    """Fails early, with the fix, where the ImageNet file cannot be downloaded."""
    path = imagenet_weights_path(arch)
    if os.path.isfile(path):
        return
    try:
        keras.utils.get_file(
            _IMAGENET_FILES[arch],
            "https://storage.googleapis.com/tensorflow/keras-applications/"
            + ("xception/" if arch.startswith("xcp") else "resnet/")
            + _IMAGENET_FILES[arch],
            cache_subdir="models",
        )
    except Exception as error:
        raise RuntimeError(
            f"ImageNet weights for arch {arch!r} are not available: Keras looks for "
            f"{path!r} and could not download it ({type(error).__name__}). Copy that file "
            "there from a machine with internet access, or build with weights=None "
            "(--weights none) to train from scratch."
        ) from None


def _require_torchvision_file(arch):
    """torchvision's ImageNet ResNet-18: the cached file, else a download, else the fix."""
    path = torchvision_weights_path()
    if os.path.isfile(path):
        return path
    name = torch_checkpoints.TORCHVISION_RESNET18_FILE
    url = torch_checkpoints.TORCHVISION_RESNET18_URL
    try:
        return keras.utils.get_file(name, url, cache_subdir="models")
    except Exception as error:
        raise RuntimeError(
            f"ImageNet weights for arch {arch!r} are torchvision's {name}, which is not at "
            f"{path!r} and could not be downloaded ({type(error).__name__}). Get it from {url} "
            f"and pass its path (weights='path/to/{name}', --weights path/to/{name}) or copy it "
            "there; or build with weights=None (--weights none) to train from scratch."
        ) from None


def _tiny_backbone(x):
    """Four conv blocks (32-64-128-256 filters); a fast stand-in for tests and demos."""
    for i, filters in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"tiny_conv{i}")(x)
        x = layers.BatchNormalization(name=f"tiny_bn{i}")(x)
        x = layers.ReLU(name=f"tiny_relu{i}")(x)
        if i < 3:
            x = layers.MaxPooling2D(2, name=f"tiny_pool{i}")(x)
    return layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
