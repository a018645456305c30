"""SynthFER's parts: `params` (expression prototypes, how people and pictures vary, priors) and
`drawing` (the OpenCV engine and `generate`), and `files` (writing its pictures). The public
face is `adcorre.data.synth_faces`; each dataset's writer is in its own module of
`adcorre.data.datasets`, beside its reader."""
