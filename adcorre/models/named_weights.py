"""Released weights by name: fetched once into a cache, then loaded from there.

`TestModels(h5_address="adcorre-rafdb")`, `--weights adcorre-rafdb` and `load_model("adcorre-rafdb")`
take a name of `NAMED_WEIGHTS` wherever no file of that name exists. The file is looked for in
the cache, `$ADCORRE_HOME/weights/` (default `~/.adcorre/weights/`), and downloaded there the first
time: from its official address, or from `$ADCORRE_WEIGHTS_MIRROR/<file name>` when that variable
holds a base URL (a mirror, an offline copy as `file:///...`, a test server).

A download is written under a temporary name in the cache folder and renamed only when whole:
its size must be the one the server announced, and its first bytes those of the kind of file it
is (HDF5 for `.h5`, a torch archive or pickle for `.pth`), so a transfer cut short or a page that
is not the file (an HTML login page) is refused with one error and leaves nothing in the cache.
`weights_io.load_model` then checks it like any other file (every layer and shape, nothing run),
and removes a fresh download that fails that check.

Example:
>>> sorted(NAMED_WEIGHTS)
['adcorre-affectnet', 'adcorre-fer2013', 'adcorre-rafdb', 'arm-rafdb', 'resnet18-imagenet']
>>> NAMED_WEIGHTS["adcorre-rafdb"].file, NAMED_WEIGHTS["adcorre-rafdb"].reported
('RafDB_8696.h5', '86.96 % on RAF-DB')
>>> is_name("adcorre-rafdb"), is_name("RafDB_8696.h5")
(True, False)

This module imports nothing of ours but `atomic_files`, `config`, `errors` and the arch registry
(no Keras).
"""

import dataclasses
import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from adcorre.atomic_files import atomic_path
from adcorre.config import EXPRESSIONS_7, LABEL_PRESETS
from adcorre.errors import WeightsUnavailableError, first_line
from adcorre.models.registry import TORCHVISION_RESNET18_URL

HOME_VARIABLE = "ADCORRE_HOME"
MIRROR_VARIABLE = "ADCORRE_WEIGHTS_MIRROR"
# The authors' Hugging Face repository keeps the three official files under trained_models/.
_AD_CORRE_HUB = "https://huggingface.co/aliprf/Ad-Corre/resolve/main/trained_models/"
_CHUNK = 1 << 20
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
_PICKLE_PROTOCOL_2 = b"\x80\x02"


@dataclasses.dataclass(frozen=True)
class NamedWeights:
    """One released weight file.

    Attributes:
        name: what `--weights` and `h5_address=` take.
        file: the file's own name (the cache keeps it; a mirror serves it under it).
        url: its official address, or None where it has no stable one (then `how_to_get` says
            where to find it).
        source: who released it, in words.
        labels: its output classes, in output order.
        reported: the accuracy its authors reported.
        how_to_get: for a file without an address: where to get it by hand.
    """

    name: str
    file: str
    url: str
    source: str
    labels: tuple
    reported: str
    how_to_get: str = None

    @property
    def signatures(self):
        """The first bytes a whole file of this kind starts with."""
        if self.file.endswith(".h5"):
            return (_HDF5_SIGNATURE,)
        return (_ZIP_SIGNATURE, _PICKLE_PROTOCOL_2)  # torch.save: zip archive, or legacy pickle


_IMAGENET_CLASSES = tuple(f"class_{i}" for i in range(1000))

NAMED_WEIGHTS = {spec.name: spec for spec in (
    NamedWeights("adcorre-rafdb", "RafDB_8696.h5", _AD_CORRE_HUB + "RafDB_8696.h5",
                 "Ad-Corre's authors (aliprf/Ad-Corre on Hugging Face, trained_models/)",
                 EXPRESSIONS_7, "86.96 % on RAF-DB"),
    NamedWeights("adcorre-affectnet", "AffectNet_6336.h5", _AD_CORRE_HUB + "AffectNet_6336.h5",
                 "Ad-Corre's authors (aliprf/Ad-Corre on Hugging Face, trained_models/)",
                 EXPRESSIONS_7, "63.36 % on AffectNet (7 classes)"),
    NamedWeights("adcorre-fer2013", "Fer2013_7203.h5", _AD_CORRE_HUB + "Fer2013_7203.h5",
                 "Ad-Corre's authors (aliprf/Ad-Corre on Hugging Face, trained_models/)",
                 EXPRESSIONS_7, "72.03 % on FER-2013"),
    NamedWeights("resnet18-imagenet", TORCHVISION_RESNET18_URL.rsplit("/", 1)[-1],
                 TORCHVISION_RESNET18_URL, "torchvision (ImageNet ResNet-18, which ARM's "
                 "training starts from)", _IMAGENET_CLASSES, "69.76 % top-1 on ImageNet"),
    NamedWeights("arm-rafdb", "epoch59_acc0.9205.pth", None,
                 "ARM's authors (sunmusik/Amend-Representation-Module)", LABEL_PRESETS["rafdb"],
                 "92.05 % on RAF-DB",
                 how_to_get="ARM's authors linked it on Google Drive until October 2021 "
                            "(https://drive.google.com/file/d/1v5j0WUxOMeDXOFBVIJaDSnGdYef3KSxO/"
                            "view, in their README's history at commit f5aaf79); it has no "
                            "stable direct address now"),
)}


def is_name(text):
    """True when `text` is a name of `NAMED_WEIGHTS`."""
    return isinstance(text, str) and text in NAMED_WEIGHTS


def cache_folder():
    """`$ADCORRE_HOME/weights` (default `~/.adcorre/weights`), where named files are kept."""
    home = os.environ.get(HOME_VARIABLE) or os.path.join(os.path.expanduser("~"), ".adcorre")
    return os.path.join(home, "weights")


