"""Stacked hourglass network (FAN) of face-alignment, in Flax linen.

The architecture matches `face_alignment.models.FAN` layer for layer, and the
submodule names mirror the PyTorch ones (`conv1`, `m0/b1_4/bn1`,
`conv2/downsample_0`, ...) so that `sphm_jax.convert` is a readable mapping.
Images are NHWC RGB in [0, 1]; heatmaps come back NHWC float32, one per stack,
at a quarter of the input resolution.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# PyTorch BatchNorm2d defaults: eps 1e-5, momentum 0.1 on the new value.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# The fields that define the architecture (and that a checkpoint records).
ARCH_FIELDS = ("num_stacks", "num_landmarks", "width", "depth")

# PyTorch's default Conv2d init (kaiming_uniform with a=sqrt(5)).
torch_conv_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def avg_pool2(x):
    """2x2 average pooling with stride 2 (FAN pools by averaging, not max)."""
    # window_shape by keyword: jax2onnx's replacement of avg_pool accepts it no other way.
    return nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))


def upsample2(x):
    """Nearest-neighbour x2 upsampling of an NHWC tensor."""
    return jnp.repeat(jnp.repeat(x, 2, axis=-3), 2, axis=-2)


class _Layers(nn.Module):
    """Conv and BatchNorm factories shared by the modules below.

    Fields: dtype (of the activations), param_dtype, bn_axis_name (BatchNorm
    statistics across devices) and precision (of the convolutions).
    """

    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None
    precision: Any = None

    def conv(self, features, kernel, name, padding=0, strides=1, bias=True):
        pad = ((padding, padding), (padding, padding))
        return nn.Conv(
            features,
            (kernel, kernel),
            strides=strides,
            padding=pad,
            use_bias=bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
            kernel_init=torch_conv_init,
            name=name,
        )

    def bn(self, train, name):
        # Two-pass variance: E[x^2] - E[x]^2 loses float32 digits on ReLU'd inputs.
        return nn.BatchNorm(
            use_running_average=not train,
            momentum=BN_MOMENTUM,
            epsilon=BN_EPSILON,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            axis_name=self.bn_axis_name,
            use_fast_variance=False,
            name=name,
        )

    def sublayer_kwargs(self):
        return dict(
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            bn_axis_name=self.bn_axis_name,
            precision=self.precision,
        )


class ConvBlock(_Layers):
    """Pre-activation residual block; its three 3x3 convs are concatenated."""

    features: int = 256

    @nn.compact
    def __call__(self, x, train: bool = False):
        out1 = self.conv(self.features // 2, 3, "conv1", padding=1, bias=False)(
            nn.relu(self.bn(train, "bn1")(x))
        )
        out2 = self.conv(self.features // 4, 3, "conv2", padding=1, bias=False)(
            nn.relu(self.bn(train, "bn2")(out1))
        )
        out3 = self.conv(self.features // 4, 3, "conv3", padding=1, bias=False)(
            nn.relu(self.bn(train, "bn3")(out2))
        )
        residual = x
        if x.shape[-1] != self.features:
            # torch: downsample = Sequential(BatchNorm2d, ReLU, Conv2d 1x1).
            residual = nn.relu(self.bn(train, "downsample_0")(x))
            residual = self.conv(self.features, 1, "downsample_2", bias=False)(residual)
        return jnp.concatenate([out1, out2, out3], axis=-1) + residual


class HourGlass(_Layers):
    """Recursive hourglass of `depth` levels; level L owns b1_L, b2_L, b3_L."""

    depth: int = 4
    features: int = 256

    @nn.compact
    def __call__(self, x, train: bool = False):
        block = functools.partial(ConvBlock, features=self.features, **self.sublayer_kwargs())

        def level(n, inp):
            upper = block(name=f"b1_{n}")(inp, train)
            low = block(name=f"b2_{n}")(avg_pool2(inp), train)
            if n > 1:
                low = level(n - 1, low)
            else:
                low = block(name=f"b2_plus_{n}")(low, train)
            low = block(name=f"b3_{n}")(low, train)
            return upper + upsample2(low)

        return level(self.depth, x)


class FAN(_Layers):
    """Face Alignment Network: a stem and `num_stacks` stacked hourglasses.

    Returns a tuple of float32 heatmaps [N, H/4, W/4, num_landmarks], one per
    stack; the last one is the prediction, all of them are supervised.
    """

    num_stacks: int = 2
    num_landmarks: int = 68
    width: int = 256
    depth: int = 4

    @property
    def input_multiple(self) -> int:
        """Input height and width must be multiples of this (the stem's /4, then /2 per level)."""
        return input_multiple(self.depth)

    def config(self):
        """The architecture as a JSON-able dict: `FAN(**model.config())`."""
        return {f: getattr(self, f) for f in ARCH_FIELDS}

    @nn.compact
    def __call__(self, images, train: bool = False):
        multiple = self.input_multiple
        if images.shape[-3] % multiple or images.shape[-2] % multiple:
            raise ValueError(
                f"FAN with hourglass depth {self.depth} needs image height and width "
                f"divisible by {multiple}; got {images.shape[-3:-1]}"
            )
        block = functools.partial(ConvBlock, **self.sublayer_kwargs())
        x = images.astype(self.dtype)

        x = self.conv(self.width // 4, 7, "conv1", padding=3, strides=2)(x)
        x = nn.relu(self.bn(train, "bn1")(x))
        x = avg_pool2(block(features=self.width // 2, name="conv2")(x, train))
        x = block(features=self.width // 2, name="conv3")(x, train)
        previous = block(features=self.width, name="conv4")(x, train)

        heatmaps = []
        for i in range(self.num_stacks):
            hg = HourGlass(
                depth=self.depth, features=self.width, name=f"m{i}", **self.sublayer_kwargs()
            )(previous, train)
            ll = block(features=self.width, name=f"top_m_{i}")(hg, train)
            ll = self.conv(self.width, 1, f"conv_last{i}")(ll)
            ll = nn.relu(self.bn(train, f"bn_end{i}")(ll))
            out = self.conv(self.num_landmarks, 1, f"l{i}")(ll)
            heatmaps.append(out.astype(jnp.float32))
            if i < self.num_stacks - 1:
                # Feed both the features and the predicted heatmaps to the next stack.
                previous = (
                    previous
                    + self.conv(self.width, 1, f"bl{i}")(ll)
                    + self.conv(self.width, 1, f"al{i}")(out)
                )
        return tuple(heatmaps)


def input_multiple(depth: int) -> int:
    """What a FAN of hourglass `depth` needs its input sides to be multiples of."""
    return 2 ** (depth + 2)


def abstract_variables(model):
    """Shapes and dtypes of a FAN's variables, computed without running it."""
    side = model.input_multiple  # The smallest input the hourglass takes.
    images = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), images)


def count_params(params) -> int:
    """Number of scalars in a parameter tree."""
    return sum(x.size for x in jax.tree_util.tree_leaves(params))
