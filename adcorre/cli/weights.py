"""`adcorre weights` (and `python test.py --list-weights`): every file the project can fetch.

One table, one row per file (`models.weights_table`): its name `arch.tag` and aliases, each of
which `--weights` takes in `adcorre test` and `adcorre train` (and `TestModels(h5_address=...)`,
`TrainModel(weights=...)`); the file, its size, whether it is on this machine, the digest it is
checked against, the figure its authors reported and who publishes it. `--verify` reads every
file on this machine again and checks it against its digest (exit status 1 when one does not
match); `--json` gives every field, one object per file.
"""

import argparse
import json
import os
import sys

from adcorre.cli.option_parser import OptionParser
from adcorre.models import downloads, named_weights

COLUMNS = ("name", "aliases", "file", "size", "cached", "digest", "reported", "source")


def _cells(row):
    """One table row as text, column by column."""
    cached = row["cached"]
    if cached is None:
        where = "no"
    elif os.path.dirname(cached) == named_weights.cache_folder():
        where = "yes"
    else:
        where = f"yes, in {cached}"
    size = f"{row['size'] / 1e6:.1f} MB" if row["size"] else "?"
    return {"name": row["name"], "aliases": ", ".join(row["aliases"]) or "-",
            "file": row["file"], "size": size, "cached": where, "digest": row["digest"],
            "reported": row["reported"], "source": row["source"]}


def describe():
    """The table as text, then where the cache is and how to fetch what has no address."""
    rows = named_weights.listing()
    cells = [dict(zip(COLUMNS, COLUMNS))] + [_cells(row) for row in rows]
    widths = {column: max(len(cell[column]) for cell in cells) for column in COLUMNS}
    lines = ["  ".join(f"{cell[c]:<{widths[c]}}" for c in COLUMNS).rstrip() for cell in cells]
    mirror = os.environ.get(named_weights.MIRROR_VARIABLE) or "unset"
    lines += ["", f"cache: {named_weights.cache_folder()} (${named_weights.HOME_VARIABLE}); "
                  f"mirror: ${named_weights.MIRROR_VARIABLE} ({mirror}); deadline: "
                  f"${downloads.TIMEOUT_VARIABLE} (default {downloads.DEFAULT_TIMEOUT_S:g} s)"]
    for row in rows:
        if row["how_to_get"]:
            lines.append(f"no download address for {row['name']}: {row['how_to_get']}; put "
                         f"it at {named_weights.cached_path(row['name'])}")
    lines.append("--verify checks the files here against their digests; --json gives every "
                 "field (address, kind, classes)")
    return "\n".join(lines)


def verify_cache():
    """`--verify`: one line per file; 1 when a file here does not match its digest, else 0."""
    rows = named_weights.verify()
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        print(f"{row['name']:<{width}}  {row['status']:<10}  {row['said']}", flush=True)
    return 1 if any(row["status"] == "mismatch" for row in rows) else 0


def build_parser(prog="adcorre weights"):
    parser = OptionParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument("--verify", action="store_true",
                        help="check every file on this machine against its digest (published, "
                             "or recorded at its first download); exit status 1 on a mismatch")
    return parser


def main(argv=None, prog="adcorre weights"):
    """Prints the table (or checks the files: `--verify`); returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    if args.verify:
        return verify_cache()
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
