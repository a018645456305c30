"""The experiments end to end on SynthFER written in its dataset's own layout (`--data synth`).

One command runs, once (the module's fixture), an experiment of every arch, dataset, protocol
and kind of ablation (`END_TO_END`; the others differ from one of these in their record's
settings only, which tests/reproduce/test_reproduce_records.py checks for every experiment):
each trains at its toy scale, is scored by its paper's protocol through
`TestModels.evaluate`, and gets its row, its confusion matrix and its TensorBoard record. Then, in the same results folder, `adcorre-rafdb` with two seeds reuses
the finished seed 0, survives a stop while its seed 1 is being scored (the rerun resumes the run
and trains nothing again), and a third command trains nothing at all; `--released` scores the
released file, served by a loopback mirror in the official format (forged with tf_keras), once.
"""

import contextlib
import csv
import glob
import hashlib
import io
import json
import os
import statistics

import numpy as np
import pytest

from adcorre.cli import reproduce as reproduce_cli
from adcorre.reproduce import runner
from adcorre.reproduce.experiments import EXPERIMENTS

pytestmark = pytest.mark.slow
# Xception on RAF-DB (both photo kinds), AffectNet and FER-2013; ARM's ResNet-18 and its
# protocol; cross-entropy alone, one term alone, ten heads, ARM after Xception, plain pooling.
END_TO_END = ("adcorre-rafdb", "adcorre-affectnet", "adcorre-fer2013", "arm-rafdb",
              "adcorre-rafdb-ce", "adcorre-rafdb-ce-md", "adcorre-rafdb-k10",
              "adcorre-rafdb-xcp-arm", "arm-rafdb-gap")
LABEL = "SynthFER, not a paper figure"
PNG = b"\x89PNG\r\n\x1a\n"


