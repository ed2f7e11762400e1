"""Subpixel heatmap regression (Bulat et al., BMVC 2021) in JAX/Flax.

Importing the package first puts XLA's CPU backend on its measured fastest
path (sphm_jax/xla_cpu.py); the user's own XLA_FLAGS win.
"""

from sphm_jax import xla_cpu as _xla_cpu

_xla_cpu.apply()
