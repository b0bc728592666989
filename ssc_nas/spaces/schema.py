"""Search-space files (YAML): loading and validation with errors that name file, key and choices.

A space says which family to search, how wide, and the choices of each SSC knob, per layer or
per stage. Knob names follow ``SSCConv2d``; the two fraction knobs are the search-space form of
its channel counts:

``spatial_fraction``
    ``spatial_channels / (in_channels / groups)``; resolved as ``max(1, round(f * block))``
    (0 means no spatial kernel).
``pointwise_fraction``
    share of the channels *left after the spatial window* that get a 1 x 1 kernel:
    ``pointwise_channels = round(f * (block - spatial_channels))``. Measured against the rest
    rather than the block so that every pair of choices is a valid layer (no repair needed);
    1.0 is HetConv's choice, 0.0 leaves those channels empty.
``phases``
    an integer (clipped to the block) or ``cover``: ``ceil(block / spatial_channels)``, the
    smallest count whose windows cover every channel (HetConv's choice).
``groups``
    an integer or ``depthwise`` (groups = in_channels).

``width`` is a list of multipliers to search, or ``fill`` (``{fill: [low, high]}`` for another
range than ``FILL_RANGE``): the width is then not searched but derived from the sampled knobs,
as the largest multiple of ``FILL_STEP`` in the range that keeps the design within every budget
(``BoundSpace.fill_width``), so designs use the budget instead of landing on a coarse grid.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpaceError
from ..layers import PATTERNS
from ..models import FAMILIES

__all__ = ["FILL_RANGE", "FILL_STEP", "SPACE_KNOBS", "Override", "SearchSpace", "load_space",
           "shipped_spaces"]

SPACE_KNOBS: tuple[str, ...] = (
    "groups", "pattern", "spatial_fraction", "pointwise_fraction", "phases",
)
TOP_KEYS = ("family", "description", "share", "width", "knobs", "overrides")
SHARES = ("layer", "stage")
#: ``width: fill``: the multipliers tried, multiples of FILL_STEP in FILL_RANGE.
FILL_STEP = 1 / 16
FILL_RANGE = (0.25, 4.0)
DEFAULT_CHOICES: dict[str, tuple[Any, ...]] = {
    "groups": (1,),
    "pattern": ("full",),
    "spatial_fraction": (1.0,),
    "pointwise_fraction": (0.0,),
    "phases": ("cover",),
}


@dataclass(frozen=True)
class Override:
    """Choices for the layers whose names match a glob (``stage3.*``, ``*.depthwise``)."""

    match: str
    knobs: Mapping[str, tuple[Any, ...]]

    def applies(self, layer: str) -> bool:
        return fnmatch.fnmatchcase(layer, self.match)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space. ``knobs`` maps each knob to its tuple of choices."""

    name: str
    family: str
    width: tuple[float, ...]
    knobs: Mapping[str, tuple[Any, ...]]
    share: str = "layer"
    overrides: tuple[Override, ...] = ()
    description: str = ""
    source: str = field(default="", compare=False)
    #: ``width: fill``: ``width`` holds the multipliers tried, the widest that fits is taken.
    fill: bool = False

    def choices_for(self, layer: str) -> dict[str, tuple[Any, ...]]:
        """Knob choices for one layer: the space's, then each matching override in order."""
        out = dict(self.knobs)
        for ov in self.overrides:
            if ov.applies(layer):
                out.update(ov.knobs)
        return out

    def describe_width(self) -> str:
        """``0.5, 1, 2`` or ``fill: 0.25-4 in steps of 0.0625``."""
        if self.fill:
            return f"fill: {self.width[0]:g}-{self.width[-1]:g} in steps of {FILL_STEP:g}"
        return ", ".join(f"{w:g}" for w in self.width)

    def overridden(self, layer: str) -> set[str]:
        return {k for ov in self.overrides if ov.applies(layer) for k in ov.knobs}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "share": self.share,
            "width": {"fill": [self.width[0], self.width[-1]]} if self.fill
            else list(self.width),
            "knobs": {k: list(v) for k, v in self.knobs.items()},
            "overrides": [{"match": o.match, **{k: list(v) for k, v in o.knobs.items()}}
                          for o in self.overrides],
        }


def _fail(source: str, key: str, message: str) -> SpaceError:
    return SpaceError(f"{source}: {key}: {message}")


def _choices(source: str, key: str, knob: str, value: Any) -> tuple[Any, ...]:
    values = value if isinstance(value, list | tuple) else [value]
    if not values:
        raise _fail(source, key, "needs at least one choice")
    out: list[Any] = []
    for v in values:
        ok = True
        if knob == "groups":
            ok = v == "depthwise" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
            hint = "an integer >= 1 or 'depthwise'"
        elif knob == "pattern":
            ok = v in PATTERNS
            hint = f"one of {', '.join(PATTERNS)}"
        elif knob in ("spatial_fraction", "pointwise_fraction"):
            ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
            hint = "a number in [0, 1]"
        else:  # phases
            ok = v == "cover" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
            hint = "an integer >= 1 or 'cover'"
        if not ok:
            raise _fail(source, key, f"{v!r} is not a valid choice; a choice is {hint}")
        out.append(float(v) if knob.endswith("fraction") else v)
    if len(set(map(str, out))) != len(out):
        raise _fail(source, key, f"choices repeat: {values}")
    return tuple(out)


