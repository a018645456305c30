"""The experiments `adcorre reproduce` runs: one record each, registered by name.

A record says everything a row of a paper's table needs: the dataset and its on-disk layout
(the SynthFER writer's options for `--data synth`), the settings handed to `TrainModel` (the
recipe and what the experiment changes), the arch, which Ad-Corre terms train, the test
protocol and split, how the reported epoch is selected (and how the paper selected it), the
paper's figure with its source, and the released file's name in the weights table. A new
experiment is one `register(Experiment(...))`; `--list`, the runner, the results files and
docs/reproduction.md's table all read `EXPERIMENTS`.

Every paper figure here is traceable: the source names the paper, the table or abstract, or the
official file or README line (repository, file, line, commit). Where the paper's own table could
not be read (the Ad-Corre paper's ablation tables are not in this repository), the figure is
None and the source says so; nothing is filled in from memory.

Example:
>>> EXPERIMENTS["adcorre-rafdb"].paper, EXPERIMENTS["adcorre-rafdb"].released
(86.96, 'adcorre-rafdb')
>>> resolve(["ablation-loss"])[:2]
['adcorre-rafdb-ce', 'adcorre-rafdb-ce-fd']
>>> EXPERIMENTS["arm-rafdb"].train_settings(seed=1)["recipe"]
'arm'

This module imports nothing of ours but `config` and `errors` (no Keras, no pandas).
"""

import dataclasses
import difflib

from adcorre.config import DatasetName
from adcorre.errors import SettingError

# The Ad-Corre terms a run can train with, besides cross-entropy (custom_loss.AdCorreLoss).
LOSS_TERMS = ("fd", "md", "ed")

# The splits as the datasets publish them, which the time estimate counts steps from (a
# reproduction reads the real listing; the estimate needs no data). RAF-DB basic: 12,271 train /
# 3,068 test faces (EmoLabel/list_patition_label.txt). FER-2013: 28,709 Training, 3,589
# PublicTest + 3,589 PrivateTest (fer2013.csv's Usage). AffectNet's hand-labelled faces
# (Mollahosseini et al., IEEE TAC 2017): 283,901 of the 7 basic classes in training.csv, the
# largest Happy with 134,415; validation.csv (its test set) 500 per class.
SPLIT_SIZES = {
    DatasetName.rafdb: {"train": 12271, "test": 3068, "largest_class": 4772},
    DatasetName.fer2013: {"train": 28709, "test": 7178, "largest_class": 7215},
    DatasetName.affectnet: {"train": 283901, "test": 3500, "largest_class": 134415},
}

_AD_CORRE = "aliprf/Ad-Corre"
_ARM = "sunmusik/Amend-Representation-Module"
_AD_CORRE_PAPER = ("Fard & Mahoor, IEEE Access 10:26756-26768 (2022), "
                   "doi:10.1109/ACCESS.2022.3156598")
_AD_CORRE_SELECTION = (
    "by test: the official train.py (train.py:174-178 at 53aa0cc) scores the test set after "
    "every epoch and saves each epoch's file named with that accuracy; the released files carry "
    "such a figure in their names")
_ARM_SELECTION = (
    "by test: train_raf-db.py (lines 64, 124-165 at fb8a155) scores the test split, which it "
    "calls validation, after every epoch and keeps the best")
_OWN_SELECTION = (
    "by a validation split (val_fraction of the training split, stratified and seeded); the "
    "best test accuracy of any epoch is given beside it as the optimistic figure, the papers' way")


