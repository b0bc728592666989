"""Architectures as data: a family, a width multiplier and SSC knobs per layer (JSON-ready).

An :class:`Architecture` holds no torch objects; :func:`ssc_nas.models.build` turns it into an
``nn.Module``. Knob names are exactly those of :class:`ssc_nas.SSCConv2d`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

__all__ = ["DEPTHWISE", "Architecture", "ConvSlot", "InputShape", "LayerSetting",
           "make_divisible"]

#: The ``groups`` value of a depthwise layer (groups = in_channels), as in search-space YAML.
DEPTHWISE = "depthwise"


class InputShape(NamedTuple):
    """What a network is built for: image channels, (H, W) and classes.

    Stored as the study attribute ``input`` and in architecture and model files, with these
    key names; files and studies of older versions say ``channels``, ``size`` and ``classes``,
    which :meth:`from_dict` still reads.
    """

    in_channels: int
    input_size: tuple[int, int]
    num_classes: int

    def to_dict(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "input_size": list(self.input_size),
                "num_classes": self.num_classes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputShape:
        """Read either vocabulary; ``KeyError`` when a key is missing."""
        if isinstance(data, InputShape):
            return data
        def get(new: str, old: str) -> Any:
            return data[new] if new in data else data[old]

        size = get("input_size", "size")
        return cls(int(get("in_channels", "channels")), (int(size[0]), int(size[1])),
                   int(get("num_classes", "classes")))


@dataclass(frozen=True)
class LayerSetting:
    """The SSC knobs of one layer, besides its shape (channels, kernel, stride).

    ``spatial_channels=None`` means every channel of the group block (a standard or grouped
    convolution); ``groups="depthwise"`` means groups = in_channels. The legacy spelling
    ``groups=0`` (architecture files and studies of older versions) is read as ``"depthwise"``.
    """

    groups: int | str = 1
    spatial_channels: int | None = None
    pointwise_channels: int = 0
    pattern: str = "full"
    phases: int = 1

    def __post_init__(self) -> None:
        if self.groups == 0:  # the legacy spelling of depthwise
            object.__setattr__(self, "groups", DEPTHWISE)
        elif isinstance(self.groups, str) and self.groups != DEPTHWISE:
            raise ValueError(f"groups must be an integer or {DEPTHWISE!r}, "
                             f"but got {self.groups!r}")

    @property
    def depthwise(self) -> bool:
        return self.groups == DEPTHWISE

    def knobs(self, in_channels: int) -> dict[str, Any]:
        """Keyword arguments for ``SSCConv2d`` on a layer with ``in_channels`` inputs."""
        d = self._fields()
        if self.depthwise:
            d["groups"] = in_channels
        return d

    def _fields(self) -> dict[str, Any]:
        """Every knob by name (plain values: no deep copy as ``dataclasses.asdict`` makes)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self._fields().items() if v != _DEFAULT[k]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerSetting:
        unknown = set(data) - set(_DEFAULT)
        if unknown:
            raise ValueError(
                f"unknown layer knob(s) {sorted(unknown)}; valid knobs: {', '.join(_DEFAULT)}"
            )
        return cls(**data)


_DEFAULT = LayerSetting()._fields()


@dataclass(frozen=True)
class ConvSlot:
    """One convolution of a network plan: its shape, where it sits and its default setting."""

    name: str
    stage: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    input_size: tuple[int, int]
    searchable: bool = True
    default: LayerSetting = LayerSetting()


@dataclass(frozen=True)
class Architecture:
    """A concrete network: family, width multiplier and the setting of each searched layer.

    Layers not named in ``layers`` keep their family default (standard convolution, or
    depthwise where the family has one).
    """

    family: str
    width: float = 1.0
    layers: Mapping[str, LayerSetting] = field(default_factory=dict)

    def setting(self, slot: ConvSlot) -> LayerSetting:
        return self.layers.get(slot.name, slot.default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "width": self.width,
            "layers": {name: s.to_dict() for name, s in self.layers.items()},
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        if "family" not in data:
            raise ValueError("an architecture needs a 'family'")
        layers = {n: LayerSetting.from_dict(s) for n, s in (data.get("layers") or {}).items()}
        return cls(str(data["family"]), float(data.get("width", 1.0)), layers)

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        """A short plain-English line (channel counts; see :func:`ssc_nas.models.describe`,
        which gives shares of channels when it knows the input shape)."""
        from .describe import describe

        return describe(self)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``: never below it, nor 10 % under ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded
