"""`adcorre synth`: writes a SynthFER dataset in one of the real datasets' layouts, or a preview.

Example:
    adcorre synth --layout rafdb --out data/synth_rafdb --n 2000
    adcorre synth --preview docs/synthfer_preview.png
"""

import os
import sys

from adcorre.cli.common import number, positive_int, run_task
from adcorre.cli.option_parser import OptionParser
from adcorre.data import datasets, synth_faces


def build_parser(prog="adcorre synth"):
    parser = OptionParser(
        prog=prog, description="Write the SynthFER dataset (faces drawn with the 7 expressions) "
                               "in a real dataset's layout, or a preview sheet.")
    parser.add_argument("--layout", default="rafdb", choices=datasets.layouts(),
                        help="the on-disk format to write (default: rafdb)")
    parser.add_argument("--out", help="output folder for --layout")
    parser.add_argument("--n", type=positive_int, default=2000,
                        help="number of faces (default: 2000)")
    parser.add_argument("--image-size", type=positive_int, default=112,
                        help="side in pixels, at least 24 (default: 112)")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument("--test-fraction", default=0.2,
                        type=number(0, inclusive=True, why=" and <= 1", maximum=1,
                                    maximum_inclusive=True),
                        help="share of the faces in the test split (default: 0.2)")
    parser.add_argument("--original", action="store_true",
                        help="RAF-DB: write Image/original/ instead of Image/aligned/")
    parser.add_argument("--preview", help="write a contact sheet here (.png or .jpg)")
    parser.add_argument("--per-class", type=positive_int, default=8,
                        help="examples per class in --preview (default: 8)")
    return parser


def _synth(args):
    if args.preview:
        synth_faces.write_preview(args.preview, args.per_class, args.image_size, args.seed)
        print(f"preview: {args.preview}")
    if args.out:
        synth_faces.write_dataset(args.out, layout=args.layout, n=args.n,
                                  image_size=args.image_size, seed=args.seed,
                                  test_fraction=args.test_fraction, aligned=not args.original)
        print(f"wrote {args.n} SynthFER faces as {args.layout} to {args.out}")
    return 0


def _check_preview(parser, path):
    """A `--preview` path that cannot be written (another suffix, no such folder): one usage
    error, before the sheet is drawn."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in synth_faces.PREVIEW_SUFFIXES:
        parser.error(f"argument --preview: {path!r}: expected a file ending in "
                     f"{', '.join(synth_faces.PREVIEW_SUFFIXES)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"argument --preview: {path!r}: no folder {folder}; expected a file in a "
                     "folder that exists")


def main(argv=None, prog="adcorre synth"):
    """Runs `adcorre synth` on `argv`; returns the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not args.out and not args.preview:
        parser.error("give --out DIR (with --layout) and/or --preview FILE.png")
    if args.preview:
        _check_preview(parser, args.preview)
    return run_task(_synth, args)


if __name__ == "__main__":
    sys.exit(main())
