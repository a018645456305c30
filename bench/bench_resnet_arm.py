"""Prediction throughput of ARM's own network (`resnet18_arm`) against its baseline (`resnet18`).

Both are built by `cnn_model` as the official networks (no embedding heads, the converted
checkpoints' `arm_affinity="sample"`) at 224 px with random weights, and timed with
`predict_on_batch` (graph mode) at each batch size; with torch installed, the same networks
restated in PyTorch (tests/torch_arm_reference.py, eval mode, no_grad) are timed on the same
threads. All of them take turns in each round and the best round counts, so the ratios hold
better than the absolute figures on a shared machine.

Run: `python bench/bench_resnet_arm.py [--batch-sizes 1 16] [--rounds 4] [--threads 2]`.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def _keras_runners(batch_sizes):
    from adcorre.models.cnn_model import TORCH_ARCHES, CNNModel  # resnet18 first: the baseline

    rng = np.random.default_rng(0)
    inputs = {b: rng.random((b, 224, 224, 3), dtype="float32") for b in batch_sizes}
    runners = {}
    for arch in TORCH_ARCHES:
        model = CNNModel().get_model(arch, weights=None, arm_affinity="sample")
        for batch in batch_sizes:
            runners["keras", arch, batch] = (
                lambda model=model, x=inputs[batch]: model.predict_on_batch(x))
    return runners


def _torch_runners(batch_sizes, threads):
    try:
        import torch
    except ImportError:
        return {}
    try:
        import torch_arm_reference  # the tests' torch restatement: tests/ on PYTHONPATH
    except ImportError:
        raise SystemExit("run as PYTHONPATH=tests python bench/bench_resnet_arm.py (its PyTorch "
                         "side is the tests' tests/torch_arm_reference.py)") from None

    torch.set_num_threads(threads)
    networks = torch_arm_reference.networks(torch)
    modules = {"resnet18": networks["official_resnet18"]().eval(),
               "resnet18_arm": networks["arm"]().eval()}
    inputs = {b: torch.rand(b, 3, 224, 224) for b in batch_sizes}
    runners = {}

    def run(module, x):
        with torch.no_grad():
            return module(x)

    for arch, module in modules.items():
        for batch in batch_sizes:
            runners["torch", arch, batch] = (
                lambda module=module, x=inputs[batch]: run(module, x))
    return runners


def measure(runners, images, rounds):
    """Images/s of each runner: the best of `rounds` passes of about `images` pictures.

    The runners take turns within each round, so load from other jobs on a shared machine
    falls on all of them alike and the ratios between them hold better than the figures.
    """
    for run in runners.values():  # trace / warm up
        run()
        run()
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(rounds):
        for key, run in runners.items():
            steps = max(1, images // key[2])
            start = time.perf_counter()
            for _ in range(steps):
                run()
            best[key] = min(best[key], (time.perf_counter() - start) / (steps * key[2]))
    return {key: 1.0 / seconds for key, seconds in best.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--images", type=int, default=32, help="pictures per timed pass")
    parser.add_argument("--rounds", type=int, default=4, help="timed passes (the best counts)")
    parser.add_argument("--threads", type=int, default=2, help="torch's intra-op threads")
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    runners = _keras_runners(args.batch_sizes)
    runners.update(_torch_runners(args.batch_sizes, args.threads))
    speed = measure(runners, args.images, args.rounds)
    with_torch = any(key[0] == "torch" for key in speed)
    header = f"{'arch':<14}{'batch':>6}{'Keras img/s':>13}{'vs resnet18':>13}"
    if with_torch:
        header += f"{'torch img/s':>13}{'vs resnet18':>13}{'Keras/torch':>13}"
    print(header)
    from adcorre.models.cnn_model import TORCH_ARCHES  # loaded by the runners already

    for arch in TORCH_ARCHES:
        for batch in args.batch_sizes:
            ours = speed["keras", arch, batch]
            baseline = speed["keras", "resnet18", batch]
            line = f"{arch:<14}{batch:>6}{ours:>13.1f}{ours / baseline:>13.2f}"
            if with_torch:
                theirs = speed["torch", arch, batch]
                line += (f"{theirs:>13.1f}{theirs / speed['torch', 'resnet18', batch]:>13.2f}"
                         f"{ours / theirs:>13.2f}")
            print(line)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
