"""The errors a user can cause, as one family.

Every error this package raises for something a user did (a setting that makes no sense, a
dataset that is missing or breaks its format, a picture or weight file that cannot be read, an
optional package that is not installed) is an `AdCorreError`. The commands (`adcorre ...`,
`python train.py`, `python test.py`) print such an error as one line and exit with its
`exit_status` (2: fix the input and run again); an error of any other type is a bug of ours and
keeps its traceback.

Each kind also derives from the built-in exception it stands for (`ValueError`,
`FileNotFoundError`, `ImportError`, ...), so code that caught those before still catches them.

Example:
>>> try:
...     raise SettingError("epochs must be an integer >= 1, got 0.")
... except ValueError as error:
...     print(type(error).__name__, isinstance(error, AdCorreError), error.exit_status)
SettingError True 2

This module imports nothing of ours.
"""


class AdCorreError(Exception):
    """Base of the errors a user can cause; the commands print its message on one line."""

    exit_status = 2


class SettingError(AdCorreError, ValueError):
    """An argument or option whose value makes no sense (names the setting and what it takes)."""


class DatasetNotFoundError(AdCorreError, FileNotFoundError):
    """A dataset's folder, label file or image folder is missing."""


class DatasetFormatError(AdCorreError, ValueError):
    """A dataset file breaks its format (names the file, the line and the format expected)."""


class PictureError(AdCorreError, ValueError):
    """A picture that cannot be used: missing, unreadable, truncated, too large, not a picture."""


class ImageDecodeError(PictureError):
    """A picture whose bytes do not decode."""


class VideoError(AdCorreError, ValueError):
    """A video or camera that cannot be opened or holds no frame."""


class WeightFileError(AdCorreError, ValueError):
    """A model file that cannot be loaded (names the file and what was expected)."""


class WeightFileNotFoundError(WeightFileError, FileNotFoundError):
    """A model file that does not exist."""


class ModelCapabilityError(AdCorreError, ValueError):
    """The loaded model cannot do what was asked (no embedding heads, no 2-D feature map...)."""


class MissingDependencyError(AdCorreError, ImportError):
    """An optional package (torch, mtcnn, tf2onnx...) that this task needs is not installed."""


class OutputExistsError(AdCorreError, FileExistsError):
    """Writing would replace or delete something this project did not write."""


class ResumeError(AdCorreError, ValueError):
    """A run folder that cannot be resumed with the settings given (names the setting)."""


class FolderInUseError(AdCorreError, FileExistsError):
    """A folder another running process holds (a run folder a run is writing); names it."""


class WeightsUnavailableError(AdCorreError, RuntimeError):
    """Pretrained weights that are neither on this machine nor downloadable from here."""


def first_line(error, limit=300):
    """The first line of the error's message (at most `limit` characters), or the error's type
    name when it says nothing (for messages that go on for pages: h5py's, torch's, LiteRT's).

    Example:
    >>> first_line(OSError("unable to open file\\n  (file signature not found)")), first_line(EOFError())
    ('unable to open file', 'EOFError')
    """
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(error).__name__


def one_line(error):
    """The error's message on one line (h5py's and TensorFlow's messages run over several).

    Example:
    >>> one_line(ValueError("first\\n   second"))
    'first second'
    """
    return " ".join(str(error).split())
