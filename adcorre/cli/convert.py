"""`adcorre convert SOURCE DEST`: a model file of any kind into this project's `.h5` / `.keras`.

SOURCE is anything `weights_io.load_model` reads (an ARM or torchvision PyTorch checkpoint, an
official Ad-Corre `.h5`, a Keras classifier); DEST carries its labels, input range and arch
inside, so it loads without torch and without `--labels` afterwards.

Example:
    adcorre convert epoch59_acc0.9205.pth arm_rafdb.h5
"""

import sys

from adcorre.cli.common import input_range, labels, positive_int, refuse_dash_values, run_task
from adcorre.cli.option_parser import OptionParser
from adcorre.config import ARM_AFFINITY_MODES, LABEL_PRESETS


def build_parser(prog="adcorre convert"):
    parser = OptionParser(
        prog=prog,
        description="Convert a model file (an ARM or torchvision PyTorch checkpoint, an official "
                    "Ad-Corre .h5, a Keras classifier) into this project's .h5 / .keras, with "
                    "its labels, input range and arch inside.")
    parser.add_argument("source", help="the file to read (.pth, .h5, .keras)")
    parser.add_argument("destination", help="the .h5 or .keras file to write")
    parser.add_argument("--labels", type=labels, default=None,
                        help=f"a preset ({', '.join(sorted(LABEL_PRESETS))}) or comma-separated "
                             "names; default: the source's")
    parser.add_argument("--input-range", type=input_range, default=None,
                        help="LO,HI the model takes (write --input-range=-1,1 when LO is "
                             "negative); default: the source's")
    parser.add_argument("--input-size", type=positive_int, default=None,
                        help="the side in pixels the model takes, for files that do not fix it; "
                             "default: the source's")
    parser.add_argument("--arm-affinity", default=None, choices=ARM_AFFINITY_MODES,
                        help="the ARM layer's inference affinity (PyTorch checkpoints: sample)")
    return parser


def _convert(args):
    from adcorre import runtime
    from adcorre.models import weights_io

    runtime.quiet_tensorflow()
    path, info = weights_io.convert(args.source, args.destination, labels=args.labels,
                                    input_range=args.input_range, input_size=args.input_size,
                                    arm_affinity=args.arm_affinity)
    note = weights_io.assumptions_note(info)
    if note:  # the guesses are written into DEST as if the source had said them
        print(note, file=sys.stderr)
    colour = "grey" if info.channels == 1 else "RGB"
    print(f"{info.path} ({info.kind}, arch {info.arch}) -> {path}: labels "
          f"{', '.join(info.labels)}; input {colour} {info.input_size[0]}x{info.input_size[1]} "
          f"in [{info.input_range[0]:g}, {info.input_range[1]:g}]")
    return 0


def main(argv=None, prog="adcorre convert"):
    """Runs `adcorre convert` on `argv`; returns the exit status."""
    parser = build_parser(prog)
    refuse_dash_values(parser, argv)
    return run_task(_convert, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
