"""python -m sphm_jax.synthetic --grid FILE.png [--seed N]: see `cli.main`."""

from sphm_jax.synthetic.cli import main

if __name__ == "__main__":
    main()
