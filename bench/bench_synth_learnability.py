"""SynthFER learnability: is the task learnable but not trivial?

Trains, on SynthFER through `data_helper.make_dataset`, (a) a tiny CNN for one
short epoch and (b) a larger CNN for several epochs (no tf.data augmentation by
default: SynthFER draws its own nuisances, and from scratch augmentation keeps a
network at the class prior for several more epochs; `--augment` turns it on), and
prints their test accuracy next to the majority-class rate. A learnable but
non-trivial dataset puts (a) clearly above chance and clearly below (b).
The larger CNN stands in for Xception, which trains at about 12 img/s on a
2-core CPU (DESIGN.md); run train.py for the real thing.

Usage: python bench/bench_synth_learnability.py [--n-train 10000] [--epochs 6] [--size 64] [--augment]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def tiny_cnn(size, num_classes=7):
    import keras

    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def larger_cnn(size, num_classes=7, widths=(16, 32, 64, 128)):
    import keras

    inputs = keras.Input((size, size, 3))
    x = inputs
    for width in widths:
        for _ in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--tiny-n", type=int, default=1000, help="images in the tiny CNN's epoch")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true", help="augment the larger CNN's images")
    args = parser.parse_args()

    import keras
    import numpy as np

    from adcorre import data as data_helper

    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    train = data_helper.read_split("synth", None, "train", n=args.n_train, image_size=args.size,
                                   seed=args.seed)
    test = data_helper.read_split("synth", None, "test", n=args.n_test, image_size=args.size,
                                  seed=args.seed)
    gen_s = time.perf_counter() - start
    test_ds = data_helper.make_dataset(test, input_size=args.size, batch_size=100)
    majority = np.bincount(test["label"], minlength=7).max() / len(test)

    results = []
    tiny = tiny_cnn(args.size)
    tiny.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    tiny_train = data_helper.make_dataset(train.iloc[:args.tiny_n], input_size=args.size,
                                          training=True, batch_size=32, seed=1, augment=False)
    start = time.perf_counter()
    tiny.fit(tiny_train, epochs=1, verbose=0)
    results.append((f"tiny CNN, 1 epoch of {args.tiny_n}", tiny.count_params(),
                    tiny.evaluate(test_ds, verbose=0)[1], time.perf_counter() - start))

    big = larger_cnn(args.size)
    big.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy",
                metrics=["accuracy"])
    start = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
        # One dataset per epoch, as TrainModel builds them: (seed, epoch) fixes its order.
        big_train = data_helper.make_dataset(train, input_size=args.size, training=True,
                                             batch_size=64, seed=2, epoch=epoch, augment=args.augment)
        big.fit(big_train, epochs=1, verbose=0)
        history.append(big.evaluate(test_ds, verbose=0)[1])
    results.append((f"larger CNN, {args.epochs} epochs of {args.n_train}", big.count_params(),
                    history[-1], time.perf_counter() - start))

    print(f"\nSynthFER {args.size} px: {args.n_train} train / {args.n_test} test "
          f"(generated in {gen_s:.0f} s); majority-class rate {majority:.3f}")
    print(f"| {'model':<32} | {'params':>8} | {'test acc':>8} | {'train s':>7} |")
    print(f"| {'-' * 32} | {'-' * 8} | {'-' * 8} | {'-' * 7} |")
    for name, params, acc, seconds in results:
        print(f"| {name:<32} | {params:8d} | {acc:8.3f} | {seconds:7.0f} |")
    print("larger CNN test accuracy per epoch: " + ", ".join(f"{a:.3f}" for a in history))


if __name__ == "__main__":
    main()