def cached_path(name):
    """Where the file of `name` is (or would be) in the cache."""
    return os.path.join(cache_folder(), NAMED_WEIGHTS[name].file)


def is_cached(name):
    return os.path.isfile(cached_path(name))


def address(name):
    """The URL the file of `name` is fetched from: the mirror's when one is set, else its own
    (None where it has none)."""
    spec = NAMED_WEIGHTS[name]
    mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
    if mirror:
        return mirror.rstrip("/") + "/" + urllib.parse.quote(spec.file)
    return spec.url


def locate(path_or_name, progress=None):
    """A local file for `path_or_name`, fetching a named file the first time.

    Args:
        path_or_name: a path (returned as it is when something exists there, or when it is not
            a name), or a name of `NAMED_WEIGHTS`.
        progress: show a progress bar while downloading (default: when stderr is a terminal).

    Returns:
        `(path, fetched)`: the file to load, and True when it was downloaded by this call.

    Raises:
        WeightsUnavailableError: the file is not in the cache and cannot be fetched (offline,
            no address, a transfer cut short, not the file); the message names the address and
            the path to put the file at.
    """
    path_or_name = os.fspath(path_or_name)
    if os.path.exists(path_or_name) or not is_name(path_or_name):
        return path_or_name, False
    target = cached_path(path_or_name)
    if os.path.isfile(target):
        return target, False
    url = address(path_or_name)
    spec = NAMED_WEIGHTS[path_or_name]
    if url is None:
        raise WeightsUnavailableError(
            f"{path_or_name} ({spec.file}) cannot be downloaded: {spec.how_to_get}. Download it "
            f"by hand and put it at {target}, or pass its path to --weights (h5_address=), or set "
            f"{MIRROR_VARIABLE} to a base URL that serves {spec.file}.")
    download(url, target, spec, progress=sys.stderr.isatty() if progress is None else progress)
    return target, True


def forget(path):
    """Removes a fetched file that turned out not to load (so the next call fetches it again)."""
    if os.path.dirname(os.path.abspath(path)) == os.path.abspath(cache_folder()):
        os.remove(path)


def download(url, target, spec, progress=False):
    """Fetches `url` to `target` through a temporary file in its folder, renamed when whole."""
    where = f"Put the file at {target} yourself (or set {MIRROR_VARIABLE} to a base URL that " \
            f"serves {spec.file}) and run again."
    request = urllib.request.Request(url, headers={"User-Agent": "adcorre"})
    with atomic_path(target) as temporary:
        with open(temporary, "wb") as out:
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    expected = answer.headers.get("Content-Length")
                    expected = int(expected) if expected and expected.isdigit() else None
                    received, head = _copy(answer, out, spec, expected, progress)
            except CacheWriteError:
                raise  # the disk, not the network: said as such, exit status 1
            except urllib.error.HTTPError as error:
                raise WeightsUnavailableError(
                    f"Could not download {spec.name} from {url}: HTTP {error.code} "
                    f"({error.reason}). {where}") from None
            except (urllib.error.URLError, http.client.HTTPException, OSError,
                    ValueError) as error:
                reason = getattr(error, "reason", None) or first_line(error)
                raise WeightsUnavailableError(
                    f"Could not download {spec.name} from {url} ({reason}); offline? "
                    f"{where}") from None
        if expected is not None and received != expected:
            raise WeightsUnavailableError(
                f"The download of {spec.name} from {url} was cut short: {received} of "
                f"{expected} bytes. Nothing was kept; run again. {where}")
        if not head.startswith(spec.signatures):
            looks = "an HTML page" if head.lstrip()[:1] == b"<" else "not that kind of file"
            raise WeightsUnavailableError(
                f"What {url} sent for {spec.name} is {looks}, not {spec.file} (a login page or "
                f"an error page?). Nothing was kept. {where}")


class CacheWriteError(OSError):
    """The weights cache could not take a download (full, read-only): the disk's failure."""


def _copy(answer, out, spec, expected, progress):
    """Streams `answer` into `out`: (bytes received, the first 16 of them)."""
    received, head = 0, b""
    while True:
        chunk = answer.read(_CHUNK)
        if not chunk:
            break
        try:
            out.write(chunk)
        except OSError as error:
            raise CacheWriteError(
                error.errno, f"Could not write {spec.file} into the weights cache "
                f"{os.path.dirname(out.name)} ({first_line(error)}); free space there or set "
                "ADCORRE_HOME to a folder that has it. Nothing was kept") from None
        head = head if len(head) >= 16 else (head + chunk)[:16]
        received += len(chunk)
        if progress:
            _show(spec.file, received, expected)
    if progress:
        print(file=sys.stderr)
    return received, head


def _show(name, received, expected):
    mb = received / 1e6
    if expected:
        done = received / expected
        bar = "#" * int(30 * done)
        text = f"\r{name}: [{bar:<30}] {mb:6.1f} / {expected / 1e6:.1f} MB"
    else:
        text = f"\r{name}: {mb:6.1f} MB"
    print(text, end="", file=sys.stderr, flush=True)


def listing():
    """The names as rows for `adcorre weights`: name, file, source, classes, reported, cached."""
    rows = []
    for name, spec in NAMED_WEIGHTS.items():
        classes = (f"{len(spec.labels)} ({', '.join(spec.labels)})" if len(spec.labels) <= 8
                   else f"{len(spec.labels)} (ImageNet's)")
        rows.append({"name": name, "file": spec.file, "source": spec.source,
                     "classes": classes, "reported": spec.reported,
                     "cached": cached_path(name) if is_cached(name) else "no",
                     "address": spec.url or "none"})
    return rows
