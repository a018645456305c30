"""Results over seeds, and the time estimate and its question, against independent arithmetic.

The 95 % interval is checked against Student's t quantiles as printed in tables (t(0.975, 1) =
12.706, t(0.975, 2) = 4.303, t(0.975, 4) = 2.776), the means and spreads against `statistics`;
the estimate against the sum written out by hand for a stand-in timer.
"""

import csv
import io
import statistics

import pytest

from adcorre.errors import SettingError
from adcorre.reproduce import estimate, results, runner
from adcorre.reproduce.experiments import EXPERIMENTS


@pytest.mark.parametrize("values, quantile", [([0.5, 0.7], 12.706), ([0.8, 0.82, 0.86], 4.303),
                                              ([0.1, 0.3, 0.2, 0.25, 0.4], 2.776)])
def test_the_interval_is_students_t_over_the_seeds(values, quantile):
    low, high = results.t_interval(values)
    half = quantile * statistics.stdev(values) / len(values) ** 0.5
    assert low == pytest.approx(statistics.mean(values) - half, abs=1e-4)
    assert high == pytest.approx(statistics.mean(values) + half, abs=1e-4)
    assert results.t_interval([0.9]) == (None, None)


def _result(seed, accuracy, optimistic, mean_class=0.5):
    return {"seed": seed, "accuracy": accuracy, "optimistic": optimistic,
            "mean_class_accuracy": mean_class, "selected_by": "validation"}


def test_a_row_is_the_mean_spread_and_interval_in_percent(tmp_path):
    experiment = EXPERIMENTS["adcorre-rafdb"]
    found = [_result(0, 0.80, 0.83, 0.6), _result(1, 0.84, 0.85, 0.7), _result(2, 0.86, 0.88, 0.8)]
    row = results.aggregate(experiment, found, {"accuracy": 0.8696}, "real",
                            figure=str(tmp_path / "figures" / "x.png"), out=str(tmp_path),
                            released_asked=True)
    accuracies = [0.80, 0.84, 0.86]
    assert row["paper"] == "86.96" and row["released"] == "86.96" and row["seeds"] == "3"
    assert row["mean"] == f"{100 * statistics.mean(accuracies):.2f}"
    assert row["std"] == f"{100 * statistics.stdev(accuracies):.2f}"
    half = 4.303 * statistics.stdev(accuracies) / 3 ** 0.5
    assert float(row["ci95_low"]) == pytest.approx(100 * (statistics.mean(accuracies) - half), abs=0.01)
    assert row["optimistic"] == f"{100 * statistics.mean([0.83, 0.85, 0.88]):.2f}"
    assert row["mean_class_accuracy"] == "70.00" and row["selection"] == "validation"
    assert row["confusion_matrix"] == "figures/x.png"
    assert row["command"] == "adcorre reproduce adcorre-rafdb --seeds 3 --released"
    one = results.aggregate(experiment, found[:1], None, "synth", figure=str(tmp_path / "f.png"),
                            out=str(tmp_path))
    assert (one["std"], one["ci95_low"], one["released"]) == ("", "", "")
    assert one["data"] == "SynthFER, not a paper figure"
    assert one["command"] == "adcorre reproduce adcorre-rafdb --seeds 1 --data synth"


def test_results_files_keep_the_rows_of_earlier_commands(tmp_path):
    figure = str(tmp_path / "f.png")
    first = results.aggregate(EXPERIMENTS["arm-rafdb"], [_result(0, 0.9, 0.91)], None, "real",
                              figure=figure, out=str(tmp_path))
    results.write(str(tmp_path), [first], "real")
    second = results.aggregate(EXPERIMENTS["adcorre-rafdb"], [_result(0, 0.8, 0.82)], None,
                               "real", figure=figure, out=str(tmp_path))
    written = results.write(str(tmp_path), [second], "real")
    assert [row["experiment"] for row in written] == ["adcorre-rafdb", "arm-rafdb"]
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(results.COLUMNS)
    assert [(r["experiment"], r["paper"], r["mean"]) for r in rows] == [
        ("adcorre-rafdb", "86.96", "80.00"), ("arm-rafdb", "90.42", "90.00")]
    page = (tmp_path / "results.md").read_text()
    assert "| adcorre-rafdb | real | 86.96 | — | 80.00 |" in page
    assert "`adcorre reproduce arm-rafdb --seeds 1`" in page
    assert "- machine: " in page and "- versions: Python " in page and "- written: " in page


# ------------------------------------------------------------------------------- estimate


