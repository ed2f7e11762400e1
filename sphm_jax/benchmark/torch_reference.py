"""The PyTorch reference of a training step, for the benchmark: face-alignment's FAN, kornia warps.

The same work as `train.train_step`: random affine views (flip, scale,
rotation, translation, colour), the network on the views, and either the
pixel-wise L2 against targets at the views' points (plain) or Eq. 6 (the two
views' heatmaps warped back by kornia and merged, Siamese), on every stack;
then Adam. Images are NCHW here, as PyTorch has them. torch, face-alignment
and kornia are optional dependencies (the `test` extra), imported on use.
"""

from __future__ import annotations


def _torch():
    try:
        import kornia  # pylint: disable=g-import-not-at-top
        import torch  # pylint: disable=g-import-not-at-top
        from face_alignment.models import fan  # pylint: disable=g-import-not-at-top
    except ImportError as e:
        raise ImportError(
            "--reference torch needs torch, kornia and face-alignment: "
            'pip install torch==2.13.0 && pip install -e ".[test]"'
        ) from e
    return torch, kornia, fan


def build_fan(num_stacks: int, num_landmarks: int, width: int = 256, depth: int = 4):
    """face-alignment's FAN, resized from its blocks where width, depth or landmarks differ."""
    torch, _, fan = _torch()
    net = fan.FAN(num_stacks)
    if (width, depth, num_landmarks) == (256, 4, 68):
        return net
    conv = torch.nn.Conv2d
    # The same modules under the same names, so FAN.forward and the converter both apply.
    net.conv1 = conv(3, width // 4, kernel_size=7, stride=2, padding=3)
    net.bn1 = torch.nn.BatchNorm2d(width // 4)
    net.conv2 = fan.ConvBlock(width // 4, width // 2)
    net.conv3 = fan.ConvBlock(width // 2, width // 2)
    net.conv4 = fan.ConvBlock(width // 2, width)
    for i in range(num_stacks):
        setattr(net, f"m{i}", fan.HourGlass(1, depth, width))
        setattr(net, f"top_m_{i}", fan.ConvBlock(width, width))
        setattr(net, f"conv_last{i}", conv(width, width, kernel_size=1))
        setattr(net, f"bn_end{i}", torch.nn.BatchNorm2d(width))
        setattr(net, f"l{i}", conv(width, num_landmarks, kernel_size=1))
        if i < num_stacks - 1:
            setattr(net, f"bl{i}", conv(width, width, kernel_size=1))
            setattr(net, f"al{i}", conv(num_landmarks, width, kernel_size=1))
    return net


def _homogeneous(matrices):
    torch, _, _ = _torch()
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=matrices.dtype, device=matrices.device)
    return torch.cat([matrices, bottom.expand(*matrices.shape[:-2], 1, 3)], dim=-2)


def random_views(generator, images, cfg, device):
    """(views, matrices [B, 2, 3] crop -> view, flipped bool[B]) as augment.random_views draws them."""
    torch, kornia, _ = _torch()
    b, _, size, _ = images.shape

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=generator, device=device)

    centre = torch.full((b, 2), (size - 1) / 2.0, device=device)
    angle = uniform(-cfg.rotation, cfg.rotation, b)
    scale = uniform(cfg.scale[0], cfg.scale[1], b)
    rot = kornia.geometry.transform.get_rotation_matrix2d(
        centre, -angle, scale[:, None].repeat(1, 2)
    )
    flipped = (torch.rand(b, generator=generator, device=device) < 0.5) & cfg.flip
    flip = torch.eye(3, device=device).repeat(b, 1, 1)
    flip[flipped, 0, 0], flip[flipped, 0, 2] = -1.0, size - 1.0
    matrices = (_homogeneous(rot) @ flip)[:, :2]
    matrices[:, :, 2] += uniform(-1.0, 1.0, b, 2) * cfg.translation * size
    views = kornia.geometry.transform.warp_affine(
        images, matrices, (size, size), align_corners=True
    )
    colour = uniform(cfg.colour[0], cfg.colour[1], b, 3, 1, 1)
    return (views * colour).clamp(0.0, 1.0), matrices, flipped


def encode(points, size: int, sigma: float):
    """Eq. 3 in torch: [B, K, 2] heatmap-pixel points -> [B, K, size, size] Gaussians, peak 1."""
    torch, _, _ = _torch()
    grid = torch.arange(size, dtype=points.dtype, device=points.device)
    gx = torch.exp(-0.5 * ((grid - points[..., :1]) / sigma) ** 2)  # [B, K, W]
    gy = torch.exp(-0.5 * ((grid - points[..., 1:]) / sigma) ** 2)  # [B, K, H]
    return gy[..., :, None] * gx[..., None, :]


def masked_l2(pred, target, visible):
    """losses.masked_l2 for NCHW maps."""
    weight = visible[:, :, None, None]
    denominator = (weight.sum() * pred.shape[-2] * pred.shape[-1]).clamp(min=1.0)
    return ((pred - target) ** 2 * weight).sum() / denominator


def _permute_if(flipped, values, permutation, dim):
    """augment.permute_if in torch: `dim` reordered by the flip permutation where flipped."""
    torch, _, _ = _torch()
    flags = flipped.reshape(-1, *([1] * (values.ndim - 1)))
    return torch.where(flags, values.index_select(dim, permutation), values)


def heatmap_matrix(matrices, stride: int):
    """losses.heatmap_matrix in torch: an image-pixel affine in heatmap pixels."""
    torch, _, _ = _torch()
    to_map = torch.tensor(
        [[1.0 / stride, 0.0, 0.5 / stride - 0.5], [0.0, 1.0 / stride, 0.5 / stride - 0.5]],
        dtype=matrices.dtype,
        device=matrices.device,
    )
    to_map = _homogeneous(to_map)
    return (to_map @ _homogeneous(matrices) @ torch.linalg.inv(to_map))[..., :2, :]


def loss(net, views, matrices, flipped, landmarks, visible, step):
    """The loss of train.train_step on given views: views [V*B, 3, S, S]; matrices [V, B, 2, 3]."""
    torch, kornia, _ = _torch()
    size, hm = views.shape[-1], step["heatmap_size"]
    stride, sigma = size // hm, step["sigma"]
    permutation = torch.as_tensor(step["flip_permutation"], device=views.device)
    outputs = net(views)
    if not step["siamese"]:
        points = landmarks @ matrices[0, :, :, :2].transpose(-1, -2) + matrices[0, :, None, :, 2]
        points = _permute_if(flipped[0], points, permutation, 1)
        target = encode((points + 0.5) / stride - 0.5, hm, sigma)
        seen = _permute_if(flipped[0], visible, permutation, 1)
        return sum(masked_l2(out.float(), target, seen) for out in outputs)
    target = encode((landmarks + 0.5) / stride - 0.5, hm, sigma)
    total = 0.0
    for out in outputs:
        merged = 0.0
        for view, m, f in zip(out.float().chunk(2), matrices, flipped):
            inverse = torch.linalg.inv(_homogeneous(heatmap_matrix(m, stride)))[:, :2]
            back = kornia.geometry.transform.warp_affine(
                view, inverse, (hm, hm), align_corners=True
            )
            merged = merged + _permute_if(f, back, permutation, 1)
        total = total + masked_l2(0.5 * merged, target, visible)
    return total


class TrainStep:
    """One Adam step of the reference on a batch; AMP (bfloat16) and channels-last on request."""

    def __init__(
        self, net, step: dict, learning_rate: float, device, amp: bool, channels_last: bool
    ):
        torch, _, _ = _torch()
        self.torch, self.step, self.device = torch, step, device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(device=device, memory_format=self.memory_format).train()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        self.amp = amp
        self.generator = torch.Generator(device=device).manual_seed(step["seed"])

    def __call__(self, images_u8, landmarks, visible):
        """images_u8 uint8 [B, 3, S, S], landmarks [B, K, 2], visible [B, K] on the device."""
        torch = self.torch
        images = images_u8.float() / 255.0
        num_views = 2 if self.step["siamese"] else 1
        drawn = [
            random_views(self.generator, images, self.step["augment"], self.device)
            for _ in range(num_views)
        ]
        views = torch.cat([d[0] for d in drawn]).contiguous(memory_format=self.memory_format)
        matrices = torch.stack([d[1] for d in drawn])
        flipped = torch.stack([d[2] for d in drawn])
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            value = loss(self.net, views, matrices, flipped, landmarks, visible, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        value.backward()
        self.optimizer.step()
        return value.detach()


def step_description(cfg, seed: int) -> dict:
    """The fields of a train.StepConfig the reference uses, and the seed, as a plain dict."""
    if cfg.quantize is not None:
        raise ValueError(f"the torch reference draws continuous targets; quantize={cfg.quantize!r}")
    return {
        "seed": int(seed),
        "heatmap_size": cfg.heatmap_size,
        "sigma": cfg.sigma,
        "siamese": cfg.siamese,
        "augment": cfg.augment,
        "flip_permutation": list(cfg.flip_permutation),
    }
