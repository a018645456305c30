"""Fixtures shared by the training tests."""

import pytest


@pytest.fixture
def config_of_train_cli(monkeypatch, tmp_path):
    """A function that runs `adcorre train`'s `main(argv)` up to training and returns the
    `LearningConfig` it built (the RAF-DB folder it checks for holds no face)."""
    from adcorre.cli import train as train_cli
    from adcorre.training.train_model import TrainModel

    # The CLI checks, before TF loads, that the folder holds what marks RAF-DB (the record's
    # `required`): an empty label file and image folder pass that check.
    (tmp_path / "rafdb" / "EmoLabel").mkdir(parents=True)
    (tmp_path / "rafdb" / "EmoLabel" / "list_patition_label.txt").write_text("")
    (tmp_path / "rafdb" / "Image" / "aligned").mkdir(parents=True)
    monkeypatch.setenv("FER_DATA_ROOT", str(tmp_path))
    configs = []
    monkeypatch.setattr(TrainModel, "train",
                        lambda self, arch=None, weight_path=None: configs.append(self.config))

    def config_of(argv):
        assert train_cli.main(argv) == 0
        return configs[-1]

    return config_of
