"""Throughput of the AmendRepresentation layer against global average pooling.

Builds `features (7, 7, C_in) -> head -> Dense(7)` for both heads and times
`predict_on_batch` and `train_on_batch` under each dtype policy, on whatever backend
and device Keras is using (`KERAS_BACKEND=jax python bench/bench_arm.py` on a GPU).
Prints one table; ratios are ARM time over pooling time measured in the same run.
"""

import argparse
import time


import keras  # noqa: E402
import numpy as np  # noqa: E402

from adcorre.models.arm import AmendRepresentation  # noqa: E402


def _model(head, channels_in):
    inputs = keras.Input((7, 7, channels_in))
    if head == "arm":
        features = AmendRepresentation(name="arm")(inputs)
    else:
        features = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(7, activation="softmax", dtype="float32")(features)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _time(fn, steps):
    fn()  # compile / warm up
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        result = fn()
    keras.ops.convert_to_numpy(result if not isinstance(result, list) else result[0])
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--channels", type=int, default=2048)
    parser.add_argument("--policies", default="float32,mixed_bfloat16")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, 7, 7, args.channels)).astype("float32")
    y = rng.integers(0, 7, size=(args.batch,))
    print(f"backend={keras.backend.backend()} batch={args.batch} C_in={args.channels}")
    header = ("policy", "head", "predict ms", "train ms", "pred ratio", "train ratio")
    print(f"{header[0]:<16}{header[1]:<8}" + "".join(f"{h:>12}" for h in header[2:]))
    for policy in args.policies.split(","):
        keras.config.set_dtype_policy(policy)
        times = {}
        for head in ("gap", "arm"):
            model = _model(head, args.channels)
            predict = _time(lambda: model.predict_on_batch(x), args.steps)
            train = _time(lambda: model.train_on_batch(x, y), args.steps)
            times[head] = (predict, train)
        keras.config.set_dtype_policy("float32")
        for head in ("gap", "arm"):
            predict, train = times[head]
            ratio_p = predict / times["gap"][0]
            ratio_t = train / times["gap"][1]
            print(f"{policy:<16}{head:<8}{predict * 1e3:>12.2f}{train * 1e3:>12.2f}"
                  f"{ratio_p:>12.2f}{ratio_t:>12.2f}")


if __name__ == "__main__":
    main()
