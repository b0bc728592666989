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

__all__ = ["SPACE_KNOBS", "Override", "SearchSpace", "load_space", "shipped_spaces"]

SPACE_KNOBS: tuple[str, ...] = (
    "groups", "pattern", "spatial_fraction", "pointwise_fraction", "phases",
)
TOP_KEYS = ("family", "description", "share", "width", "knobs", "overrides")
SHARES = ("layer", "stage")
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

    def choices_for(self, layer: str) -> dict[str, tuple[Any, ...]]:
        """Knob choices for one layer: the space's, then each matching override in order."""
        out = dict(self.knobs)
        for ov in self.overrides:
            if ov.applies(layer):
                out.update(ov.knobs)
        return out

    def overridden(self, layer: str) -> set[str]:
        return {k for ov in self.overrides if ov.applies(layer) for k in ov.knobs}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "share": self.share,
            "width": list(self.width),
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
    width = data.get("width", [1.0])
    width = width if isinstance(width, list | tuple) else [width]
    if not width or not all(isinstance(w, int | float) and not isinstance(w, bool) and 0 < w <= 8
                            for w in width):
        raise _fail(source, "width", f"must be a list of multipliers in (0, 8], got {width!r}")
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
        width=tuple(sorted(float(w) for w in width)),
        knobs=knobs,
        share=share,
        overrides=tuple(overrides),
        description=str(data.get("description", "")),
        source=source,
    )


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
    return parse_space(data, str(path), path.stem)