def test_train_steps_come_from_the_published_splits():
    config = estimate.learning_config(EXPERIMENTS["adcorre-rafdb"])
    held = round(12271 * 0.1)
    assert estimate.train_steps(EXPERIMENTS["adcorre-rafdb"], config) == (
        (12271 - held) // 50, 3068 + held)
    arm = EXPERIMENTS["arm-affectnet"]  # MRR: 7 classes topped up to Happy's 134,415
    config = estimate.learning_config(arm)
    held = round(283901 * 0.1)
    assert estimate.train_steps(arm, config) == ((7 * 134415 - held) // 256, 3500 + held)


def test_the_estimate_adds_up_the_runs_and_times_each_network_once(tmp_path):
    timed = []

    def timer(config, arch):
        timed.append((arch, config.batch_size))
        return estimate.StepTiming(startup=10.0, step=2.0, timed_batch=config.batch_size,
                                   device="Device: 1 GPU (NVIDIA H100 80GB HBM3), TensorFlow 2.21.0")

    names = ["adcorre-rafdb", "adcorre-rafdb-ce", "arm-rafdb"]
    runs = [runner.Run(EXPERIMENTS[name], seed, str(tmp_path)) for name in names for seed in (0, 1)]
    lines, total = estimate.estimate(runs, timer=timer)
    # One timing per network: the CE-only variant's differs only in its loss.
    assert timed == [("xcp", 50), ("resnet18_arm", 256)]
    expected = 0.0
    for name in names:
        config = estimate.learning_config(EXPERIMENTS[name])
        steps, scored = estimate.train_steps(EXPERIMENTS[name], config)
        scoring = -(-scored // config.batch_size)
        expected += 2 * (10.0 + config.epochs * (steps + scoring / 3) * 2.0)
    assert total == pytest.approx(expected)
    assert lines[-1] == (f"In all {estimate.describe_duration(expected)} on this GPU "
                         "(1 GPU (NVIDIA H100 80GB HBM3)).")
    assert any(line.startswith("  arm-rafdb: 2 runs x 70 epochs x ") for line in lines)


def test_a_step_is_timed_for_real_and_scaled_from_a_smaller_cpu_batch():
    config = estimate.LearningConfig.from_recipe(
        "synth_demo", input_size=32, batch_size=2 * estimate.CPU_TIMED_BATCH, num_embeddings=2,
        embedding_size=8)
    timing = estimate.time_train_steps(config, "tiny", steps=2)
    assert timing.timed_batch == estimate.CPU_TIMED_BATCH  # no GPU here
    assert timing.startup > 0 and timing.step > 0 and timing.device.startswith("Device: CPU")


def test_over_an_hour_it_asks_and_without_a_terminal_it_refuses():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert estimate.confirm(3000, yes=False, stdin=io.StringIO())  # under an hour: no question
    assert estimate.confirm(9 * 3600, yes=True, stdin=io.StringIO())
    with pytest.raises(SettingError, match=r"about 9\.0 h, and stdin is not a terminal.*--yes"):
        estimate.confirm(9 * 3600, yes=False, stdin=io.StringIO())
    asked = []
    assert estimate.confirm(9 * 3600, False, Terminal(), ask=lambda q: asked.append(q) or "y")
    assert not estimate.confirm(9 * 3600, False, Terminal(), ask=lambda q: "")
    assert asked == ["Go on? [y/N] "]


def test_a_long_reproduction_without_yes_starts_nothing(tmp_path, monkeypatch, capsys):
    from adcorre.cli import reproduce as reproduce_cli
    from adcorre.data import synth_faces

    synth_faces.write_dataset(str(tmp_path / "data" / "rafdb"), layout="rafdb", n=20,
                              image_size=32, aligned=False)
    monkeypatch.setattr(estimate, "time_train_steps", lambda config, arch: estimate.StepTiming(
        startup=60.0, step=30.0, timed_batch=32, device="Device: CPU (2 cores; no GPU found)"))
    monkeypatch.setattr("sys.stdin", io.StringIO())
    out = tmp_path / "out"
    status = reproduce_cli.main(["adcorre-rafdb", "--data-root", str(tmp_path / "data"), "--out",
                                 str(out)])
    said = capsys.readouterr()
    assert status == 2
    assert "In all about " in said.out and "on this CPU (2 cores)" in said.out
    assert "stdin is not a terminal to ask on: pass --yes" in said.err
    assert not (out / "runs").exists()
    # --estimate says the same and stops, whatever the length.
    assert reproduce_cli.main(["adcorre-rafdb", "--estimate", "--out", str(out)]) == 0
    assert "adcorre-rafdb: 1 run x 30 epochs x 220 steps of 50" in capsys.readouterr().out