def _reproduce(argv):
    """`adcorre reproduce argv`: (status, what it printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = reproduce_cli.main(argv)
    return status, printed.getvalue()


def _rows(out):
    with open(os.path.join(out, "results.csv"), newline="", encoding="utf-8") as handle:
        return {row["experiment"]: row for row in csv.DictReader(handle)}


def _result(out, name, seed=0):
    with open(os.path.join(out, "runs", name, f"seed{seed}", "result.json")) as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reproduction") / "out")
    status, printed = _reproduce([*END_TO_END, "--data", "synth", "--out", out])
    assert status == 0, printed[-3000:]
    return out, printed


def test_every_kind_of_experiment_runs_end_to_end_and_gets_its_row(reproduced):
    out, _ = reproduced
    rows = _rows(out)
    assert list(rows) == [name for name in EXPERIMENTS if name in END_TO_END]
    for name in END_TO_END:
        experiment = EXPERIMENTS[name]
        row = rows[name]
        assert (row["data"], row["seeds"], row["std"]) == (LABEL, "1", "")
        assert row["paper"] == ("" if experiment.paper is None else f"{experiment.paper:.2f}")
        result = _result(out, name)
        assert row["mean"] == f"{100 * result['accuracy']:.2f}"
        assert row["mean_class_accuracy"] == f"{100 * result['mean_class_accuracy']:.2f}"
        assert row["command"] == f"adcorre reproduce {name} --seeds 1 --data synth"
        with open(os.path.join(out, row["confusion_matrix"]), "rb") as handle:
            assert handle.read(8) == PNG
        # SynthFER in the dataset's own layout, 30 test faces of 120.
        assert result["num_samples"] == 30 and result["data"] == "synth"
    page = open(os.path.join(out, "results.md"), encoding="utf-8").read()
    assert f"**{LABEL}**" in page
    for name in END_TO_END:
        assert f"| {name} | {LABEL} |" in page


def test_each_run_is_scored_by_its_protocol_on_its_selected_epoch(reproduced):
    out, _ = reproduced
    for name in END_TO_END:
        experiment, result = EXPERIMENTS[name], _result(out, name)
        folder = os.path.join(out, "runs", name, "seed0")
        assert result["protocol"] == experiment.protocol
        assert result["test_split"] == experiment.test_split
        assert result["selected_by"] == "validation" and result["val_accuracy"] is not None
        assert os.path.exists(os.path.join(out, result["model"]))
        assert not os.path.exists(os.path.join(folder, "backup"))  # a finished run keeps its model
        if experiment.protocol == "arm":  # scored again in ARM's batches, not by the trainer
            assert os.path.exists(os.path.join(out, result["model"])[:-3] + "_protocol.png")
        matrix = np.array(result["confusion_matrix"])
        assert matrix.sum() == 30
        assert result["accuracy"] == pytest.approx(np.trace(matrix) / 30)


@pytest.mark.parametrize("name", ["adcorre-rafdb", "adcorre-fer2013"])
def test_the_trainers_score_is_the_per_picture_protocol(reproduced, name):
    """What a run reads back from its trainer equals `TestModels.evaluate` of the selected file
    on the same split (RAF-DB's photos cropped by their boxes; FER-2013's two test sets)."""
    from adcorre import TestModels

    out, _ = reproduced
    experiment, result = EXPERIMENTS[name], _result(out, name)
    data_dir = glob.glob(os.path.join(out, "data", experiment.layout["layout"] + "-*"))
    (data_dir,) = [d for d in data_dir if ("original" in d) == (name == "adcorre-rafdb")]
    summary = TestModels(os.path.join(out, result["model"]), verbose=False, detector=None).evaluate(
        experiment.dataset, data_dir, experiment.test_split, **experiment.read_options)
    assert summary["accuracy"] == pytest.approx(result["accuracy"], abs=1e-9)
    assert summary["confusion_matrix"].tolist() == result["confusion_matrix"]
    assert summary["mean_class_accuracy"] == pytest.approx(result["mean_class_accuracy"])


def _log(out, name):
    with open(os.path.join(out, "runs", name, "seed0", "log.csv"), newline="") as handle:
        return [{key: float(value) for key, value in row.items() if _number(value)}
                for row in csv.DictReader(handle)]


def _number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


@pytest.mark.parametrize("name, terms", [
    ("adcorre-rafdb", ("fd", "md", "ed")), ("adcorre-rafdb-ce", ()),
    ("adcorre-rafdb-ce-md", ("md",))])
def test_each_ablation_trains_with_exactly_its_terms(reproduced, name, terms):
    out, _ = reproduced
    (epoch,) = _log(out, name)
    # Every term is logged; the loss is 50/7 CE plus the terms the experiment trains with.
    assert all(epoch[term] > 0 for term in ("fd", "md", "ed"))
    expected = 50 / 7 * epoch["ce"] + sum(epoch[term] for term in terms)
    assert epoch["loss"] == pytest.approx(expected, rel=1e-4)


def test_every_figure_it_prints_says_synthfer(reproduced):
    _, printed = reproduced
    figures = [line for line in printed.splitlines()
               if line.split(" ")[0] in EXPERIMENTS and "%" in line]
    assert len(figures) == len(END_TO_END)
    assert all(line.endswith(f"({LABEL})") for line in figures), figures
    assert "SynthFER rows: SynthFER, not a paper figure." in printed
    assert f"SynthFER toy scale: {len(END_TO_END)} runs" in printed


def _events(folder):
    import tensorflow as tf

    events = []
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        events += list(tf.compat.v1.train.summary_iterator(path))
    return events


def test_tensorboard_holds_each_runs_hyperparameters_and_final_metrics(reproduced):
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    out, _ = reproduced
    for name in ("adcorre-rafdb-k10", "arm-rafdb"):
        hparams, scalars = {}, {}
        for event in _events(os.path.join(out, "tensorboard", name, "seed0")):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(
                        value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        hparams = dict(data.session_start_info.hparams)
                elif value.tag.startswith("reproduce/"):
                    scalars[value.tag] = float(tf.make_ndarray(value.tensor))
        result = _result(out, name)
        assert hparams["experiment"].string_value == name
        assert hparams["arch"].string_value == EXPERIMENTS[name].arch
        assert hparams["num_embeddings"].number_value == (10 if name.endswith("k10") else 0)
        assert scalars["reproduce/accuracy"] == pytest.approx(result["accuracy"])
        assert scalars["reproduce/optimistic"] == pytest.approx(result["optimistic"])
    root = _events(os.path.join(out, "tensorboard"))
    assert any(value.metadata.plugin_data.plugin_name == "hparams"
               for event in root for value in event.summary.value)


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A loopback server holding an official-format RafDB_8696.h5; the cache in tmp_path."""
    from forge_official import forge_official
    from weight_server import serving

    forged = forge_official(tmp_path / "RafDB_8696.h5", num_embeddings=2, input_size=71, seed=5)
    with serving({"RafDB_8696.h5": open(forged["path"], "rb").read()}) as server:
        monkeypatch.setenv("ADCORRE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("ADCORRE_WEIGHTS_MIRROR", server.url)
        yield server


def test_two_seeds_resume_after_a_stop_rerun_in_no_time_and_score_the_release(
        reproduced, mirror, monkeypatch):
    out, _ = reproduced
    command = ["adcorre-rafdb", "--data", "synth", "--seeds", "2", "--out", out]
    summed_up = runner._result

    def stop_once(*args, **kwargs):  # the run is stopped once its training is done
        monkeypatch.setattr(runner, "_result", summed_up)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_result", stop_once)
    status, printed = _reproduce(command)
    assert status == 130
    assert "[1/1] adcorre-rafdb seed 1" in printed  # seed 0 of the first command is reused
    folder = os.path.join(out, "runs", "adcorre-rafdb", "seed1")
    assert not os.path.exists(os.path.join(folder, "result.json"))
    (model,) = glob.glob(os.path.join(folder, "rafdb_1_AC_*.h5"))
    written = os.stat(model).st_mtime_ns

    status, printed = _reproduce(command)  # resumes: the run has trained, it is scored
    assert status == 0, printed[-2000:]
    assert "has finished its 1 epochs already" in printed
    assert os.stat(model).st_mtime_ns == written and len(_log(out, "adcorre-rafdb")) == 1
    row = _rows(out)["adcorre-rafdb"]
    accuracies = [_result(out, "adcorre-rafdb", seed)["accuracy"] for seed in (0, 1)]
    assert (row["paper"], row["seeds"], row["released"]) == ("86.96", "2", "")
    assert row["mean"] == f"{100 * statistics.mean(accuracies):.2f}"
    assert row["std"] == f"{100 * statistics.stdev(accuracies):.2f}"
    assert "| adcorre-rafdb | SynthFER, not a paper figure | 86.96 | — |" in open(
        os.path.join(out, "results.md"), encoding="utf-8").read()

    def nothing_may_train(*args, **kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(runner, "experiment_training", nothing_may_train)
    status, printed = _reproduce(command)  # the same command again: nothing to do
    assert status == 0 and "Every run has finished already." in printed

    status, printed = _reproduce([*command, "--released"])  # only the released file is scored
    assert status == 0, printed[-2000:]
    assert mirror.requests == ["/RafDB_8696.h5"]
    row = _rows(out)["adcorre-rafdb"]
    with open(os.path.join(out, "released", "adcorre-rafdb.json")) as handle:
        score = json.load(handle)
    digest = hashlib.sha256(mirror.files["RafDB_8696.h5"]).hexdigest()
    assert (score["sha256"], score["data"], score["num_samples"]) == (digest, "synth", 30)
    assert row["released"] == f"{100 * score['accuracy']:.2f}"
    assert row["command"].endswith("--seeds 2 --data synth --released")
    assert f"adcorre-rafdb: released adcorre-rafdb {row['released']} % ({LABEL})" in printed
    status, _ = _reproduce([*command, "--released"])
    assert status == 0 and mirror.requests == ["/RafDB_8696.h5"]  # scored once, fetched once
