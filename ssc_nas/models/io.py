"""Saving and loading architectures and trained models.

An *architecture file* (``ssc-nas export``) is JSON: the :class:`Architecture`, the input shape
it was searched for, and where it came from. A *model file* (``ssc-nas train``) is a torch
file with the same fields plus the ``state_dict``. :func:`load` reads either.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import cannot_write
from .architecture import Architecture, InputShape
from .registry import build

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["FORMAT", "load", "read_architecture_file", "save_atomically", "save_model",
           "write_architecture_file"]

FORMAT = "ssc-nas/architecture-v1"


def write_architecture_file(path: str | Path, arch: Architecture,
                            input_shape: InputShape | Mapping[str, Any], **extra: Any) -> Path:
    """Write an architecture file, making its folder if needed; ``input_shape`` is written as
    {"in_channels", "input_size", "num_classes"} (see :class:`InputShape`)."""
    path = Path(path)
    shape = InputShape.from_dict(input_shape).to_dict()
    data = {"format": FORMAT, "architecture": arch.to_dict(), "input": shape, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)  # as report -o and train --out do
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def read_architecture_file(path: str | Path) -> tuple[Architecture, dict[str, Any], dict]:
    """(architecture, input shape or {}, the whole file) from an architecture JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"architecture file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not an architecture file (invalid JSON: {exc})") from None
    except UnicodeDecodeError:  # a model file of ssc-nas train, say
        raise ValueError(f"{path} is not an architecture file (not JSON text; ssc-nas export "
                         "writes one)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not an architecture file")
    arch = Architecture.from_dict(data.get("architecture", data))
    return arch, data.get("input", {}), data


def save_atomically(obj: Any, path: str | Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` through a temporary file beside it, so a kill or a full
    disk never leaves half a file nor replaces a good one. A write the file system refuses (a
    full disk, a file-size limit, a read-only folder) is an :class:`SSCNasError` naming the file.

    The object is serialized in memory first: torch's file writer reports a failed write as a
    bare ``RuntimeError``, Python's as the ``OSError`` it is."""
    import torch  # here, not at the top: reading and writing architecture files needs none

    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(buffer.getbuffer())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise cannot_write(path, exc, tmp) from None
    return path


def save_model(path: str | Path, model: nn.Module, arch: Architecture,
               input_shape: InputShape | Mapping[str, Any], **extra: Any) -> Path:
    """Save weights with the architecture and input shape, so :func:`load` needs nothing else."""
    path = Path(path)
    shape = InputShape.from_dict(input_shape).to_dict()
    return save_atomically({"format": FORMAT, "architecture": arch.to_dict(), "input": shape,
                            "state_dict": model.state_dict(), **extra}, path)


def load(path: str | Path, weights: str | Path | None = None,
         map_location: str | torch.device = "cpu") -> nn.Module:
    """The ready ``nn.Module`` from an architecture JSON (optionally with ``weights``, a model
    file saved by ``ssc-nas train``) or directly from a model file. Eval mode."""
    import torch

    path = Path(path)
    if path.suffix == ".json":
        arch, shape, _ = read_architecture_file(path)
        state = None
    else:
        saved = torch.load(path, map_location=map_location, weights_only=False)
        missing = [k for k in ("architecture", "input", "state_dict")
                   if not isinstance(saved, dict) or k not in saved]
        if missing:
            raise ValueError(f"{path} is not a model file of ssc-nas train (no "
                             f"{', '.join(missing)}); load a weights-only file with "
                             "load('arch.json', weights=...)")
        arch, shape, state = (Architecture.from_dict(saved["architecture"]), saved["input"],
                              saved["state_dict"])
    if weights is not None:
        saved = torch.load(weights, map_location=map_location, weights_only=False)
        shape = saved.get("input", shape)
        state = saved.get("state_dict", saved)
    if not shape:
        raise ValueError(f"{path} has no input shape; export it with ssc-nas export")
    try:
        s = InputShape.from_dict(shape)
    except (KeyError, TypeError, ValueError, IndexError):
        raise ValueError(f"{path} has an unreadable input shape {shape!r}") from None
    model = build(arch, s.in_channels, s.num_classes, s.input_size)
    if state is not None:
        model.load_state_dict(state)
    return model.to(map_location).eval()
