"""The shipped configs, one per dataset/protocol + synthetic + tiny + ablations.

This folder is the repository's top-level `configs/`; `sphm_jax/training/configs` is a symlink to
it, so the package ships it (`pip install .`) and the configs import each other as
`sphm_jax.training.configs.X` from a checkout, an editable install and a plain install alike.
sphm_jax.training.config_loader resolves `--config configs/NAME.py` (or `NAME`) to it wherever a
command runs.
"""
