"""The Ad-Corre network: a backbone, k L2-normalised embedding heads and a softmax classifier.

`CNNModel().get_model(arch, num_classes, weights)` builds a functional Keras model
with one input (RGB scaled to [0, 1]) and the outputs `[probs, emb_1, ..., emb_k]`,
as the official Ad-Corre code does. Arches:

- `xcp`: Xception cut at `block14_sepconv2_act`, global average pooling (the paper's model).
- `xcp_arm`: the same backbone with the Amend Representation Module in place of the pooling.
- `resnet`: ResNet50 with global average pooling (the official code's second arch).
- `tiny`: a four-block CNN of about 0.9 M parameters (with the heads), only for tests and quick CPU demos;
  it is not part of either paper.

Only `keras.ops` and Keras layers are used, so the module also runs under the JAX backend.
"""

import os

import keras
from keras import layers, ops

from arm import AmendRepresentation
from config import InputDataSize, LearningConfig

ARCHES = ("xcp", "xcp_arm", "resnet", "tiny")

# What each backbone's ImageNet weights expect after our [0, 1] RGB input.
_INPUT_SCALING = {"xcp": "xception", "xcp_arm": "xception", "resnet": "caffe", "tiny": "none"}
# The file keras.applications downloads for each backbone (include_top=False).
_IMAGENET_FILES = {
    "xcp": "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "xcp_arm": "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
# Smallest input each backbone accepts (Xception's stem and ARM's 32x32 kernel need 71 px
# and a 3x3 final map respectively; ResNet50's 32 px).
_MIN_INPUT_SIZE = {"xcp": 71, "xcp_arm": 71, "resnet": 32, "tiny": 16}


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
            ImageNet channel means, as ResNet50 expects) or `"none"`.

    Returns:
        The scaled images, same shape.

    Example:
    >>> keras.ops.convert_to_numpy(ScaleInputs("xception")(np.array([[[[0.0, 0.5, 1.0]]]])))
    array([[[[-1.,  0.,  1.]]]], dtype=float32)
    """

    _CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

    def __init__(self, mode="xception", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("xception", "caffe", "none"):
            raise ValueError(
                f"ScaleInputs mode must be 'xception', 'caffe' or 'none', got {mode!r}."
            )
        self.mode = mode

    def call(self, inputs):
        if self.mode == "xception":
            return inputs * 2.0 - 1.0
        if self.mode == "caffe":
            bgr = ops.flip(inputs, axis=-1) * 255.0
            return bgr - ops.convert_to_tensor(self._CAFFE_MEAN_BGR, dtype=bgr.dtype)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


def imagenet_weights_path(arch):
    """Where Keras keeps the ImageNet weight file of `arch`'s backbone once downloaded."""
    cache_dir = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(cache_dir, "models", _IMAGENET_FILES[arch])


class CNNModel:
    """Builds the official-style Ad-Corre models (see the module docstring)."""

    def get_model(
        self,
        arch="xcp",
        num_classes=7,
        weights="imagenet",
        input_size=InputDataSize.image_input_size,
        num_embeddings=LearningConfig.num_embeddings,
        embedding_size=LearningConfig.embedding_size,
        dropout=LearningConfig.dropout,
        scale_inputs=True,
    ):
        """Returns the model `image -> [probs, emb_1, ..., emb_k]`.

        Args:
            arch: one of `"xcp"`, `"xcp_arm"`, `"resnet"`, `"tiny"`.
            num_classes: size of the softmax output (7, or 8 for AffectNet with Contempt).
            weights: `None` (random), `"imagenet"` (backbone only; needs the Keras
                cache file, see `imagenet_weights_path`) or the path of a weight file
                of this same architecture (`.h5` or `.weights.h5`).
            input_size: side of the square RGB input.
            num_embeddings: k, the number of embedding heads.
            embedding_size: d, the width of each embedding.
            dropout: dropout rate on the concatenated embeddings.
            scale_inputs: put the backbone's input scaling in the model so it takes RGB in
                [0, 1]. `False` rebuilds the official graph, which fed [0, 1] straight in.

        Returns:
            A functional `keras.Model` with input `"image"` and `1 + num_embeddings` outputs.

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
        if num_embeddings < 1 or embedding_size < 1 or num_classes < 2:
            raise ValueError(
                "Expected num_embeddings >= 1, embedding_size >= 1 and num_classes >= 2, got "
                f"{num_embeddings}, {embedding_size}, {num_classes}."
            )
        if weights == "imagenet" and arch == "tiny":
            raise ValueError("arch 'tiny' has no ImageNet weights; use weights=None.")

        image = keras.Input((input_size, input_size, 3), name="image")
        x = ScaleInputs(_INPUT_SCALING[arch], name="scale_inputs")(image) if scale_inputs else image
        backbone_weights = "imagenet" if weights == "imagenet" else None
        features = self._features(arch, x, backbone_weights)
        model = self._add_heads(
            image, features, num_classes, num_embeddings, embedding_size, dropout, arch
        )
        if weights not in (None, "imagenet"):
            self._load_weight_file(model, weights)
        return model

    def _features(self, arch, x, backbone_weights):
        """Backbone output: a (n, d) vector per image."""
        if backbone_weights == "imagenet":
            _require_imagenet_file(arch)
        if arch in ("xcp", "xcp_arm"):
            backbone = keras.applications.Xception(
                include_top=False, weights=backbone_weights, input_tensor=x
            )
            feature_map = backbone.get_layer("block14_sepconv2_act").output
            if arch == "xcp_arm":
                return AmendRepresentation(name="amend_representation")(feature_map)
            return layers.GlobalAveragePooling2D(name="global_average_pooling2d")(feature_map)
        if arch == "resnet":
            backbone = keras.applications.ResNet50(
                include_top=False, weights=backbone_weights, input_tensor=x
            )
            return layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
        return _tiny_backbone(x)

    def _add_heads(self, image, features, num_classes, k, d, dropout, arch):
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


def _tiny_backbone(x):
    """Four conv blocks (32-64-128-256 filters); a fast stand-in for tests and demos."""
    for i, filters in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"tiny_conv{i}")(x)
        x = layers.BatchNormalization(name=f"tiny_bn{i}")(x)
        x = layers.ReLU(name=f"tiny_relu{i}")(x)
        if i < 3:
            x = layers.MaxPooling2D(2, name=f"tiny_pool{i}")(x)
    return layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
