"""Budget strings: exact counts only."""

from __future__ import annotations

import pytest

from ssc_nas.budget import parse_count
from ssc_nas.errors import BudgetError


@pytest.mark.parametrize(("text", "count"), [("0.5M", 500_000), ("500k", 500_000),
                                             ("500000", 500_000), ("5e5", 500_000),
                                             ("1.5k", 1500), ("2.5k", 2500), ("1e6", 10**6),
                                             (80_000, 80_000), (5e5, 500_000)])
def test_parse_count_exact(text, count) -> None:
    assert parse_count(text) == count


@pytest.mark.parametrize(("text", "rule"), [("2.5", "whole number"), ("1.0005k", "whole number"),
                                            (2.5, "whole number"), ("1e6k", "one suffix"),
                                            ("1e3M", "one suffix"), ("0.0015k", "whole number")])
def test_parse_count_refuses_fractions_and_doubled_suffixes(text, rule) -> None:
    with pytest.raises(BudgetError, match=rule) as info:
        parse_count(text, "--budget")
    message = str(info.value)
    assert "\n" not in message and "--budget" in message and repr(text) in message

