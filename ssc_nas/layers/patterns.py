"""Spatial patterns of an SSC kernel and their exact decomposition into small convolutions.

A pattern says which of the K x K positions a spatial kernel keeps. The fast path never runs a
dense K x K convolution with a mask: each pattern is split into *pieces*, rectangular dilated
sub-lattices of the K x K window that are symmetric about its centre, so each piece is one
native (grouped, dilated) convolution over exactly the kept taps:

========  =====================  ===================================================
pattern   taps                   pieces
========  =====================  ===================================================
full      K^2                    one K x K convolution
plus      2K - 1                 one K x 1 column + the row without its centre as
                                 1 x 2 convolutions of dilation 2r, r = 1..(K-1)/2
x         2K - 1                 the centre + 2 x 2 convolutions of dilation 2r
checker   (K^2 + 1) / 2          the even/even sub-lattice (dilation 2) + the odd/odd one
center    1                      the centre (a 1 x 1 convolution)
========  =====================  ===================================================

Where the layer runs a 1 x 1 convolution anyway (it has pointwise channels), the centre tap is
folded into that convolution and dropped from the pieces (``include_center=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "PATTERNS",
    "Piece",
    "num_positions",
    "pattern_mask",
    "pattern_pieces",
    "pattern_positions",
    "validate_pattern",
]

PATTERNS: tuple[str, ...] = ("full", "plus", "x", "checker", "center")


def validate_pattern(pattern: str) -> None:
    """Raise ``ValueError`` naming the valid patterns when ``pattern`` is not one of them."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, but got {pattern!r}")


def _keeps(pattern: str, k: int, i: int, j: int) -> bool:
    """Whether a K x K kernel of ``pattern`` keeps position (i, j): the one place the patterns
    are defined."""
    c = k // 2
    if pattern == "full":
        return True
    if pattern == "plus":
        return i == c or j == c
    if pattern == "x":
        return i == j or i + j == k - 1
    if pattern == "checker":
        return (i + j) % 2 == 0
    return i == c and j == c


def pattern_mask(pattern: str, kernel_size: int) -> torch.Tensor:
    """The (K, K) boolean mask of the positions ``pattern`` keeps."""
    import torch  # here, not at the top: the positions and pieces need no torch

    k = kernel_size
    mask = torch.zeros(k, k, dtype=torch.bool)
    for i, j in pattern_positions(pattern, k):
        mask[i, j] = True
    return mask


def pattern_positions(pattern: str, kernel_size: int) -> tuple[tuple[int, int], ...]:
    """Kept positions in row-major order; a stored spatial kernel lists its taps in this order."""
    return _positions(pattern, kernel_size)


@cache
def _positions(pattern: str, kernel_size: int) -> tuple[tuple[int, int], ...]:
    validate_pattern(pattern)
    k = kernel_size
    return tuple((i, j) for i in range(k) for j in range(k) if _keeps(pattern, k, i, j))


def num_positions(pattern: str, kernel_size: int) -> int:
    """Number of taps a spatial kernel of ``pattern`` keeps (K^2, 2K-1, (K^2+1)/2 or 1)."""
    return len(_positions(pattern, kernel_size))


@dataclass(frozen=True)
class Piece:
    """A dilated rectangular sub-lattice of the K x K window: one native convolution.

    Taps are at rows ``row + dilation[0] * a`` (a < size[0]) and columns
    ``col + dilation[1] * b`` (b < size[1]). ``taps`` indexes those positions, in (a, b)
    row-major order, into :func:`pattern_positions`, so a piece's weight is
    ``stored[..., taps].reshape(..., *size)``.
    """

    row: int
    col: int
    size: tuple[int, int]
    dilation: tuple[int, int]
    taps: tuple[int, ...]


def _lattice(kernel_size: int, pattern: str, rows: list[int], cols: list[int]) -> Piece:
    index = {pos: n for n, pos in enumerate(_positions(pattern, kernel_size))}
    dil_r = rows[1] - rows[0] if len(rows) > 1 else 1
    dil_c = cols[1] - cols[0] if len(cols) > 1 else 1
    taps = tuple(index[(r, c)] for r in rows for c in cols)
    return Piece(rows[0], cols[0], (len(rows), len(cols)), (dil_r, dil_c), taps)


@cache
def pattern_pieces(
    pattern: str, kernel_size: int, include_center: bool = True
) -> tuple[Piece, ...]:
    """Split ``pattern`` into pieces that together cover each kept tap exactly once.

    With ``include_center=False`` the centre tap is left out (the caller runs it in its 1 x 1
    convolution). Every piece is symmetric about the centre, so it keeps the layer's padding
    minus its offset on both sides and the output size is unchanged.
    """
    validate_pattern(pattern)
    k = kernel_size
    c = k // 2
    rings = range(1, c + 1)
    if k == 1:
        return (_lattice(k, pattern, [0], [0]),) if include_center else ()
    pieces: list[Piece] = []
    if pattern == "full":
        if not include_center:
            raise ValueError("the full pattern keeps its centre tap inside its K x K piece")
        pieces.append(_lattice(k, pattern, list(range(k)), list(range(k))))
    elif pattern == "plus":
        if include_center:
            pieces.append(_lattice(k, pattern, list(range(k)), [c]))
        else:
            pieces += [_lattice(k, pattern, [c - r, c + r], [c]) for r in rings]
        pieces += [_lattice(k, pattern, [c], [c - r, c + r]) for r in rings]
    elif pattern == "x":
        pieces += [_lattice(k, pattern, [c - r, c + r], [c - r, c + r]) for r in rings]
        if include_center:
            pieces.append(_lattice(k, pattern, [c], [c]))
    elif pattern == "checker":
        even = list(range(0, k, 2))
        odd = list(range(1, k, 2))
        # The centre (c, c) lies on the even lattice when c is even, on the odd one otherwise.
        if c % 2 == 0:
            if include_center:
                pieces.append(_lattice(k, pattern, even, even))
            else:
                pieces += _checker_without_center(k, pattern, even)
            if odd:
                pieces.append(_lattice(k, pattern, odd, odd))
        else:
            pieces.append(_lattice(k, pattern, even, even))
            if include_center:
                pieces.append(_lattice(k, pattern, odd, odd))
            else:
                pieces += _checker_without_center(k, pattern, odd)
    elif include_center:
        pieces.append(_lattice(k, pattern, [c], [c]))
    return tuple(pieces)


def _checker_without_center(k: int, pattern: str, lattice: list[int]) -> list[Piece]:
    """The sub-lattice through the centre, minus the centre, as symmetric pieces.

    Rows of the lattice other than the centre row come as one piece of full width (split into
    symmetric row pairs); the centre row comes as symmetric column pairs.
    """
    c = k // 2
    pieces: list[Piece] = []
    for r in sorted({abs(v - c) for v in lattice} - {0}):
        pieces.append(_lattice(k, pattern, [c - r, c + r], lattice))
    for r in sorted({abs(v - c) for v in lattice} - {0}):
        pieces.append(_lattice(k, pattern, [c], [c - r, c + r]))
    return pieces
