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

from ..budget import Budget
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


def _channels(p: Plan) -> tuple[tuple[int, int], ...]:
    return tuple((s.in_channels, s.out_channels) for s in p.slots)


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
        #: The widths searched or filled. With ``width: fill`` (a grid of sixteenths, while
        #: channel counts round to multiples of 8) a run of widths that plan the same
        #: channels keeps only its widest, so no width is a copy of another.
        self.widths = space.width if not space.fill else tuple(
            w for w, wider in zip(space.width, (*space.width[1:], None), strict=True)
            if wider is None or _channels(self.plans[w]) != _channels(self.plans[wider]))
        self._group_costs: dict[float, tuple[Cost, list[list[Cost]]] | None] = {}
        self._slot_costs: dict[tuple, Cost] = {}

    def _param_groups(self) -> tuple[ParamGroup, ...]:
        plans = list(self.plans.values())
        slots_by_name = {s.name: [p_slots[s.name] for p_slots in
                                  ({x.name: x for x in p.searchable} for p in plans)]
                         for s in plans[0].searchable}
        by_width = [{x.name: x for x in p.searchable} for p in plans]
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
            if self.space.fill:  # valid at some width; fill_width skips the others
                valid = tuple(g for g in choices["groups"] if any(
                    all(_groups_valid(g, slots[n]) for n in names) for slots in by_width))
            else:
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

    def suggest(self, trial: optuna.trial.BaseTrial, budget: Budget | None = None
                ) -> Architecture:
        """Sample through Optuna: ``width`` and ``<layer>.<knob>`` categorical parameters.
        With ``width: fill`` the width is no parameter: it is :meth:`fill_width` for
        ``budget``."""
        return self._design(lambda name, choices: self._pick(trial, name, choices),
                            lambda values: self.fill_width(values, budget))

    def _design(self, pick: Callable[[str, tuple[Any, ...]], Any],
                fill: Callable[[dict[str, dict[str, Any]]], float]) -> Architecture:
        """The one way a design is put together: ``pick(name, choices)`` chooses the width
        (unless the space fills it) and then each group's knobs, in that order; ``fill(values)``
        gives a ``width: fill`` space its width."""
        width = None if self.space.fill else pick("width", self.space.width)
        values = {g.key: {k: pick(g.param(k), c) for k, c in g.choices.items()}
                  for g in self.param_groups}
        return self.architecture(fill(values) if width is None else width, values)

    def valid_at(self, width: float, values: Mapping[str, Mapping[str, Any]]) -> bool:
        """Whether each group's ``groups`` value divides its layers' channels at ``width``."""
        slots = {s.name: s for s in self.plans[width].searchable}
        return all(_groups_valid(values[g.key]["groups"], slots[n])
                   for g in self.param_groups for n in g.slots)

    def fill_width(self, values: Mapping[str, Mapping[str, Any]],
                   budget: Budget | None = None) -> float:
        """The widest of the space's widths at which these knob values make a valid network
        within ``budget`` (every limit); without a budget the widest valid one. When even the
        narrowest valid width is over budget, that width (the candidate is then rejected as
        over budget like any other)."""
        valid = [w for w in self.widths if self.valid_at(w, values)]
        if not valid:
            raise SpaceError(f"{self.space.source or self.space.name}: no width of the space "
                             "makes these knob values a valid network")
        if budget is None:
            return valid[-1]
        for width in reversed(valid):
            if budget.fits(self.plans[width].cost(self.architecture(width, values))):
                return width
        return valid[0]

    @staticmethod
    def _pick(trial: optuna.trial.BaseTrial, name: str, choices: tuple[Any, ...]) -> Any:
        if len(choices) == 1:
            return choices[0]
        return trial.suggest_categorical(name, list(choices))

    def sample(self, rng: random.Random, budget: Budget | None = None) -> Architecture:
        """A uniformly random architecture, without Optuna (for space statistics). With
        ``width: fill``: at :meth:`fill_width` for ``budget``; without a budget at a random
        width where the knobs are valid, so samples span the space as with a width list."""
        def fill(values: dict[str, dict[str, Any]]) -> float:
            if budget is not None:
                return self.fill_width(values, budget)
            return rng.choice([w for w in self.widths if self.valid_at(w, values)])

        return self._design(lambda _name, choices: rng.choice(choices), fill)

    def params_for(
        self, width: float, knobs: Mapping[str, Any] | KnobsFor
    ) -> dict[str, Any] | None:
        """Optuna parameters of a design: the same ``knobs`` in every layer, or
        ``knobs(index, group)`` per parameter group. Unset knobs take a fixed knob's one choice.

        ``None`` when a value is not a choice of some layer (the design is not in the space).
        """
        if width not in self.widths:
            return None
        searched = len(self.space.width) > 1 and not self.space.fill
        params: dict[str, Any] = {"width": width} if searched else {}
        for i, g in enumerate(self.param_groups):
            values = knobs(i, g) if callable(knobs) else knobs
            for knob, choices in g.choices.items():
                value = values.get(knob, choices[0] if len(choices) == 1 else None)
                if value not in choices:
                    return None
                if len(choices) > 1:
                    params[g.param(knob)] = value
        return params

    def values_of(self, params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Each group's knob values in Optuna parameters (a fixed knob takes its one choice):
        what :meth:`valid_at` and :meth:`architecture` take."""
        return {g.key: {k: params.get(g.param(k), c[0]) for k, c in g.choices.items()}
                for g in self.param_groups}

    def from_params(self, params: Mapping[str, Any], width: float | None = None,
                    budget: Budget | None = None) -> Architecture:
        """The architecture Optuna parameters describe (fixed knobs take their one choice),
        at ``width`` when given; a ``width: fill`` space fills ``budget`` otherwise."""
        def pick(name: str, choices: tuple[Any, ...]) -> Any:
            if name == "width" and width is not None:
                return width
            return params.get(name, choices[0])

        return self._design(pick, lambda values: width if width is not None
                            else self.fill_width(values, budget))

    # -- cost ---------------------------------------------------------------------------------

    def cost(self, arch: Architecture) -> Cost:
        return self.plans[arch.width].cost(arch)

    def size(self) -> int:
        """Number of distinct parameter assignments (some may build the same network)."""
        n = 1 if self.space.fill else len(self.space.width)
        for g in self.param_groups:
            n *= math.prod(len(c) for c in g.choices.values())
        return n

    def group_costs(self, width: float) -> tuple[Cost, list[list[Cost]]] | None:
        """At ``width``: the cost outside the searched layers and, per parameter group, the
        cost of each distinct choice (phases never changes a cost, patterns only through
        their tap counts). None when some group has no valid ``groups`` value at this width
        (possible with ``width: fill``). What ``cost_bounds`` and ``cost_front`` sum up."""
        if width in self._group_costs:
            return self._group_costs[width]
        p = self.plans[width]
        slots = {s.name: s for s in p.searchable}
        base = p.fixed_cost() + sum(
            (p.slot_cost(s, s.default) for s in p.slots if not s.searchable), Cost())
        out = []
        for g in self.param_groups:
            groups = [gr for gr in g.choices["groups"]
                      if all(_groups_valid(gr, slots[n]) for n in g.slots)]
            if not groups:
                self._group_costs[width] = None
                return None
            taps: dict[tuple[int, ...], str] = {}
            for pattern in g.choices["pattern"]:
                taps.setdefault(tuple(num_positions(pattern, k) for k in (3, 5, 7)), pattern)
            costs = []
            for gr, pat, sf, pf in itertools.product(
                groups, taps.values(), g.choices["spatial_fraction"],
                g.choices["pointwise_fraction"],
            ):
                v = {"groups": gr, "pattern": pat, "spatial_fraction": sf,
                     "pointwise_fraction": pf, "phases": 1}
                costs.append(sum((self._slot_cost(p, slots[n], v) for n in g.slots), Cost()))
            out.append(costs)
        self._group_costs[width] = (base, out)
        return base, out

    def _slot_cost(self, p: Plan, slot: ConvSlot, values: Mapping[str, Any]) -> Cost:
        """``p.slot_cost`` of the resolved knob values, memoized by the slot's shape (the
        slots of a stage mostly share one, and ``width: fill`` spaces have dozens of widths)."""
        key = (slot.in_channels, slot.out_channels, slot.kernel_size, slot.stride,
               slot.input_size, *values.values())
        if key not in self._slot_costs:
            self._slot_costs[key] = p.slot_cost(slot, resolve_setting(slot, values))
        return self._slot_costs[key]

    def cost_bounds(self) -> tuple[Cost, Cost]:
        """(smallest, largest) reachable params and MACs, each taken over the whole space."""
        lows, highs = [], []
        for width in self.widths:
            found = self.group_costs(width)
            if found is None:
                continue
            low = high = found[0]
            for costs in found[1]:
                low += Cost(min(c.params for c in costs), min(c.macs for c in costs))
                high += Cost(max(c.params for c in costs), max(c.macs for c in costs))
            lows.append(low)
            highs.append(high)
        return (Cost(min(c.params for c in lows), min(c.macs for c in lows)),
                Cost(max(c.params for c in highs), max(c.macs for c in highs)))

