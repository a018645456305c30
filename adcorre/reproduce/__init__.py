"""Reproducing the papers' tables by command: `adcorre reproduce` (`adcorre.cli.reproduce`).

Four modules, one job each: `experiments` (one record per experiment: its data, recipe, test
protocol, selection rule and the paper's figure with its source), `runner` (the runs of each
experiment and seed, resumed or skipped, scored by the paper's protocol; the released files),
`results` (means, spreads and intervals over seeds, `results.csv` and `results.md`) and
`estimate` (timing a few train steps before a long reproduction starts).

```python
from adcorre.reproduce import runner
runner.reproduce(["adcorre-rafdb"], seeds=2, data="synth", out="reproduction", yes=True)
```
"""
