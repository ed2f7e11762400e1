"""Subpixel heatmap regression (Bulat et al., BMVC 2021) in JAX/Flax.

Importing the package, or any of its library modules, changes nothing in the
process: no environment variable, no JAX setting. The commands put XLA's CPU
backend on the project's measured path before JAX starts; a library user gets
the same with `sphm_jax.training.xla_cpu.apply()`, called before the first JAX computation.
"""
