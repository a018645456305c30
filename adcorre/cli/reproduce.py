"""`adcorre reproduce`: the papers' tables by command, the paper's figure beside the measured one.

Example:
    adcorre reproduce --list
    adcorre reproduce adcorre-rafdb --data synth --seeds 2 --out reproduction   # minutes, a CPU
    adcorre reproduce papers --seeds 3 --released --out reproduction            # the datasets, a GPU

Names, seeds and folders are checked before TensorFlow loads; `--list` loads none of it.
"""

import os
import sys

from adcorre.cli.common import check_data_dir, positive_int, run_task
from adcorre.cli.option_parser import OptionParser
from adcorre.errors import SettingError
from adcorre.reproduce.experiments import EXPERIMENTS, GROUPS, resolve


def build_parser(prog="adcorre reproduce"):
    parser = OptionParser(
        prog=prog, description="Reproduce the papers' tables: run named experiments (each a "
        "record: data, recipe, test protocol, selection, the paper's figure and its source) over "
        "seeds and write DIR/results.csv and DIR/results.md beside the papers' figures.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="experiments or groups (--list names them)")
    parser.add_argument("--list", action="store_true",
                        help="list the experiments (paper figure, source) and groups, and exit")
    parser.add_argument("--seeds", type=positive_int, default=1,
                        help="runs per experiment, seeds 0 .. N-1 (default: 1)")
    parser.add_argument("--released", action="store_true",
                        help="also score each experiment's released file (fetched once) with "
                             "the paper's protocol")
    parser.add_argument("--data", choices=("real", "synth"), default="real",
                        help="real: the datasets under --data-root; synth: SynthFER in each "
                             "dataset's own layout at toy scale, minutes on a CPU (no paper "
                             "figure) (default: real)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="the folder holding rafdb/, affectnet/, fer2013/ (default: "
                             "$FER_DATA_ROOT or ./data)")
    parser.add_argument("--out", default="reproduction", metavar="DIR",
                        help="the results folder; a rerun skips what finished there and resumes "
                             "a stopped run (default: reproduction)")
    parser.add_argument("--yes", action="store_true",
                        help="start without asking when the estimate is over an hour")
    parser.add_argument("--estimate", action="store_true",
                        help="time a few train steps, print how long the runs would take, and "
                             "exit")
    return parser


def listing():
    """`--list`: one line per experiment (its paper figure and source), then the groups."""
    width = max(map(len, EXPERIMENTS))
    lines = []
    for name, experiment in EXPERIMENTS.items():
        paper = f"{experiment.paper:.2f}" if experiment.paper is not None else "  -  "
        released = f"; released {experiment.released}" if experiment.released else ""
        lines.append(f"{name:<{width}}  {paper}  {experiment.title}{released}")
        lines.append(f"{'':<{width}}         source: {experiment.paper_source}")
    lines.append("")
    lines.append("groups: " + "; ".join(f"{name} = {' '.join(members)}"
                                        for name, members in GROUPS.items() if name != "all")
                 + "; all = every experiment")
    return "\n".join(lines)


def _check(parser, args):
    """Everything that can be refused before TensorFlow loads."""
    if not args.names:
        parser.error("name at least one experiment or group (adcorre reproduce --list)")
    try:
        names = resolve(args.names)
    except SettingError as error:
        parser.error(str(error))
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"argument --out: {args.out!r} is a file; expected a folder")
    if args.released and not any(EXPERIMENTS[name].released for name in names):
        parser.error(f"--released: none of {', '.join(names)} has a released file")
    if args.data == "real" and not args.estimate:
        for dataset in dict.fromkeys(EXPERIMENTS[name].dataset for name in names):
            data_dir = None if args.data_root is None else os.path.join(args.data_root, dataset)
            check_data_dir(parser, dataset, data_dir)
    return names


def _reproduce(args, names):
    from adcorre.reproduce.runner import reproduce

    rows = reproduce(names, seeds=args.seeds, data=args.data, out=args.out,
                     released=args.released, yes=args.yes, data_root=args.data_root,
                     estimate_only=args.estimate)
    return 1 if rows is None else 0  # None: not started, the question answered no


def main(argv=None, prog="adcorre reproduce"):
    """Runs `adcorre reproduce` on `argv`; returns the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.list:
        print(listing())
        return 0
    names = _check(parser, args)
    return run_task(_reproduce, args, names, stopped="the reproduction stopped: ")


if __name__ == "__main__":
    sys.exit(main())
