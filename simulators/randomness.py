"""Seeded randomness for the simulators — pure, deterministic.

Every random stream is keyed by the run's seed and a stable name (a device id, ``"weather"``,
``"replica-3/production"``), so adding a device does not change the stream of any other, and the
same seed and start time reproduce the same run. Names are hashed with CRC-32 (stable across
processes and Python versions, unlike ``hash()``).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# Longest run of one AR(1) block solved in closed form: keeps phi^-k below e^200 (no overflow).
_MAX_LOG_GROWTH = 200.0


def stream(seed: int, *names: str) -> np.random.Generator:
    """An independent generator for ``names`` under ``seed``."""
    keys = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF]
    keys += [zlib.crc32(name.encode("utf-8")) for name in names]
    return np.random.default_rng(np.random.SeedSequence(keys))


def stable_fraction(*names: str) -> float:
    """A number in [0, 1) fixed by ``names`` (no seed): for ids and serials that never change."""
    return zlib.crc32("/".join(names).encode("utf-8")) / 2**32


class AR1:
    """A stationary Gaussian AR(1) process with unit variance and time constant ``tau_s`` [s].

    ``x[k] = phi x[k-1] + sqrt(1 - phi²) e[k]``, ``phi = exp(-step_s / tau_s)``. The state carries
    over between calls, so a long run can be generated chunk by chunk and equals one long call —
    provided the generator feeds this process only (give every process its own stream).
    """

    def __init__(self, rng: np.random.Generator, step_s: float, tau_s: float) -> None:
        if step_s <= 0 or tau_s <= 0:
            raise ValueError(f"step and time constant must be positive: {step_s}, {tau_s}")
        self._rng = rng
        self.phi = math.exp(-step_s / tau_s)
        self._innovation = math.sqrt(max(0.0, 1.0 - self.phi**2))
        self.state = float(rng.standard_normal())

    def next(self, n: int) -> FloatArray:
        """The next ``n`` values (standard normal marginals)."""
        eps = self._rng.standard_normal(n) * self._innovation
        out = np.empty(n)
        phi = self.phi
        if phi < 1e-12:  # white noise: the innovations are the values
            out[:] = eps / self._innovation
            self.state = float(out[-1]) if n else self.state
            return out
        block = max(1, int(_MAX_LOG_GROWTH / max(-math.log(phi), 1e-300)))
        x0 = self.state
        for start in range(0, n, block):
            part = eps[start : start + block]
            k = np.arange(1, len(part) + 1, dtype=np.float64)
            grow = phi ** (-k)
            out[start : start + len(part)] = phi**k * (x0 + np.cumsum(part * grow))
            x0 = float(out[start + len(part) - 1])
        self.state = x0
        return out


def per_step_probability(rate_per_hour: float, step_s: float) -> float:
    """Probability per step of an event that happens ``rate_per_hour`` times per hour on average
    (capped at 1): ``1 - exp(-rate × step_h)``."""
    if rate_per_hour <= 0:
        return 0.0
    return 1.0 - math.exp(-rate_per_hour * step_s / 3600.0)
