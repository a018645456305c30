"""Every file the project can fetch, one record each, named `arch.tag` and grouped by arch.

A record says what the file is (its arch, the kind of file its loader must recognise, its
classes), where it comes from (address, source), how it is checked (a digest where one is
published) and what its authors reported. `resolve` takes a record's name (`xcp.rafdb`) or one
of its aliases (`adcorre-rafdb`); `weight_files` lists the records in the table's order. The
cache and the downloader that serve these files are `named_weights` and `downloads`; each
`registry.ArchSpec` names the record its `weights="imagenet"` reads (`ArchSpec.imagenet`).

A new released file is one record in the block of its arch. Its `arch` (the part of the name
before the dot) must be a registered arch (a contract test checks it).

Example:
>>> resolve("adcorre-rafdb").name, resolve("xcp.rafdb").file
('xcp.rafdb', 'RafDB_8696.h5')
>>> resolve("resnet18.imagenet").digest
'sha256:f37072fd'
>>> is_name("xcp.imagenet"), is_name("RafDB_8696.h5")
(True, False)

This module imports nothing of ours but `errors` (no Keras, no config), so the option parsers
read it before TensorFlow loads.
"""

import dataclasses

from adcorre.errors import SettingError

# What a record's `kind` promises: the loader that recognises the file, and what it then holds.
KINDS = {
    "official": "an official Ad-Corre Keras 2 .h5 model",
    "torch": "a PyTorch checkpoint",
    "keras_backbone": "a Keras applications backbone's ImageNet weights (no classifier)",
}
# The digests a record may carry: `algorithm:hex`, the hex whole or a prefix of it.
DIGEST_ALGORITHMS = ("sha256", "md5")


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One downloadable file.

    Attributes:
        name: `arch.tag` (`xcp.rafdb`): what `--weights`, `h5_address=` and `weights=` take.
        file: the file's own name (the cache keeps it; a mirror serves it under it).
        url: its official address, or None where it has no stable one (`how_to_get` then
            says where to find it).
        source: who publishes it, in a few words.
        kind: the kind of file its loader must recognise (a key of `KINDS`); a file served
            under this name that loads as another kind is refused.
        classes: its output classes (0: a backbone without a classifier).
        labels: its output classes' names, a key of `config.LABEL_PRESETS`; None: unnamed
            (`class_0..`).
        reported: the figure its authors reported.
        aliases: the short names users already type (`adcorre-rafdb`).
        digest: `"sha256:<hex>"` or `"md5:<hex>"` where its publisher states one (a hex prefix
            counts: torchvision's names carry the first 8 hex digits of the SHA-256), None
            where none is published (the first download's SHA-256 is then recorded beside the
            cached file and checked on every later use).
        digest_source: where the digest is published.
        size: its size in bytes where published, else None (the server's announced size is
            checked on every download).
        other_caches: other tools' caches that keep this very file under this name (`"keras"`:
            `$KERAS_HOME/models`, `"torch"`: `$TORCH_HOME/hub/checkpoints`); a copy there is
            used in place, once its digest is checked.
        github_blob: the git blob id of the authors' copy in their GitHub repository (SHA-1
            over `blob <size>\\0` and the bytes), shown by `adcorre weights --verify`.
        how_to_get: for a file without an address: where to get it by hand.
    """

    name: str
    file: str
    url: str
    source: str
    kind: str
    classes: int
    labels: str
    reported: str
    aliases: tuple = ()
    digest: str = None
    digest_source: str = None
    size: int = None
    other_caches: tuple = ()
    github_blob: str = None
    how_to_get: str = None

    @property
    def arch(self):
        """The arch the file belongs to: its name up to the dot."""
        return self.name.split(".", 1)[0]

    @property
    def kind_text(self):
        """What the file must be, in words (for messages)."""
        classes = f", {self.classes} classes" if self.classes else ""
        return f"{KINDS[self.kind]} of arch {self.arch}{classes}"


_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_KERAS_DIGEST = "Keras' own file_hash (keras/src/applications/{}.py)"
# The authors' Hugging Face repository keeps the three official files under trained_models/; the
# same names sit in their GitHub repository's trained_models/ (commit 2d4f8af, 2022-03-02).
_AD_CORRE_HUB = "https://huggingface.co/aliprf/Ad-Corre/resolve/main/trained_models/"
_AD_CORRE = "Ad-Corre's authors (aliprf/Ad-Corre)"


def _ad_corre_release(tag, file, reported, alias, github_blob):
    return WeightFile(f"xcp.{tag}", file, _AD_CORRE_HUB + file, _AD_CORRE, "official", 7,
                      "canonical", reported, aliases=(alias,), github_blob=github_blob)


_RECORDS = (
    # -- xcp: Xception (+ k heads). Its ImageNet file also starts xcp_arm.
    WeightFile("xcp.imagenet", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
               _KERAS_APPLICATIONS + "xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
               "Keras applications", "keras_backbone", 0, None, "backbone only",
               digest="md5:b0042744bf5b25fce3cb969f33bebb97",
               digest_source=_KERAS_DIGEST.format("xception"), other_caches=("keras",)),
    _ad_corre_release("rafdb", "RafDB_8696.h5", "86.96 % on RAF-DB", "adcorre-rafdb",
                      "d93f8aacda10a2b5d5e19aa75fbe66ea517462dd"),
    _ad_corre_release("affectnet", "AffectNet_6336.h5", "63.36 % on AffectNet (7 classes)",
                      "adcorre-affectnet", "ee906c932b9b8f02ea82961e32aa810cd1f4fdbb"),
    _ad_corre_release("fer2013", "Fer2013_7203.h5", "72.03 % on FER-2013", "adcorre-fer2013",
                      "fb79faa2a5a6856cc08d820defda825d41a36758"),
    # -- resnet: ResNet50 (+ k heads), the official code's second arch.
    WeightFile("resnet.imagenet", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
               _KERAS_APPLICATIONS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
               "Keras applications", "keras_backbone", 0, None, "backbone only",
               digest="md5:4d473c1dd8becc155b73f8504c6f6626",
               digest_source=_KERAS_DIGEST.format("resnet"), other_caches=("keras",)),
    # -- resnet18: torchvision's ResNet-18, which ARM's training starts from (resnet18_arm too).
    # Earlier versions of this project downloaded it into Keras' cache, torchvision into its own.
    WeightFile("resnet18.imagenet", "resnet18-f37072fd.pth",
               "https://download.pytorch.org/models/resnet18-f37072fd.pth", "torchvision",
               "torch", 1000, None, "69.76 % top-1 on ImageNet", aliases=("resnet18-imagenet",),
               digest="sha256:f37072fd",
               digest_source="torchvision's file name (the first 8 hex digits of its SHA-256, "
                             "as torch.hub's check_hash reads them)",
               other_caches=("torch", "keras")),
    # -- resnet18_arm: ARM's own network.
    WeightFile("resnet18_arm.rafdb", "epoch59_acc0.9205.pth", None,
               "ARM's authors (sunmusik/Amend-Representation-Module)", "torch", 7, "rafdb",
               "92.05 % on RAF-DB", aliases=("arm-rafdb",),
               how_to_get="ARM's authors linked it on Google Drive until October 2021 "
                          "(https://drive.google.com/file/d/1v5j0WUxOMeDXOFBVIJaDSnGdYef3KSxO/"
                          "view, in their README's history at commit f5aaf79); it has no "
                          "stable direct address now"),
)

WEIGHT_FILES = {record.name: record for record in _RECORDS}
ALIASES = {alias: record.name for record in _RECORDS for alias in record.aliases}


def weight_files():
    """Every record, grouped by arch in the registry's order (the listing's order)."""
    return _RECORDS


def is_name(text):
    """True when `text` names a record (`arch.tag`) or is one of their aliases."""
    return isinstance(text, str) and (text in WEIGHT_FILES or text in ALIASES)


def resolve(name):
    """The `WeightFile` of a name or alias.

    Args:
        name: `arch.tag` (`"xcp.rafdb"`) or an alias (`"adcorre-rafdb"`).

    Returns:
        Its `WeightFile`.

    Raises:
        SettingError: no record has that name (the message lists the names).
    """
    if not is_name(name):
        raise SettingError(f"No downloadable file is named {name!r}; expected one of "
                           f"{', '.join(names())} (`adcorre weights` lists them).")
    return WEIGHT_FILES[ALIASES.get(name, name)]


def names():
    """Every name users may type: each record's `arch.tag` and its aliases."""
    return tuple(n for record in _RECORDS for n in (record.name, *record.aliases))
