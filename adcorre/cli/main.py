"""The `adcorre` command (and `python -m adcorre`): one subcommand per job.

    adcorre train [options]        train (no options: the CPU demo on SynthFER)
    adcorre test --weights W ...   recognise, evaluate, export, videos, webcams, the web app
    adcorre convert SOURCE DEST    a model file of any kind into this project's .h5 / .keras
    adcorre synth [options]        write SynthFER in a real dataset's layout, or a preview
    adcorre weights                the released weights by name (adcorre-rafdb, ...)
    adcorre reproduce NAME...      the papers' experiments over seeds, beside their figures

`adcorre train` takes exactly the options of `python train.py`, `adcorre test` those of
`python test.py`; each subcommand's `--help` answers at once (nothing heavy is imported before
its options are read).
"""

import difflib
import importlib
import sys

from adcorre.cli.common import quiet_broken_pipe

# name -> (the module whose `main(argv, prog)` runs it, one line for the overview).
COMMANDS = {
    "train": ("adcorre.cli.train", "train a model; no options: the CPU demo (tiny arch, SynthFER)"),
    "test": ("adcorre.cli.test", "recognise pictures, videos, a webcam; evaluate; export; serve"),
    "convert": ("adcorre.cli.convert", "convert a model file (.pth, official .h5, Keras) into "
                                       "this project's .h5 / .keras"),
    "synth": ("adcorre.cli.synth", "write SynthFER in a real dataset's layout, or a preview"),
    "weights": ("adcorre.cli.weights", "list the released weights by name (--weights NAME "
                                       "fetches one once)"),
    "reproduce": ("adcorre.cli.reproduce", "reproduce the papers' tables: experiments over "
                                           "seeds, beside the papers' figures"),
}


def usage():
    """The overview `adcorre`, `adcorre --help` and a wrong subcommand print."""
    width = max(map(len, COMMANDS))
    lines = ["usage: adcorre <command> [options]   (adcorre <command> --help: its options)", "",
             "Facial expression recognition with Ad-Corre and ARM (Keras 3 / TensorFlow).", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    """Runs `adcorre` on `argv` (default `sys.argv[1:]`); returns the exit status (1, quietly,
    when stdout's reader stops early: `adcorre weights | head -1`)."""
    return quiet_broken_pipe(_main, argv)


def _main(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from adcorre import __version__

        print(f"adcorre {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        print(f"{usage()}\nadcorre: error: unknown command {name!r}; expected one of "
              f"{', '.join(COMMANDS)}{f'; did you mean {close[0]}?' if close else ''}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest, prog=f"adcorre {name}")


if __name__ == "__main__":
    sys.exit(main())
