"""Writes official-format Ad-Corre files with tf_keras (Keras 2), as the official code saved them.

The official graph: a keras.applications backbone (Xception cut at `block14_sepconv2_act`, or
ResNet50 with its top, read at `avg_pool`), global average pooling, k x [Dense(256) ->
Lambda(l2_normalize)], Concatenate, Dropout(0.5), Dense(classes, softmax, name="out"), outputs
`[out, emb_1..emb_k]`, saved with `model.save("X.h5")`. The release files are 224 px; tests use
small sizes. Along with the file, the probabilities and embeddings Keras 2 itself predicts for a
fixed batch come back, so a loader can be checked against them.

Used only by the tests (tf_keras is a test dependency).
"""

import base64
import json
import os
import warnings

import h5py
import numpy as np
# A module global, as in the official code: the stored lambdas name `tf` without closing over it.
import tensorflow as tf


def forge_official(
    path,
    *,
    arch="xcp",
    num_embeddings=7,
    num_classes=7,
    input_size=71,
    embedding_size=256,
    dense_layers_before=0,
    reverse_head_creation=False,
    marker_path=None,
    compile_model=False,
    weights_only_path=None,
    num_probe_images=3,
    probe_images=None,
    seed=0,
):
    """Builds the official graph with random (but non-trivial) weights, saves it, predicts.

    Args:
        path: where `model.save` writes the `.h5`.
        arch: `"xcp"` or `"resnet"`.
        num_embeddings: k heads.
        num_classes: units of `out`.
        input_size: side of the square RGB input.
        embedding_size: units of each head.
        dense_layers_before: Dense layers built (and discarded) first in the same session, so the
            heads get auto-names `dense_N` with N > 0, as in a session that built other models.
        reverse_head_creation: create the head Dense layers last-to-first, so the numbers in their
            names run against the graph order (a loader must follow the graph, not the names).
        marker_path: if given, every Lambda's function also creates this file when it runs; the
            file is removed again before returning (building and predicting run the lambdas).
        compile_model: compile with Adam before saving (a `training_config` in the file).
        weights_only_path: also write `model.save_weights` here (an HDF5 with no model_config).
        num_probe_images: size of the random batch predicted for reference.
        probe_images: float32 RGB in [0, 1] (n, input_size, input_size, 3) to predict instead.
        seed: seeds the weights and the probe batch.

    Returns:
        dict with `path`, `weights_only_path`, `images` (float32 [0, 1], the probe batch),
        `outputs` (Keras 2's `[probs, emb_1, ..., emb_k]` for them) and `head_names` (the heads'
        names in graph order).
    """
    import tf_keras

    tf_keras.backend.clear_session()  # name counters start at dense, lambda, ...
    tf_keras.utils.set_random_seed(seed)
    for _ in range(dense_layers_before):
        tf_keras.layers.Dense(1)

    shape = (input_size, input_size, 3)
    if arch == "xcp":
        backbone = tf_keras.applications.Xception(include_top=False, weights=None, input_shape=shape)
        pooled = tf_keras.layers.GlobalAveragePooling2D()(backbone.get_layer("block14_sepconv2_act").output)
    elif arch == "resnet":
        backbone = tf_keras.applications.ResNet50(include_top=True, weights=None, input_shape=shape)
        pooled = backbone.get_layer("avg_pool").output
    else:
        raise ValueError(f"arch must be 'xcp' or 'resnet', got {arch!r}")

    if marker_path is None:
        normalise = lambda x: tf.math.l2_normalize(x, axis=1)  # noqa: E731  (as the official code)
    else:
        # The default argument carries the marker path into the stored bytecode.
        normalise = lambda x, marker=str(marker_path): (  # noqa: E731
            open(marker, "w").close(), tf.math.l2_normalize(x, axis=1))[1]

    heads = [tf_keras.layers.Dense(embedding_size) for _ in range(num_embeddings)]
    if reverse_head_creation:
        heads = heads[::-1]
    embeddings = [tf_keras.layers.Lambda(normalise)(head(pooled)) for head in heads]
    fused = tf_keras.layers.Concatenate(axis=1)(embeddings) if num_embeddings > 1 else embeddings[0]
    fused = tf_keras.layers.Dropout(rate=0.5)(fused)
    out = tf_keras.layers.Dense(num_classes, activation="softmax", name="out")(fused)
    model = tf_keras.Model([backbone.input], [out] + embeddings)

    _randomise(model, np.random.default_rng(seed))
    if compile_model:
        model.compile(optimizer="adam", loss={"out": "categorical_crossentropy"})
    with warnings.catch_warnings():  # Keras 2's "HDF5 is legacy" note: this format is the point
        warnings.simplefilter("ignore", UserWarning)
        model.save(path)
    if weights_only_path is not None:
        model.save_weights(weights_only_path)

    if probe_images is None:
        probe_images = np.random.default_rng(seed + 1).uniform(
            0.0, 1.0, (num_probe_images,) + shape).astype("float32")
    images = np.asarray(probe_images, "float32")
    outputs = [np.asarray(o) for o in model.predict(images, verbose=0)]
    head_names = [head.name for head in heads]
    tf_keras.backend.clear_session()
    if marker_path is not None and os.path.exists(marker_path):
        os.remove(marker_path)
    return {
        "path": str(path),
        "weights_only_path": None if weights_only_path is None else str(weights_only_path),
        "images": images,
        "outputs": outputs,
        "head_names": head_names,
    }


def _randomise(model, rng):
    """Moves every weight away from its initial value, so a copy that skipped one shows."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.6, 1.4, gamma.shape).astype("float32"),
                rng.normal(0.0, 0.1, beta.shape).astype("float32"),
                rng.normal(0.0, 0.1, mean.shape).astype("float32"),
                rng.uniform(0.6, 1.6, variance.shape).astype("float32"),
            ])
        elif kind == "Dense":
            kernel, bias = layer.get_weights()
            # A wide `out` kernel spreads the softmax, so probabilities discriminate between copies.
            scale = 8.0 if layer.name == "out" else 1.0
            layer.set_weights([
                (kernel * scale).astype("float32"),
                rng.normal(0.0, 0.2, bias.shape).astype("float32"),
            ])


def garble_lambda_code(source, destination):
    """Copies an official file, replacing each Lambda's stored bytecode with undecodable bytes.

    The official release files hold bytecode of the Python that wrote them, which another
    Python cannot load; a loader that needs that code fails on them. Returns `destination`.
    """
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        writer.write(reader.read())
    junk = base64.b64encode(b"\xe3" + bytes(range(7, 64))).decode("ascii") + "\n"
    with h5py.File(destination, "a") as file:
        config = json.loads(file.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Lambda":
                layer["config"]["function"] = [junk, None, None]
        file.attrs["model_config"] = json.dumps(config)
    return destination
