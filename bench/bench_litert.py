"""Exported models on LiteRT against the Keras model they came from, in one run.

Speed: `TestModels.predict` (the model call and the input conversion around it) on random
crops, p50 over repeated calls after a warm-up, for the Keras model (`predict_on_batch`, graph
mode) and its float32 `.tflite` export on LiteRT, at batch 1 and 16, for `tiny` (64 px) and `xcp`
(224 px), random weights. Goal: LiteRT float32 at least 1.5x faster than Keras at batch 1.

Accuracy cost of the quantised exports: a `tiny` model trained on SynthFER (`--weights`, or one
trained here in about two minutes), evaluated on 1000 SynthFER test faces as Keras, and exported
to float32, float16 and int8 (calibrated on 200 SynthFER training faces) on LiteRT: accuracy,
agreement with Keras' labels, largest probability difference, file size.

Run: `python bench/bench_litert.py [--repeats 30] [--weights synth_8_AC_0.8930.h5]`.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

INPUT_SIZES = {"tiny": 64, "xcp": 224}


def _random_tester(arch, folder):
    from adcorre.config import EXPRESSIONS_7
    from adcorre.inference.model_tester import TestModels
    from adcorre.models import weights_io
    from adcorre.models.cnn_model import CNNModel

    model = CNNModel().get_model(arch, weights=None, input_size=INPUT_SIZES[arch])
    path = weights_io.save_model(model, os.path.join(folder, f"{arch}.h5"),
                                 labels=EXPRESSIONS_7, arch=arch)
    return TestModels(path, verbose=False)


def _p50_ms(call, repeats):
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def speed(folder, repeats):
    from adcorre.inference.model_tester import TestModels

    print("| arch | batch | Keras ms | LiteRT float32 ms | float32 speed-up | LiteRT int8 ms | "
          "int8 speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for arch in INPUT_SIZES:
        keras_tester = _random_tester(arch, folder)
        lite = TestModels(keras_tester.export(os.path.join(folder, f"{arch}.tflite"), "tflite"),
                          verbose=False)
        int8 = TestModels(keras_tester.export(os.path.join(folder, f"{arch}_int8.tflite"),
                                              "tflite", quantize="int8",
                                              representative=("synth", None, "train")),
                          verbose=False)
        size = INPUT_SIZES[arch]
        for batch in (1, 16):
            crops = np.random.default_rng(batch).integers(0, 256, (batch, size, size, 3),
                                                          dtype=np.uint8)
            np.testing.assert_allclose(lite.predict(crops), keras_tester.predict(crops), atol=1e-4)
            keras_ms = _p50_ms(lambda: keras_tester.predict(crops), repeats)
            lite_ms = _p50_ms(lambda: lite.predict(crops), repeats)
            int8_ms = _p50_ms(lambda: int8.predict(crops), repeats)
            print(f"| {arch} | {batch} | {keras_ms:.2f} | {lite_ms:.2f} | "
                  f"{keras_ms / lite_ms:.2f}x | {int8_ms:.2f} | {keras_ms / int8_ms:.2f}x |",
                  flush=True)


def _trained_tiny(folder):
    from adcorre.training.train_model import TrainModel

    print("training a tiny model on SynthFER for the accuracy rows (about two minutes)...",
          flush=True)
    return TrainModel(dataset_name="synth", synth_train_size=4000, synth_test_size=200,
                      epochs=4, save_dir=os.path.join(folder, "run"), verbose=0,
                      lr_decay_every=3).train()


def accuracy_cost(folder, weights):
    from adcorre.data import dataset_readers
    from adcorre.inference.model_tester import TestModels

    keras_tester = TestModels(weights or _trained_tiny(folder), verbose=False)
    size = keras_tester.info.input_size[0]
    test = dataset_readers.read_split("synth", None, "test", n=1000, image_size=size, seed=0)
    images = np.stack(list(test["image"]))
    truth = np.array([keras_tester.exps.index(("Neutral", "Happy", "Sad", "Surprise", "Fear",
                                                "Disgust", "Anger")[label])
                      for label in test["label"]])
    reference = keras_tester.predict(images)
    rows = [("Keras (float32)", keras_tester.info.path, reference)]
    for quantize in (None, "float16", "int8"):
        path = os.path.join(folder, f"model_{quantize or 'float32'}.tflite")
        keras_tester.export(path, "tflite", quantize=quantize,
                            representative=("synth", None, "train") if quantize else None)
        rows.append((f"LiteRT {quantize or 'float32'}", path,
                     TestModels(path, verbose=False).predict(images)))
    print(f"\nSynthFER test split, 1000 faces at {size} px, model {os.path.basename(weights or 'a tiny trained here')}:")
    print("| model | file MB | accuracy | labels equal to Keras' | largest probability difference |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, path, probabilities in rows:
        accuracy = float((probabilities.argmax(-1) == truth).mean())
        agree = float((probabilities.argmax(-1) == reference.argmax(-1)).mean())
        print(f"| {name} | {os.path.getsize(path) / 1e6:.2f} | {accuracy:.4f} | {agree:.4f} | "
              f"{np.abs(probabilities - reference).max():.4f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--weights", help="a model trained on SynthFER for the accuracy rows "
                                          "(default: train a tiny one here)")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    from adcorre import runtime

    runtime.announce_device()
    print(f"cores: {os.cpu_count()}, load average (1 min) at start: {os.getloadavg()[0]:.2f}\n")
    with tempfile.TemporaryDirectory() as folder:
        if not args.skip_speed:
            speed(folder, args.repeats)
        accuracy_cost(folder, args.weights)
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