def _knob_block(source: str, prefix: str, data: Any, allow: Sequence[str]) -> dict[str, tuple]:
    if not isinstance(data, Mapping):
        raise _fail(source, prefix, "must be a mapping of knob -> list of choices")
    out = {}
    for knob, value in data.items():
        if knob not in allow:
            raise _fail(source, f"{prefix}.{knob}",
                        f"unknown knob; valid knobs: {', '.join(SPACE_KNOBS)}")
        out[knob] = _choices(source, f"{prefix}.{knob}", knob, value)
    return out


def parse_space(data: Any, source: str = "<space>", name: str = "") -> SearchSpace:
    """Validate a parsed YAML mapping into a :class:`SearchSpace` (SpaceError on any problem)."""
    if not isinstance(data, Mapping):
        raise SpaceError(f"{source}: a search space must be a YAML mapping with keys "
                         f"{', '.join(TOP_KEYS)}")
    for key in data:
        if key not in TOP_KEYS:
            raise _fail(source, str(key), f"unknown key; valid keys: {', '.join(TOP_KEYS)}")
    family = data.get("family")
    if family not in FAMILIES:
        raise _fail(source, "family", f"{family!r} is not a family; valid: {', '.join(FAMILIES)}")
    share = data.get("share", "layer")
    if share not in SHARES:
        raise _fail(source, "share", f"{share!r} is not valid; valid: {', '.join(SHARES)}")
    width, fill = _width(source, data.get("width", [1.0]))
    knobs = dict(DEFAULT_CHOICES)
    knobs.update(_knob_block(source, "knobs", data.get("knobs", {}), SPACE_KNOBS))
    overrides = []
    for i, item in enumerate(data.get("overrides") or []):
        key = f"overrides[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("match"), str):
            raise _fail(source, key, "needs 'match: <glob on layer names>' and knob choices")
        rest = {k: v for k, v in item.items() if k != "match"}
        overrides.append(Override(item["match"], _knob_block(source, key, rest, SPACE_KNOBS)))
    return SearchSpace(
        name=name or Path(source).stem,
        family=family,
        width=width,
        knobs=knobs,
        share=share,
        overrides=tuple(overrides),
        description=str(data.get("description", "")),
        source=source,
        fill=fill,
    )


def _multiplier(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 8


def _width(source: str, value: Any) -> tuple[tuple[float, ...], bool]:
    """``width``: a list of multipliers, ``fill`` or ``{fill: [low, high]}`` -> (the
    multipliers, whether the width fills the budget)."""
    if value == "fill" or (isinstance(value, Mapping) and list(value) == ["fill"]):
        low, high = FILL_RANGE if value == "fill" else (
            value["fill"] if isinstance(value["fill"], list | tuple) else (None, None))
        if not (_multiplier(low) and _multiplier(high) and low <= high):
            raise _fail(source, "width", f"fill needs a range [low, high] of multipliers in "
                                         f"(0, 8], got {value['fill']!r}")
        steps = range(max(1, round(low / FILL_STEP)), int(high / FILL_STEP + 1e-9) + 1)
        widths = tuple(k * FILL_STEP for k in steps if k * FILL_STEP >= low - 1e-9)
        if not widths:
            raise _fail(source, "width", f"fill range [{low}, {high}] holds no multiple of "
                                         f"{FILL_STEP}")
        return widths, True
    width = value if isinstance(value, list | tuple) else [value]
    if not width or not all(_multiplier(w) for w in width):
        raise _fail(source, "width", f"must be a list of multipliers in (0, 8], 'fill' or "
                                     f"{{fill: [low, high]}}, got {value!r}")
    return tuple(sorted(float(w) for w in width)), False


def shipped_spaces() -> dict[str, Path]:
    """The spaces that ship with ssc-nas, by name (``vgg16-ssc`` ...)."""
    root = resources.files("ssc_nas") / "search_spaces"
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir()
            if p.name.endswith((".yaml", ".yml"))}


def load_space(path_or_name: str | Path) -> SearchSpace:
    """Load a space from a YAML file, or a shipped space by name (``resnet20-ssc``)."""
    path = Path(path_or_name)
    if not path.exists():
        shipped = shipped_spaces()
        if str(path_or_name) in shipped:
            path = shipped[str(path_or_name)]
        elif path.name in {f"{n}.yaml" for n in shipped}:
            path = shipped[path.stem]
        else:
            raise SpaceError(f"search space {str(path_or_name)!r} not found: give a YAML file or "
                             f"one of the shipped spaces: {', '.join(sorted(shipped))}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise SpaceError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise SpaceError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:  # a database or model file, say
        raise SpaceError(f"{path}: not a search space (not YAML text)") from None
    return parse_space(data, str(path), path.stem)
