"""The commands: `adcorre train | test | convert | synth` (`main`), and their options.

`python train.py` and `python test.py` at the repository root run `train.main` and
`test.main` here. Every command reads and checks its options before TensorFlow loads.
"""
