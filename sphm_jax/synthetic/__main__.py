"""python -m sphm_jax.synthetic --grid FILE.png [--seed N]: see `cli.main`."""

from sphm_jax import xla_cpu
from sphm_jax.synthetic.cli import main

if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    main()
