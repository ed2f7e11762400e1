"""The PyTorch reference measurements (optional dependency): face-alignment's FAN trained by
torch_reference.TrainStep, its forward pass, and face-alignment's get_preds_fromhm.

Same work, same inputs and the same (call, to_record) setups as jax_timings.
"""

from __future__ import annotations

import functools
import time

import jax
import numpy as np

from sphm_jax.benchmark.records import flops_fields, record, synthetic_batch
from sphm_jax.training import train


def _torch_device():
    import torch  # pylint: disable=g-import-not-at-top

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _torch_device_name(device) -> str:
    import torch  # pylint: disable=g-import-not-at-top

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _torch_sync(device):
    import torch  # pylint: disable=g-import-not-at-top

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_train(config, num_landmarks: int, flops_per_step, channels_last):
    """torch_reference.TrainStep on the same batch; AMP (bfloat16) when config.dtype is bfloat16.

    Returns (call, to_record) as jax_train does.
    """
    import torch  # pylint: disable=g-import-not-at-top

    from sphm_jax.benchmark import torch_reference  # pylint: disable=g-import-not-at-top

    device = _torch_device()
    if channels_last is None:
        channels_last = device.type == "cuda"
    cfg = train.StepConfig.from_config(config, num_landmarks)
    torch.manual_seed(config.seed)
    net = torch_reference.build_fan(
        config.model.num_stacks, num_landmarks, config.model.width, config.model.depth
    )
    amp = config.dtype == "bfloat16"
    step = torch_reference.TrainStep(
        net,
        torch_reference.step_description(cfg, config.seed),
        config.learning_rate,
        device,
        amp,
        channels_last,
    )
    batch = synthetic_batch(config, num_landmarks, config.batch_size)
    images = torch.from_numpy(batch["image"].transpose(0, 3, 1, 2).copy()).to(device)
    landmarks = torch.from_numpy(batch["landmarks"]).to(device)
    visible = torch.from_numpy(batch["visible"]).to(device)

    def call():
        step(images, landmarks, visible)
        _torch_sync(device)

    start = time.perf_counter()
    call()  # first call: allocations, cuDNN autotuning; the counterpart of compile_s
    first = time.perf_counter() - start
    name = _torch_device_name(device)
    per_device = flops_per_step * jax.device_count() if flops_per_step else None

    def to_record(seconds):
        return record(
            "train",
            "torch",
            config,
            seconds,
            config.batch_size,
            torch_device=name,
            siamese=bool(config.siamese),
            amp=amp,
            channels_last=bool(channels_last),
            torch_threads=torch.get_num_threads(),
            compile_s=first,
            flops_per_step=per_device,
            **flops_fields(per_device, seconds, name, config.dtype),
        )

    return call, to_record


def torch_eval(config, num_landmarks: int, channels_last):
    """The reference's forward pass (eval mode, no autograd) on the same batch.

    Returns (call, to_record) as jax_train does.
    """
    import torch  # pylint: disable=g-import-not-at-top

    from sphm_jax.benchmark import torch_reference  # pylint: disable=g-import-not-at-top

    device = _torch_device()
    if channels_last is None:
        channels_last = device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(config.seed)
    net = torch_reference.build_fan(
        config.model.num_stacks, num_landmarks, config.model.width, config.model.depth
    )
    net = net.to(device=device, memory_format=memory_format).eval()
    amp = config.dtype == "bfloat16"
    batch = synthetic_batch(config, num_landmarks, config.batch_size)
    images = torch.from_numpy(batch["image"].transpose(0, 3, 1, 2).copy()).to(device)

    def call():
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
            net((images.float() / 255.0).contiguous(memory_format=memory_format))
        _torch_sync(device)

    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    to_record = functools.partial(
        record,
        "eval",
        "torch",
        config,
        batch_size=config.batch_size,
        torch_device=_torch_device_name(device),
        amp=amp,
        channels_last=bool(channels_last),
        torch_threads=torch.get_num_threads(),
        compile_s=first,
    )
    return call, to_record


def torch_decode(config, maps: np.ndarray):
    """face-alignment's get_preds_fromhm (numpy argmax + numba +-0.25) on the same maps, NCHW.

    Returns (call, to_record) as jax_train does.
    """
    from face_alignment.utils import get_preds_fromhm  # pylint: disable=g-import-not-at-top

    nchw = np.ascontiguousarray(maps.transpose(0, 3, 1, 2))
    start = time.perf_counter()
    get_preds_fromhm(nchw)  # numba compiles on the first call
    first = time.perf_counter() - start
    to_record = functools.partial(
        record,
        "decode",
        "torch",
        config,
        batch_size=maps.shape[0],
        torch_device="cpu",
        method="face_alignment.get_preds_fromhm",
        num_landmarks=maps.shape[-1],
        heatmap_size=maps.shape[1],
        compile_s=first,
    )
    return functools.partial(get_preds_fromhm, nchw), to_record
