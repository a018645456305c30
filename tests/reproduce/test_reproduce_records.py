"""The experiment records, the command's checks before TensorFlow loads, and `--list`.

Every record must be runnable as written: its settings are ones `LearningConfig` takes (full
scale and toy scale), its layout one SynthFER writes, its dataset one the estimate knows; every
paper figure names where it comes from, and the ablations whose table cannot be read here carry
none.
"""

import dataclasses
import os

import pytest

from adcorre.cli import reproduce as reproduce_cli
from adcorre.config import LearningConfig
from adcorre.data import synth_faces
from adcorre.errors import SettingError
from adcorre.reproduce import experiments
from adcorre.reproduce.experiments import EXPERIMENTS, GROUPS, resolve
from helpers import run_python

PAPER_ROWS = {"adcorre-rafdb": 86.96, "adcorre-affectnet": 63.36, "adcorre-fer2013": 72.03,
              "arm-rafdb": 90.42, "arm-affectnet": 65.2}


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_each_record_is_a_run_learning_config_takes_at_both_scales(name):
    experiment = EXPERIMENTS[name]
    for synth in (False, True):
        settings = experiment.train_settings(seed=3, synth=synth)
        config = LearningConfig.from_recipe(settings.pop("recipe"), **settings)
        assert config.dataset_name == experiment.dataset and config.seed == 3
        assert config.test_split == experiment.test_split
        assert config.use_adcorre == bool(experiment.loss_terms)
    assert experiment.layout["layout"] in synth_faces.LAYOUTS
    assert experiment.dataset in experiments.SPLIT_SIZES
    assert experiment.protocol in ("per_picture", "arm")
    toy = experiment.train_settings(seed=0, synth=True)
    assert toy["weights"] is None and toy["steps_per_epoch"] <= 4 and toy["epochs"] == 1


def test_the_papers_rows_carry_their_figures_and_sources():
    for name, figure in PAPER_ROWS.items():
        experiment = EXPERIMENTS[name]
        assert experiment.paper == figure and experiment.family == "paper"
        assert "arXiv:2103.10189" in experiment.paper_source or "IEEE Access" in experiment.paper_source
    # 90.42 is the latest version's; the released checkpoint is the run of 92.05.
    arm = EXPERIMENTS["arm-rafdb"]
    assert (arm.released, arm.released_reported) == ("arm-rafdb", 92.05)
    assert "v3" in arm.paper_source and "92.05" in arm.paper_source
    for name in ("adcorre-rafdb", "adcorre-affectnet", "adcorre-fer2013"):
        assert f"_{str(PAPER_ROWS[name]).replace('.', '')}" in EXPERIMENTS[name].paper_source
    assert EXPERIMENTS["adcorre-fer2013"].test_split == "public_private_test"
    assert EXPERIMENTS["arm-rafdb"].protocol == "arm" and EXPERIMENTS["arm-affectnet"].protocol == "arm"
    # What can be shown of the official AffectNet run: 7 classes, no balanced copy.
    affectnet = EXPERIMENTS["adcorre-affectnet"].train_settings(0)
    assert (affectnet["ds_type"], affectnet["mrr"]) == ("train_7", False)


def test_the_ablations_cover_each_term_the_heads_and_the_pooling_without_invented_figures():
    terms = {EXPERIMENTS[name].loss_terms for name in GROUPS["ablation-loss"]}
    assert terms == {(), ("fd",), ("md",), ("ed",), ("fd", "md", "ed")}
    heads = [EXPERIMENTS[name].train_settings(0).get("num_embeddings") for name in GROUPS["ablation-heads"]]
    assert heads == [1, None, 10]  # None: the recipe's k = 7
    arches = [EXPERIMENTS[name].arch for name in GROUPS["ablation-pooling"]]
    assert arches == ["xcp", "xcp_arm", "resnet18", "resnet18_arm"]
    for experiment in EXPERIMENTS.values():
        if experiment.family == "ablation":
            assert experiment.paper is None and "not stated" in experiment.paper_source
            assert experiment.released is None


def test_names_and_groups_resolve_once_each_and_a_typo_is_one_error():
    assert resolve(["adcorre-rafdb", "ablation-heads"]) == [
        "adcorre-rafdb", "adcorre-rafdb-k1", "adcorre-rafdb-k10"]
    assert resolve(["all"]) == list(EXPERIMENTS)
    with pytest.raises(SettingError, match="'adcorre-rafbd'; did you mean adcorre-rafdb"):
        resolve(["adcorre-rafbd"])
    with pytest.raises(SettingError, match="exists already"):
        experiments.register(dataclasses.replace(EXPERIMENTS["arm-rafdb"]))
    with pytest.raises(SettingError, match="loss_terms"):
        experiments.register(dataclasses.replace(EXPERIMENTS["arm-rafdb"], name="x",
                                                 loss_terms=("fd", "cos")))


def test_list_names_every_experiment_with_its_figure_and_loads_no_tensorflow():
    code = """
import sys
from adcorre.cli import main
status = main.main(["reproduce", "--list"])
assert status == 0
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "loaded"
"""
    run = run_python(code, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    for name, experiment in EXPERIMENTS.items():
        line = next(line for line in lines if line.startswith(name + " "))
        figure = f"{experiment.paper:.2f}" if experiment.paper is not None else "-"
        assert figure in line, line
    assert "source: Shi, Zhu & Liang, arXiv:2103.10189v3" in run.stdout
    assert "groups: papers = adcorre-rafdb adcorre-affectnet" in run.stdout


@pytest.mark.parametrize("argv, said", [
    ([], "name at least one experiment"),
    (["adcorre-rafbd"], "did you mean adcorre-rafdb"),
    (["adcorre-rafdb-ce", "--released"], "none of adcorre-rafdb-ce has a released file"),
    (["adcorre-rafdb", "--seeds", "0"], "--seeds"),
    (["adcorre-rafdb", "--data", "fake"], "invalid choice: 'fake'"),
])
def test_bad_commands_are_one_usage_error_before_anything_runs(argv, said, capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        reproduce_cli.main([*argv, "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def test_real_data_that_is_not_there_is_named_before_tensorflow_loads(capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        reproduce_cli.main(["arm-rafdb", "--data-root", str(tmp_path), "--out",
                            str(tmp_path / "out")])
    assert stopped.value.code == 2
    assert str(tmp_path / "rafdb") in capsys.readouterr().err


def test_a_results_folder_holds_one_kind_of_data(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "reproduce.json").write_text('{"data": "real"}')
    status = reproduce_cli.main(["adcorre-rafdb", "--data", "synth", "--out", str(tmp_path / "out")])
    assert status == 2
    assert "holds runs on 'real' data, not 'synth'" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "out")) == ["reproduce.json"]
