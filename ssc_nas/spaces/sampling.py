"""A search space bound to a dataset's shape: per-layer choices, costs, and sampling.

Binding fixes every layer's valid choices up front: a ``groups`` value that does not divide a
layer's channels at every width is dropped for that layer, so a sampled candidate is always a
valid network and Optuna's distributions never change between trials. Optuna parameters are
named ``width`` and ``<layer>.<knob>`` (or ``<stage>.<knob>`` with ``share: stage``).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from ..cost import Cost
from ..errors import SpaceError
from ..layers import num_positions
from ..models import Architecture, ConvSlot, LayerSetting, Plan, plan
from .schema import SPACE_KNOBS, SearchSpace

KnobsFor = Callable[[int, "ParamGroup"], Mapping[str, Any]]

__all__ = ["BoundSpace", "ParamGroup", "resolve_setting"]


def resolve_setting(slot: ConvSlot, values: Mapping[str, Any]) -> LayerSetting:
    """The concrete SSC knobs of ``slot`` for search-space knob values (see ``schema``)."""
    groups = values["groups"]
    g = slot.in_channels if groups == "depthwise" else int(groups)
    block = slot.in_channels // g
    sf, pf = float(values["spatial_fraction"]), float(values["pointwise_fraction"])
    n_k = 0 if sf == 0 else min(block, max(1, round(sf * block)))
    n_1 = round(pf * (block - n_k))
    if n_k + n_1 == 0:
        n_1 = 1
    phases = values["phases"]
    if phases == "cover":
        phases = math.ceil(block / n_k) if n_k else 1
    pattern = values["pattern"] if slot.kernel_size > 1 and n_k else "full"
    return LayerSetting(
        groups="depthwise" if groups == "depthwise" else g,
        spatial_channels=n_k,
        pointwise_channels=n_1,
        pattern=pattern,
        phases=min(int(phases), block),
    )


def _groups_valid(value: Any, slot: ConvSlot) -> bool:
    if value == "depthwise":
        return slot.out_channels % slot.in_channels == 0
    return slot.in_channels % value == 0 and slot.out_channels % value == 0


@dataclass(frozen=True)
class ParamGroup:
    """Layers that share one set of knob values (one layer, or one stage)."""

    key: str
    slots: tuple[str, ...]
    choices: Mapping[str, tuple[Any, ...]]

    def param(self, knob: str) -> str:
        return f"{self.key}.{knob}"


class BoundSpace:
    """``space`` for ``in_channels`` x ``input_size`` images and ``num_classes`` outputs."""

    def __init__(self, space: SearchSpace, in_channels: int, num_classes: int,
                 input_size: tuple[int, int]) -> None:
        self.space = space
        self.in_channels, self.num_classes = in_channels, num_classes
        self.input_size = tuple(input_size)
        self.plans: dict[float, Plan] = {
            w: plan(space.family, w, in_channels, num_classes, self.input_size)
            for w in space.width
        }
        self.param_groups = self._param_groups()

    def _param_groups(self) -> tuple[ParamGroup, ...]:
        plans = list(self.plans.values())
        slots_by_name = {s.name: [p_slots[s.name] for p_slots in
                                  ({x.name: x for x in p.searchable} for p in plans)]
                         for s in plans[0].searchable}
        keys: dict[str, list[str]] = {}
        for slot in plans[0].searchable:
            key = slot.stage if self.space.share == "stage" else slot.name
            keys.setdefault(key, []).append(slot.name)
        out = []
        for key, names in keys.items():
            first = slots_by_name[names[0]][0]
            choices = self.space.choices_for(key)
            overridden = self.space.overridden(key)
            default = first.default
            if default.groups != 1 and "groups" not in overridden:
                choices["groups"] = (default.groups,)
            variants = [s for n in names for s in slots_by_name[n]]
            valid = tuple(g for g in choices["groups"] if all(_groups_valid(g, s)
                                                               for s in variants))
            if not valid:
                channels = sorted({(s.in_channels, s.out_channels) for s in variants})
                raise SpaceError(
                    f"{self.space.source or self.space.name}: layer {key} (channels "
                    f"{channels[:3]}) has no valid groups among {list(choices['groups'])}; "
                    "add 1 to its groups choices"
                )
            choices["groups"] = valid
            if all(s.kernel_size == 1 for s in variants):
                choices["pattern"] = ("full",)
            out.append(ParamGroup(key, tuple(names), {k: choices[k] for k in SPACE_KNOBS}))
        return tuple(out)

    # -- sampling -----------------------------------------------------------------------------

    def architecture(self, width: float, values: Mapping[str, Mapping[str, Any]]) -> Architecture:
        """The architecture for a width and each group's knob values (keyed by group key)."""
        p = self.plans[width]
        slots = {s.name: s for s in p.searchable}
        layers = {name: resolve_setting(slots[name], values[g.key])
                  for g in self.param_groups for name in g.slots}
        return Architecture(self.space.family, width, layers)

    def suggest(self, trial: optuna.trial.BaseTrial) -> Architecture:
        """Sample through Optuna: ``width`` and ``<layer>.<knob>`` categorical parameters."""
        width = self._pick(trial, "width", self.space.width)
        values = {g.key: {k: self._pick(trial, g.param(k), c) for k, c in g.choices.items()}
                  for g in self.param_groups}
        return self.architecture(width, values)

    @staticmethod
    def _pick(trial: optuna.trial.BaseTrial, name: str, choices: tuple[Any, ...]) -> Any:
        if len(choices) == 1:
            return choices[0]
        return trial.suggest_categorical(name, list(choices))

    def sample(self, rng: random.Random) -> Architecture:
        """A uniformly random architecture, without Optuna (for space statistics)."""
        width = rng.choice(self.space.width)
        values = {g.key: {k: rng.choice(c) for k, c in g.choices.items()}
                  for g in self.param_groups}
        return self.architecture(width, values)

    def params_for(
        self, width: float, knobs: Mapping[str, Any] | KnobsFor
    ) -> dict[str, Any] | None:
        """Optuna parameters of a design: the same ``knobs`` in every layer, or
        ``knobs(index, group)`` per parameter group. Unset knobs take a fixed knob's one choice.

        ``None`` when a value is not a choice of some layer (the design is not in the space).
        """
        if width not in self.space.width:
            return None
        params: dict[str, Any] = {} if len(self.space.width) == 1 else {"width": width}
        for i, g in enumerate(self.param_groups):
            values = knobs(i, g) if callable(knobs) else knobs
            for knob, choices in g.choices.items():
                value = values.get(knob, choices[0] if len(choices) == 1 else None)
                if value not in choices:
                    return None
                if len(choices) > 1:
                    params[g.param(knob)] = value
        return params

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        """The architecture Optuna parameters describe (fixed knobs take their one choice)."""
        width = params.get("width", self.space.width[0])
        values = {g.key: {k: params.get(g.param(k), c[0]) for k, c in g.choices.items()}
                  for g in self.param_groups}
        return self.architecture(width, values)

    # -- cost ---------------------------------------------------------------------------------

    def cost(self, arch: Architecture) -> Cost:
        return self.plans[arch.width].cost(arch)

    def size(self) -> int:
        """Number of distinct parameter assignments (some may build the same network)."""
        n = len(self.space.width)
        for g in self.param_groups:
            n *= math.prod(len(c) for c in g.choices.values())
        return n

    def cost_bounds(self) -> tuple[Cost, Cost]:
        """(smallest, largest) reachable params and MACs, each taken over the whole space."""
        lows, highs = [], []
        for p in self.plans.values():
            slots = {s.name: s for s in p.searchable}
            low = high = p.fixed_cost() + sum(
                (p.slot_cost(s, s.default) for s in p.slots if not s.searchable), Cost())
            for g in self.param_groups:
                costs = []
                # phases never changes the cost; patterns only through their tap counts.
                taps: dict[tuple[int, ...], str] = {}
                for pattern in g.choices["pattern"]:
                    taps.setdefault(tuple(num_positions(pattern, k) for k in (3, 5, 7)), pattern)
                for gr, pat, sf, pf in itertools.product(
                    g.choices["groups"], taps.values(), g.choices["spatial_fraction"],
                    g.choices["pointwise_fraction"],
                ):
                    v = {"groups": gr, "pattern": pat, "spatial_fraction": sf,
                         "pointwise_fraction": pf, "phases": 1}
                    costs.append(sum((p.slot_cost(slots[n], resolve_setting(slots[n], v))
                                      for n in g.slots), Cost()))
                low += Cost(min(c.params for c in costs), min(c.macs for c in costs))
                high += Cost(max(c.params for c in costs), max(c.macs for c in costs))
            lows.append(low)
            highs.append(high)
        return (Cost(min(c.params for c in lows), min(c.macs for c in lows)),
                Cost(max(c.params for c in highs), max(c.macs for c in highs)))