@dataclasses.dataclass(frozen=True)
class Toy:
    """The toy scale of `--data synth`: SynthFER in the dataset's layout, a few steps.

    Attributes:
        faces: SynthFER faces written (a quarter of them the test split), balanced over the 7
            classes so that a small validation share still holds every class.
        image_size: the side SynthFER draws them at (FER-2013's layout is 48 px grey anyway).
        input_size: the model's input side (Xception needs 71 px; ARM after ResNet-18 33).
        batch_size, steps_per_epoch, epochs, val_fraction: the run's.
        eager: train without building a graph: for a handful of steps of Xception on a CPU the
            graph costs more (tens of seconds) than the steps themselves.
    """

    faces: int = 120
    image_size: int = 72
    input_size: int = 71
    batch_size: int = 8
    steps_per_epoch: int = 2
    epochs: int = 1
    val_fraction: float = 0.2
    eager: bool = True


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One row of a table: what to run, how to score it, and what the paper reported.

    Attributes:
        name: what `adcorre reproduce NAME` takes.
        title: one line for `--list` and the results.
        dataset: a `config.DatasetName`.
        layout: `synth_faces.write_dataset` options of `--data synth` (the dataset's own layout).
        settings: `TrainModel` keywords beside the dataset, seed and folders (the recipe first).
        arch: the network (`--arch`).
        loss_terms: the Ad-Corre terms trained with cross-entropy; () is cross-entropy alone.
        protocol: `TestModels.evaluate`'s protocol: `"per_picture"` or `"arm"` (ARM's authors'
            batches of 64 in file order, each with its batch's affinity).
        test_split: the split scored (`"public_private_test"`: FER-2013's PublicTest + PrivateTest).
        read_options: `read_split` options of that split (RAF-DB's boxes, AffectNet's 7 classes).
        paper: the figure the paper reports, in percent, or None where it cannot be read here.
        paper_source: where `paper` comes from (paper, table or abstract, official file / README
            line), or why it is None.
        paper_selection: how the paper (or its official code) chose the reported epoch.
        released: the released file's name in the weights table (`adcorre weights`), or None.
        released_reported: the figure the released file's own name or README gives, in percent.
        family: `"paper"` (a row of a results table) or `"ablation"`.
        notes: what this reproduction chose where the sources are silent.
        toy: the `--data synth` scale.
    """

    name: str
    title: str
    dataset: str
    layout: dict
    settings: dict
    arch: str
    loss_terms: tuple = LOSS_TERMS
    protocol: str = "per_picture"
    test_split: str = "test"
    read_options: dict = dataclasses.field(default_factory=dict)
    paper: float = None
    paper_source: str = ""
    paper_selection: str = ""
    released: str = None
    released_reported: float = None
    family: str = "paper"
    notes: str = ""
    toy: Toy = Toy()

    @property
    def selection(self):
        """How this reproduction selects the reported epoch, in words."""
        return _OWN_SELECTION if self.settings.get("val_fraction") else "by test (optimistic)"

    def train_settings(self, seed, synth=False):
        """The `TrainModel` keywords of one run (dataset, recipe, the experiment's changes).

        Args:
            seed: the run's seed (data order, augmentation, initialisation).
            synth: the toy scale of `--data synth` (`toy`): no ImageNet weights, few steps.

        Returns:
            A dict of `TrainModel` keywords, without `data_dir` and `save_dir`.
        """
        settings = {"dataset_name": self.dataset, "seed": seed, **self.settings,
                    "test_split": self.test_split}
        if not self.loss_terms:
            settings["use_adcorre"] = False
        if synth:
            toy = self.toy
            settings.update(weights=None, input_size=toy.input_size, batch_size=toy.batch_size,
                            epochs=toy.epochs, steps_per_epoch=toy.steps_per_epoch,
                            val_fraction=toy.val_fraction, backup_every=max(toy.steps_per_epoch, 1))
        return settings

    def command(self, seeds, data="real", released=False):
        """The command that reproduces this row."""
        words = ["adcorre", "reproduce", self.name, "--seeds", str(seeds)]
        if data == "synth":
            words += ["--data", "synth"]
        if released:
            words.append("--released")
        return " ".join(words)


EXPERIMENTS = {}
# Names that stand for several experiments (`adcorre reproduce ablation-loss`).
GROUPS = {}


def register(experiment):
    """Adds `experiment` to `EXPERIMENTS` (its name must be new) and returns it."""
    if experiment.name in EXPERIMENTS or experiment.name in GROUPS:
        raise SettingError(f"An experiment or group named {experiment.name!r} exists already.")
    unknown = set(experiment.loss_terms) - set(LOSS_TERMS)
    if unknown:
        raise SettingError(f"loss_terms of {experiment.name!r} must be among {LOSS_TERMS}, got "
                           f"{sorted(unknown)}.")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def variant(base, name, title, **changes):
    """A registered copy of experiment `base` with `changes` (its `settings` merged, not
    replaced), as an ablation: no released file, the paper's figure where one is given."""
    settings = {**base.settings, **changes.pop("settings", {})}
    fields = dict(family="ablation", released=None, released_reported=None, paper=None,
                  paper_source=changes.pop("paper_source", _ABLATION_SOURCE))
    return register(dataclasses.replace(base, name=name, title=title, settings=settings,
                                        **{**fields, **changes}))


def resolve(names):
    """The experiment names `names` stand for (groups expanded), each once, in order.

    Raises:
        SettingError: a name that is neither an experiment nor a group (with the closest ones).
    """
    chosen = []
    for name in names:
        if name in GROUPS:
            members = GROUPS[name]
        elif name in EXPERIMENTS:
            members = [name]
        else:
            known = list(EXPERIMENTS) + list(GROUPS)
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise SettingError(f"Unknown experiment {name!r}{hint} Expected one of "
                               f"{', '.join(known)} (adcorre reproduce --list).")
        chosen += [member for member in members if member not in chosen]
    return chosen


# ------------------------------------------------------------------------ the papers' rows

# ResNet-18's ARM needs a 2 x 2 map after the backbone (33 px); 64 px gives it one.
_RESNET18_TOY = Toy(input_size=64)

def _ad_corre_row(name, dataset, figure, file, on, **fields):
    """A row of Ad-Corre's results table: Xception, k = 7, CE + FD + MD + ED, the adcorre recipe
    with a validation split, the official file of that figure released."""
    return register(Experiment(
        name=name, title=f"Ad-Corre: Xception, k = 7, CE + FD + MD + ED on {on}", dataset=dataset,
        arch="xcp", paper=figure, released=name, released_reported=figure,
        paper_source=(f"{_AD_CORRE_PAPER}, results on {on} (the table's number is not checked "
                      f"here); the official file {file} ({_AD_CORRE} trained_models/, added in "
                      "2d4f8af)"),
        paper_selection=_AD_CORRE_SELECTION, **fields))


ADCORRE_RAFDB = _ad_corre_row(
    "adcorre-rafdb", DatasetName.rafdb, 86.96, "RafDB_8696.h5", "RAF-DB",
    # The official config names RAF-DB's original photos and their boxes (config.py:89-90 at
    # 53aa0cc: RafDBConf.orig_image_path, orig_bounding_box), not the aligned faces.
    layout={"layout": "rafdb", "aligned": False},
    settings={"recipe": "adcorre", "rafdb_images": "original", "val_fraction": 0.1},
    read_options={"aligned": False},
    notes="RAF-DB's original photos cropped by their boxes, as the official config names them.")

_ad_corre_row(
    "adcorre-affectnet", DatasetName.affectnet, 63.36, "AffectNet_6336.h5",
    "AffectNet, 7 classes", layout={"layout": "affectnet"},
    # 7 classes: the official README and main.py train DatasetType.train_7 (README.md:75,
    # main.py:11 at 53aa0cc). No official file shows a class-balanced copy (train.py:98 reads
    # num_of_samples_train_7 = 0, config.py:144, and never uses it), so no MRR.
    settings={"recipe": "adcorre", "ds_type": "train_7", "mrr": False, "val_fraction": 0.1},
    read_options={"num_classes": 7},
    notes="Trained on training.csv as it is (no MRR): what the official files show.")

_ad_corre_row(
    "adcorre-fer2013", DatasetName.fer2013, 72.03, "Fer2013_7203.h5",
    "FER-2013 (PublicTest + PrivateTest)", layout={"layout": "fer2013"},
    settings={"recipe": "adcorre", "val_fraction": 0.1},
    # config.py:72-74 at 53aa0cc: "both public&private test", the set the 72.03 % was scored on.
    test_split="public_private_test",
    notes=("All 7,178 faces scored; the official loop scored at most 7,150 (batches of 50, the "
           "last incomplete one dropped)."))

ARM_RAFDB = register(Experiment(
    name="arm-rafdb",
    title="ARM: ResNet-18 + ARM, cross-entropy, ARM's recipe, on RAF-DB",
    dataset=DatasetName.rafdb,
    # dataset.py:28-33 at fb8a155 reads Image/aligned/*_aligned.jpg.
    layout={"layout": "rafdb", "aligned": True},
    settings={"recipe": "arm", "rafdb_images": "aligned", "val_fraction": 0.1},
    arch="resnet18_arm",
    loss_terms=(),
    protocol="arm",
    read_options={"aligned": True},
    # 90.42: the paper's latest version and the README's figure since 2021-10-11; 92.05 was the
    # v2 abstract's and the README's from 2021-06-25 to 2021-10-11, and is the released file's.
    paper=90.42,
    paper_source=("Shi, Zhu & Liang, arXiv:2103.10189v3 (2021-10-11), abstract; "
                  f"{_ARM} README.md:9 at fb8a155. The released epoch59_acc0.9205.pth carries "
                  "92.05, the figure of v2 (2021-06-27) and of the README from 94ecac4 to "
                  "f5aaf79; v1 and the first README (d2da5bb) said 90.55"),
    paper_selection=_ARM_SELECTION,
    released="arm-rafdb",
    released_reported=92.05,
    notes="The paper's latest figure (90.42); the released checkpoint is the v2 run (92.05).",
    toy=_RESNET18_TOY,
))

register(Experiment(
    name="arm-affectnet",
    title="ARM: ResNet-18 + ARM, cross-entropy, ARM's recipe, on AffectNet, 7 classes",
    dataset=DatasetName.affectnet,
    layout={"layout": "affectnet"},
    # ARM's repository has no AffectNet code: its README (line 9 at fb8a155) names MRR against
    # the class imbalance, which is what AffectNet has; the class count is not stated there.
    settings={"recipe": "arm", "ds_type": "train_7", "mrr": True, "val_fraction": 0.1},
    arch="resnet18_arm",
    loss_terms=(),
    protocol="arm",
    read_options={"num_classes": 7},
    paper=65.2,
    paper_source=("Shi, Zhu & Liang, arXiv:2103.10189v2 and v3, abstract; "
                  f"{_ARM} README.md:9 at fb8a155 (since e4d727e; v1 said 64.49)"),
    paper_selection="not stated: ARM's repository has no AffectNet code",
    notes=("ARM's RAF-DB recipe on AffectNet with MRR; 7 classes (the sources do not say), "
           "this project's choice."),
    toy=_RESNET18_TOY,
))

# ------------------------------------------------------------------------- the ablations

_ABLATION_SOURCE = ("not stated here: the paper's ablation table is not in this repository, "
                    "and no figure is filled in from memory")

variant(ADCORRE_RAFDB, "adcorre-rafdb-ce", "ablation: Xception, k = 7, cross-entropy alone on "
        "RAF-DB", loss_terms=())
for _term in LOSS_TERMS:
    variant(ADCORRE_RAFDB, f"adcorre-rafdb-ce-{_term}",
            f"ablation: Xception, k = 7, CE + {_term.upper()} alone on RAF-DB",
            loss_terms=(_term,))
variant(ADCORRE_RAFDB, "adcorre-rafdb-k1", "ablation: Xception, one embedding head (k = 1), "
        "CE + FD + MD + ED on RAF-DB", settings={"num_embeddings": 1},
        notes="k = 1: the smallest k, the official cnn_model.py's one-head branch (lines 95-98 at "
              "53aa0cc); this project's choice of value.")
variant(ADCORRE_RAFDB, "adcorre-rafdb-k10", "ablation: Xception, k = 10 heads, CE + FD + MD + "
        "ED on RAF-DB", settings={"num_embeddings": 10},
        notes="k = 10: the official config.py's num_embeddings (line 49 at 53aa0cc; k = 7 is "
              "commented out on line 48).")
variant(ADCORRE_RAFDB, "adcorre-rafdb-xcp-arm", "ablation: Xception + ARM in place of global "
        "average pooling, k = 7, CE + FD + MD + ED on RAF-DB", arch="xcp_arm")
variant(ARM_RAFDB, "arm-rafdb-gap", "ablation: ResNet-18 + global average pooling (no ARM), "
        "ARM's recipe on RAF-DB", arch="resnet18",
        paper_source=("not stated here: ARM's ablation table (arXiv:2103.10189) is not in this "
                      "repository, and no figure is filled in from memory"))

GROUPS.update({
    "papers": ["adcorre-rafdb", "adcorre-affectnet", "adcorre-fer2013", "arm-rafdb",
               "arm-affectnet"],
    "ablation-loss": ["adcorre-rafdb-ce", "adcorre-rafdb-ce-fd", "adcorre-rafdb-ce-md",
                      "adcorre-rafdb-ce-ed", "adcorre-rafdb"],
    "ablation-heads": ["adcorre-rafdb-k1", "adcorre-rafdb", "adcorre-rafdb-k10"],
    "ablation-pooling": ["adcorre-rafdb", "adcorre-rafdb-xcp-arm", "arm-rafdb-gap", "arm-rafdb"],
})
GROUPS["all"] = list(EXPERIMENTS)
