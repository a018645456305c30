"""Ablation on SynthFER: CE only vs CE + Ad-Corre, ResNet-18 vs ResNet-18-ARM, over seeds.

Each configuration `ARCH:LOSS` is trained with `TrainModel` from scratch (weights=None) on
SynthFER, once per seed; the seed fixes the generated faces, the initialisation and the batch
order, so two configurations with the same seed see the same data. LOSS is `ce` (cross-entropy
only) or `adcorre` (CE + FD + MD + ED), trained with the demo's optimiser settings below, or
`arm`: ARM's own recipe (`config.RECIPES["arm"]`: CE alone, torch's Adam 1e-3 with coupled L2
1e-4, the rate x0.9 after every epoch, ARM's flip-or-noise + erasing augmentation), scaled down
by `--epochs`, `--batch-size`, `--input-size` and the dataset sizes only (`--lr`,
`--lr-decay-every` and `--augment` do not apply to it). Prints one row per run (with the test
accuracy and the training cross-entropy per epoch) and, per configuration, the mean and standard
deviation over seeds of the final and the best test accuracy and mean class accuracy.

    python bench/ablation_synth.py                                  # tiny, CE vs Ad-Corre, 3 seeds
    python bench/ablation_synth.py --configs xcp:adcorre xcp_arm:adcorre --input-size 71 \\
        --train 4000 --epochs 4 --seeds 0                            # Xception vs ARM (slow on CPU)
    python bench/ablation_synth.py --configs resnet18:arm resnet18_arm:arm --input-size 112 \\
        --train 5000 --epochs 8 --batch-size 64 --mixed-precision bfloat16   # ARM's ablation

Defaults are the `python train.py` demo setting (64 px, 10000 / 1000 faces, 8 epochs, batch 50,
lr 1e-3 decayed x0.1 after epoch 6, no tf.data augmentation): about 3 minutes per run on 2 cores.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def run(arch, loss, seed, args, root):
    from adcorre.training.train_model import TrainModel

    save_dir = os.path.join(root, f"{arch}_{loss}_{seed}")
    start = time.perf_counter()
    if loss == "arm":  # the recipe's loss, optimiser, schedule and augmentation
        recipe = dict(recipe="arm")
    else:
        recipe = dict(lr=args.lr, lr_decay_every=args.lr_decay_every,
                      use_adcorre=(loss == "adcorre"),
                      augmentation=None if args.augment else False)
    TrainModel(dataset_name="synth", weights=None, epochs=args.epochs, batch_size=args.batch_size,
               input_size=args.input_size, save_dir=save_dir, synth_train_size=args.train,
               synth_test_size=args.test, seed=seed, verbose=0,
               mixed_precision=args.mixed_precision, **recipe).train(arch=arch)
    with open(os.path.join(save_dir, "training_state.json")) as handle:
        history = json.load(handle)["history"]
    return {
        "final_acc": history[-1]["test_accuracy"],
        "best_acc": max(h["test_accuracy"] for h in history),
        "final_mca": history[-1]["test_mean_class_accuracy"],
        "best_mca": max(h["test_mean_class_accuracy"] for h in history),
        "curve": [round(h["test_accuracy"], 3) for h in history],
        "ce_curve": [round(h["ce"], 3) for h in history],
        "seconds": time.perf_counter() - start,
    }


def _mean_std(values):
    return (f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1
            else f"{values[0]:.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny:ce", "tiny:adcorre"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay-every", type=int, default=6)
    parser.add_argument("--augment", action="store_true", help="tf.data augmentation on")
    parser.add_argument("--mixed-precision", default="auto",
                        choices=("auto", "bfloat16", "float16", "none"))
    args = parser.parse_args(argv)
    configs = [tuple(c.split(":")) for c in args.configs]
    for arch, loss in configs:
        if loss not in ("ce", "adcorre", "arm"):
            raise SystemExit(f"config {arch}:{loss}: LOSS must be 'ce', 'adcorre' or 'arm'")

    from adcorre import data as data_helper
    import numpy as np

    test = data_helper.read_split("synth", None, "test", n=args.test, image_size=args.input_size,
                                  seed=args.seeds[0])
    majority = np.bincount(test["label"], minlength=7).max() / len(test)
    print(f"SynthFER {args.input_size} px, {args.train} train / {args.test} test faces, "
          f"{args.epochs} epochs, batch {args.batch_size}, augmentation "
          f"{'on' if args.augment else 'off'} (arm configs: the recipe's), mixed precision "
          f"{args.mixed_precision}; "
          f"majority-class rate (seed {args.seeds[0]}) "
          f"{majority:.3f}, chance mean class accuracy {1 / 7:.3f}")
    print(f"| {'config':16} | seed | final acc | best acc | final MCA | best MCA | seconds | "
          "test accuracy per epoch | training CE per epoch |")
    print(f"| {'-' * 16} | ---- | --------- | -------- | --------- | -------- | ------- | --- | --- |")
    results = {config: [] for config in configs}
    with tempfile.TemporaryDirectory() as root:
        for seed in args.seeds:
            for arch, loss in configs:
                row = run(arch, loss, seed, args, root)
                results[(arch, loss)].append(row)
                print(f"| {arch + ':' + loss:16} | {seed:4d} | {row['final_acc']:9.3f} | "
                      f"{row['best_acc']:8.3f} | {row['final_mca']:9.3f} | {row['best_mca']:8.3f} | "
                      f"{row['seconds']:7.0f} | {row['curve']} | {row['ce_curve']} |",
                      flush=True)
    print(f"\n| {'config':16} | final acc | best acc | final MCA | best MCA |  (mean ± std over "
          f"{len(args.seeds)} seeds)")
    print(f"| {'-' * 16} | --------- | -------- | --------- | -------- |")
    for (arch, loss), rows in results.items():
        print(f"| {arch + ':' + loss:16} | " + " | ".join(
            _mean_std([r[key] for r in rows]) for key in ("final_acc", "best_acc", "final_mca",
                                                          "best_mca")) + " |")


if __name__ == "__main__":
    main()
