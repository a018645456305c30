"""Is a seeded run repeatable, and what does TensorFlow's op determinism cost? (issue 15)

Trains the SynthFER demo recipe (`tiny`, 64 px) for a few epochs in child processes, one
setting at a time, alternating them so machine load falls on all alike, and compares each
run's final weights bit for bit with the first plain run:

- `plain`: the run as `python train.py` makes it (seeded, deterministic tf.data);
- `op determinism`: `tf.config.experimental.enable_op_determinism()` before training;
- `1 thread`: TensorFlow limited to one intra-op and one inter-op thread, standing in for a
  machine with another core count (oneDNN and Eigen split their sums by thread).

Prints seconds per run (training only, imports excluded), the cost ratio of op determinism
and whether the weights equal. Usage:

    python bench/bench_determinism.py [--repeats 2] [--epochs 2] [--train 2000]
"""

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import hashlib, json, sys, tempfile, time
from adcorre import runtime  # TensorFlow without its start-up noise
import tensorflow as tf
setting, epochs, train_size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if setting == "op determinism":
    tf.config.experimental.enable_op_determinism()
if setting == "1 thread":
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
from adcorre.training.train_model import TrainModel
from adcorre.models import weights_io
with tempfile.TemporaryDirectory() as folder:
    start = time.perf_counter()
    trainer = TrainModel(dataset_name="synth", epochs=epochs, synth_train_size=train_size,
                         synth_test_size=500, save_dir=folder, verbose=0)
    trainer.train()
    seconds = time.perf_counter() - start
    with open(folder + "/training_state.json") as handle:
        state = json.load(handle)
    model, _ = weights_io.load_model(state["latest_path"])
digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()[:16]
print("RESULT" + json.dumps({"seconds": seconds, "digest": digest,
                             "accuracy": [h["test_accuracy"] for h in state["history"]]}))
"""

SETTINGS = ("plain", "op determinism", "1 thread")


def run(setting, epochs, train_size):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-c", CHILD, REPO, setting, str(epochs),
                           str(train_size)], capture_output=True, text=True, env=env,
                          check=False, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{setting} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.split("RESULT", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train", type=int, default=2000, help="SynthFER training faces")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs", flush=True)
    results = {setting: [] for setting in SETTINGS}
    for _ in range(args.repeats):
        for setting in SETTINGS:
            result = run(setting, args.epochs, args.train)
            results[setting].append(result)
            print(f"{setting:<15} {result['seconds']:7.1f} s  weights {result['digest']}  "
                  f"test accuracy per epoch {result['accuracy']}", flush=True)
    reference = results["plain"][0]["digest"]
    print()
    for setting in SETTINGS:
        seconds = [r["seconds"] for r in results[setting]]
        same = sum(r["digest"] == reference for r in results[setting])
        print(f"{setting:<15} mean {sum(seconds) / len(seconds):7.1f} s; weights equal to the "
              f"first plain run's in {same} of {len(seconds)} runs")
    # Paired by repeat, so each ratio compares runs made back to back.
    ratios = [d["seconds"] / p["seconds"]
              for p, d in zip(results["plain"], results["op determinism"])]
    print("op determinism / plain, per repeat: " + ", ".join(f"{r:.2f}" for r in ratios))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
