"""XLA's CPU backend on its fastest path for FAN, chosen before the backend starts.

jaxlib 0.10 hands convolutions, reductions and dots to YNNPACK by default
(`__ynn_fusion` in the compiled HLO text). Measured per fusion kind on this
project's CPUs (BENCHMARKS.md, "XLA CPU paths"), FAN's convolutions run
faster on Eigen (`convolution(` in the HLO) on AVX2 and AVX-512 machines
alike, while YNNPACK's reductions and dots are as fast or faster than XLA's
own loops; element-wise fusions stay on XLA. So `apply()` adds

    --xla_cpu_experimental_ynn_fusion_type=-INDIVIDUAL_CONVOLUTION

to XLA_FLAGS, unless the user's XLA_FLAGS already sets that flag (theirs
wins). Every command calls it before JAX starts; importing this module does
nothing. XLA reads XLA_FLAGS once, when JAX's first backend starts, so a call
after the first JAX computation has no effect on that process.
"""

from __future__ import annotations

import collections
import os
import re

YNN_FUSION_TYPE = "--xla_cpu_experimental_ynn_fusion_type"
# (flag, value) pairs added to XLA_FLAGS; each measured in BENCHMARKS.md.
DEFAULTS = ((YNN_FUSION_TYPE, "-INDIVIDUAL_CONVOLUTION"),)


def _name(flag: str) -> str:
    return flag.split("=", 1)[0]


def with_defaults(xla_flags: str | None, defaults=DEFAULTS) -> str:
    """`xla_flags` plus every default flag it does not set itself."""
    flags = (xla_flags or "").split()
    given = {_name(f) for f in flags}
    return " ".join(flags + [f"{name}={value}" for name, value in defaults if name not in given])


def apply(environ=os.environ) -> str:
    """Puts the defaults into environ["XLA_FLAGS"] and returns them; call before JAX computes."""
    environ["XLA_FLAGS"] = with_defaults(environ.get("XLA_FLAGS"))
    return environ["XLA_FLAGS"]


def ynn_fusion_kinds(hlo_text: str) -> dict:
    """{"convolution" | "dot" | "reduce" | "eltwise": count} of YNNPACK fusions in compiled HLO."""
    bodies = {}
    for block in re.split(r"\n(?=\S)", hlo_text):
        match = re.match(r"(%?[\w.\-]+) ", block)
        if match:
            bodies[match.group(1)] = block
    kinds = collections.Counter()
    for called in re.findall(r"kind=kCustom, calls=(%?[\w.\-]+)[^\n]*__ynn_fusion", hlo_text):
        ops = set(re.findall(r"= \S+ ([\w-]+)\(", bodies.get(called, "")))
        # A reduction absorbs its producers (a 1x1 convolution before an average pool, say).
        ops = {"reduce" if op == "reduce-window" else op for op in ops}
        kinds[next((op for op in ("reduce", "convolution", "dot") if op in ops), "eltwise")] += 1
    return dict(kinds)


def cpu_model() -> str:
    """The CPU's model name and widest vector ISA ("AMD EPYC (AVX-512)"), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        import platform  # pylint: disable=g-import-not-at-top

        return platform.processor() or platform.machine()
    name = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = set((re.search(r"^flags\s*:\s*(.+)$", text, re.M) or ["", ""])[1].split())
    isa = next(
        (label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags),
        "no AVX2",
    )
    return f"{name.group(1).strip() if name else 'unknown CPU'} ({isa})"
