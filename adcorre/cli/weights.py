"""`adcorre weights` (and `python test.py --list-weights`): the released weights by name.

Each name works as `--weights NAME` / `TestModels(h5_address=NAME)`: the file is fetched once
into `$ADCORRE_HOME/weights` (default `~/.adcorre/weights`), or from
`$ADCORRE_WEIGHTS_MIRROR/<file>` when that is set (`adcorre.models.named_weights`).
"""

import argparse
import json
import sys

from adcorre.models import named_weights


def describe():
    """The listing as text: one block per name (file, reported accuracy, cache, source,
    address, classes in output order)."""
    lines = [f"Named weights (--weights NAME); cache: {named_weights.cache_folder()}"
             f" (${named_weights.HOME_VARIABLE}); mirror: ${named_weights.MIRROR_VARIABLE}", ""]
    for row in named_weights.listing():
        spec = named_weights.NAMED_WEIGHTS[row["name"]]
        cached = "cached" if row["cached"] != "no" else "not cached"
        lines += [f"{row['name']:<18} {row['file']:<24} {row['reported']}  ({cached})",
                  f"    from     {row['source']}",
                  f"    address  {row['address']}"
                  + ("" if spec.url else " (no download: get it by hand, below)"),
                  f"    classes  {row['classes']}"]
        if spec.how_to_get:
            lines.append(f"    get it   {spec.how_to_get}; put it at "
                         f"{named_weights.cached_path(row['name'])}")
    return "\n".join(lines)


def build_parser(prog="adcorre weights"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per name")
    return parser


def main(argv=None, prog="adcorre weights"):
    """Prints the named weights; returns 0."""
    args = build_parser(prog).parse_args(argv)
    if args.json:
        for row in named_weights.listing():
            print(json.dumps(row))
    else:
        print(describe())
    return 0


class ListWeights(argparse.Action):
    """`--list-weights`: prints the listing and exits, whatever else the command line holds."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(describe())
        parser.exit()


if __name__ == "__main__":
    sys.exit(main())
