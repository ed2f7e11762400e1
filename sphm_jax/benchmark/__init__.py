"""The speed benchmark (`python -m sphm_jax.benchmark`, see __main__.py), as a library.

records: the timer, a measurement's JSON record and FLOP fields, the synthetic inputs;
jax_timings: the JAX measurements; torch_timings: the PyTorch reference's, whose training loss
is torch_reference; export_timings: the exported artefacts'; suite: what each --what runs side
by side, and the summary. __main__: the command and its flags.
"""

from sphm_jax.benchmark.records import PEAK_TFLOPS, flops_fields, peak_tflops, synthetic_batch
from sphm_jax.benchmark.suite import _measured, run, summary
from sphm_jax.benchmark.torch_timings import torch_train

# The names tests and BENCHMARKS.md use as benchmark.NAME.
__all__ = [
    "PEAK_TFLOPS",
    "_measured",
    "flops_fields",
    "peak_tflops",
    "run",
    "summary",
    "synthetic_batch",
    "torch_train",
]
