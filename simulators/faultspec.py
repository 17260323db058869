"""The fault specification: which faults to inject and how often — pure.

``--faults reset=0.002,gap=0.001,malformed=0.01`` or a preset (``none``, ``default``, ``heavy``).
Rates are probabilities, counted per device-hour (``reset``, ``replace``, ``gap``, ``late``,
``skew``), per message (``duplicate``, ``reorder``, ``malformed``, ``wrong_topic``) or per device
with a ``counter_modulus`` (``rollover``):

- ``reset``: the meter clears its registers to 0 right after a reading;
- ``replace``: a new meter (new serial, small starting registers);
- ``rollover``: the registers start close enough to the modulus to wrap during the run;
- ``gap``: the device goes offline for 5 min – 4 h (readings missing; registers keep counting;
  interval metrics report the whole gap's quantity when the device returns);
- ``late``: the device's messages of the next 1–6 h are held back and delivered together;
- ``skew``: the device's clock is off by ±5 s … ¼ step (≤ 120 s) for 1–24 h;
- ``duplicate``: the message is published again within 15 min;
- ``reorder``: the message is delivered after the device's next one;
- ``malformed``: an extra message that ingest must reject: one row, one reason;
- ``wrong_topic``: the message goes to a wrong topic (its readings are lost).

``reasons=malformed_json+invalid_value`` restricts the malformed messages to those reasons
(default: every reason that can be injected; ``inactive_device`` needs a retired device in the
registry, ``store_failed`` cannot be injected from outside the database).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from carbonflow.domain.readings.contract import Reason

# Reasons a malformed extra message can carry; each one produces exactly one rejected row.
MALFORMED_REASONS: tuple[Reason, ...] = (
    Reason.PAYLOAD_TOO_LARGE,
    Reason.MALFORMED_JSON,
    Reason.INVALID_SCHEMA,
    Reason.INVALID_VALUE,
    Reason.INVALID_TIMESTAMP,
    Reason.UNKNOWN_TOPIC,
    Reason.UNKNOWN_SITE,
    Reason.UNKNOWN_DEVICE,
    Reason.INACTIVE_DEVICE,
    Reason.WRONG_SITE,
    Reason.UNKNOWN_METRIC,
    Reason.UNIT_MISMATCH,
    Reason.FUTURE_TIMESTAMP,
    Reason.TOO_OLD,
    Reason.COUNTER_BACKWARDS,
    Reason.DUPLICATE_CONFLICT,
)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    reset: float = 0.0
    replace: float = 0.0
    rollover: float = 0.0
    gap: float = 0.0
    late: float = 0.0
    skew: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    malformed: float = 0.0
    wrong_topic: float = 0.0
    reasons: tuple[Reason, ...] = MALFORMED_REASONS

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "reasons":
                continue
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {f.name}={value} is not a probability (0–1)")
        bad = [r for r in self.reasons if r not in MALFORMED_REASONS]
        if bad or not self.reasons:
            raise ValueError(
                f"malformed reasons {[r.value for r in bad]} cannot be injected; choose from "
                + ", ".join(r.value for r in MALFORMED_REASONS)
            )

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name != "reasons")

    def describe(self) -> str:
        """The spec in the form :meth:`parse` reads."""
        parts = [
            f"{f.name}={getattr(self, f.name):g}"
            for f in fields(self)
            if f.name != "reasons" and getattr(self, f.name) > 0
        ]
        if self.reasons != MALFORMED_REASONS:
            parts.append("reasons=" + "+".join(r.value for r in self.reasons))
        return ",".join(parts) or "none"

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["reasons"] = [r.value for r in self.reasons]
        return out

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        """``"none"``, ``"default"``, ``"heavy"``, or ``key=rate,…`` (optionally after a preset:
        ``"default,gap=0"``)."""
        spec: dict[str, object] = {}
        names = {f.name for f in fields(cls)} - {"reasons"}
        aliases = {
            "out_of_order": "reorder",
            "replacement": "replace",
            "wrong-topic": "wrong_topic",
        }
        for raw in (text or "none").split(","):
            item = raw.strip()
            if not item:
                continue
            if item in PRESETS:
                spec.update(asdict(PRESETS[item]))
                continue
            key, sep, value = item.partition("=")
            key = aliases.get(key.strip(), key.strip())
            if not sep:
                raise ValueError(f"fault {item!r}: write key=rate, or one of {', '.join(PRESETS)}")
            if key == "reasons":
                try:
                    spec["reasons"] = tuple(Reason(r.strip()) for r in value.split("+"))
                except ValueError as exc:
                    raise ValueError(f"fault reasons {value!r}: {exc}") from None
                continue
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; faults: {', '.join(sorted(names))}")
            try:
                spec[key] = float(value)
            except ValueError:
                raise ValueError(f"fault {key}={value!r}: the rate must be a number") from None
        reasons = spec.pop("reasons", MALFORMED_REASONS)
        assert isinstance(reasons, tuple)
        return cls(**{k: float(v) for k, v in spec.items() if isinstance(v, int | float)},
                   reasons=reasons)  # fmt: skip


PRESETS: Mapping[str, FaultSpec] = {
    "none": FaultSpec(),
    # A realistic month: a few resets, gaps and late batches per device-year, some noise.
    "default": FaultSpec(
        reset=0.0005,
        replace=0.0001,
        rollover=0.1,
        gap=0.001,
        late=0.0005,
        skew=0.001,
        duplicate=0.002,
        reorder=0.002,
        malformed=0.002,
        wrong_topic=0.0005,
    ),
    # For tests: every fault often enough to appear in a month of a small site.
    "heavy": FaultSpec(
        reset=0.003,
        replace=0.001,
        rollover=0.5,
        gap=0.004,
        late=0.002,
        skew=0.004,
        duplicate=0.02,
        reorder=0.02,
        malformed=0.03,
        wrong_topic=0.01,
    ),
}
