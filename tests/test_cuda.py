"""CUDA paths: the layer stays exact on the GPU, and training steps there match the CPU.

Skipped on machines without CUDA; ``benchmarks/gpu_check.sh`` runs them where there is one.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from ssc_nas.data import load_splits
from ssc_nas.layers import SSCConv2d, SSCSpec
from ssc_nas.models import Architecture, build
from ssc_nas.train import TrainConfig, Trainer, _to_device

from .test_layer import specs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def no_tf32():
    """Exact fp32 convolutions and matmuls, so GPU and CPU can be compared tightly."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@settings(max_examples=40, deadline=None)
@given(spec=specs(), seed=st.integers(0, 2**16), channels_last=st.booleans())
def test_cuda_forward_and_backward_equal_the_dense_reference(
    spec: SSCSpec, seed: int, channels_last: bool
) -> None:
    torch.manual_seed(seed)
    layer = SSCConv2d.from_spec(spec).double().cuda()
    size = spec.kernel_size + 4
    x = torch.randn(2, spec.in_channels, size, size + 1, dtype=torch.float64, device="cuda")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    fast, ref = layer._sparse_forward(x), layer.reference_forward(x)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer(x), ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(fast)
    params = list(layer.parameters())
    a = torch.autograd.grad((fast * g).sum(), [x, *params], materialize_grads=True)
    b = torch.autograd.grad((ref * g).sum(), [x, *params], materialize_grads=True)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-9)


def test_cuda_layer_equals_cpu_layer() -> None:
    torch.manual_seed(0)
    layer = SSCConv2d(32, 64, 3, stride=2, groups=2, spatial_channels=4, pointwise_channels=8,
                      pattern="plus", phases=4)
    x = torch.randn(4, 32, 17, 17)
    torch.testing.assert_close(layer.cuda()(x.cuda()).cpu(), layer.cpu()(x), rtol=1e-4,
                               atol=1e-4)


def test_pinned_non_blocking_copy_arrives_intact() -> None:
    x = torch.randn(64, 3, 32, 32)
    y = _to_device(x, torch.device("cuda"))
    assert y.is_cuda
    torch.testing.assert_close(y.cpu(), x, rtol=0, atol=0)


def _trainer(device: str, amp: str = "off", epochs: int = 1) -> Trainer:
    digits = load_splits("digits")
    torch.manual_seed(0)
    model = build(Architecture("resnet20", 0.5), 1, 10, (8, 8))
    return Trainer(model, digits.train, TrainConfig(epochs=epochs, amp=amp), seed=0, device=device)


def test_cuda_layer_takes_the_dense_weight_path() -> None:
    layer = SSCConv2d.hetconv(64, 64, part=8)
    assert not layer.plan.dense_weight
    assert not layer.uses_dense_weight(torch.zeros(1, 64, 8, 8))
    assert layer.cuda().uses_dense_weight(torch.zeros(1, 64, 8, 8, device="cuda"))


def test_cuda_depthwise_layer_runs_nchw_and_returns_channels_last() -> None:
    """Depthwise layers on a GPU skip cuDNN's run-time compiled channels_last kernels (see
    ``SSCConv2d._dense_conv``): same values and gradients, same memory format out."""
    torch.manual_seed(0)
    layer = SSCConv2d.depthwise(16, multiplier=2, stride=2).double().cuda()
    x = torch.randn(4, 16, 9, 9, dtype=torch.float64, device="cuda")
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    y, ref = layer(x), layer.reference_forward(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(y)
    params = [x, *layer.parameters()]
    a = torch.autograd.grad((y * g).sum(), params, materialize_grads=True)
    b = torch.autograd.grad((ref * g).sum(), params, materialize_grads=True)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-9)


def test_cuda_training_step_matches_cpu() -> None:
    """One step (one batch, constant learning rate) in float64: the same loss and the same
    update. (In float32 one step already differed by up to 2.7e-4 in a first-layer weight on
    an H100, so fp32 rounding would hide a real difference.)"""
    x, y = load_splits("digits").train.tensors
    one_batch = TensorDataset(x[:64].double(), y[:64])
    trainers = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = build(Architecture("resnet20", 0.5), 1, 10, (8, 8)).double()
        trainers.append(Trainer(model, one_batch, TrainConfig(epochs=1), seed=0, device=device))
    cpu, gpu = trainers
    loss_cpu, loss_gpu = cpu.run_epoch(), gpu.run_epoch()
    assert torch.backends.cudnn.benchmark == TrainConfig().cudnn_benchmark
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-10)
    for p, q in zip(cpu.model.parameters(), gpu.model.parameters(), strict=True):
        torch.testing.assert_close(q.cpu(), p, rtol=1e-8, atol=1e-10)


def test_cuda_training_epoch_tracks_cpu() -> None:
    """A whole epoch (20 steps) drifts apart in fp32 rounding, so only its mean loss is compared:
    an H100 run gave 1.2188 against the CPU's 1.2132 (0.46 %)."""
    cpu, gpu = _trainer("cpu"), _trainer("cuda")
    assert gpu.run_epoch() == pytest.approx(cpu.run_epoch(), rel=2e-2)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_mixed_precision_trains(amp: str) -> None:
    digits = load_splits("digits")
    trainer = _trainer("cuda", amp, epochs=3)
    first = trainer.run_epoch()
    for _ in range(2):
        last = trainer.run_epoch()
    assert last < first
    trainer.recalibrate_batchnorm()
    assert trainer.evaluate(digits.val) > 0.5  # chance is 0.1


def test_cuda_checkpoint_mapped_onto_the_gpu_resumes_exactly(tmp_path) -> None:
    """A checkpoint loaded with ``map_location=cuda`` (successive halving's promotions, full
    training's resume) puts the random states and batch order on the GPU too; the trainer takes
    them back to the CPU. Stopped mid-epoch and continued, it ends where one run ends (float64,
    so that cuDNN's summation order cannot hide a wrong batch order)."""
    x, y = load_splits("digits").train.tensors
    data = TensorDataset(x.double(), y)

    def trainer() -> Trainer:
        torch.manual_seed(0)
        model = build(Architecture("resnet20", 0.5), 1, 10, (8, 8)).double()
        return Trainer(model, data, TrainConfig(epochs=2), seed=0, device="cuda")

    whole = trainer()
    whole.train_steps(whole.total_steps)
    first = trainer()
    first.train_steps(first.steps_per_epoch + 3)
    torch.save(first.state_dict(), tmp_path / "c.pt")
    second = trainer()
    second.load_state_dict(torch.load(tmp_path / "c.pt", map_location="cuda",
                                      weights_only=False))
    second.train_steps(second.total_steps)
    assert second.step == whole.step == whole.total_steps
    for p, q in zip(whole.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-7, atol=1e-9)


def _two_epochs(data: TensorDataset, **config: bool) -> tuple[Trainer, list[float]]:
    """A float64 half-width ResNet-20 trained two epochs on the GPU; the epochs' losses."""
    torch.manual_seed(0)
    model = build(Architecture("resnet20", 0.5), 1, 10, (8, 8)).double()
    trainer = Trainer(model, data, TrainConfig(epochs=2, **config), seed=0, device="cuda")
    return trainer, [trainer.run_epoch() for _ in range(2)]


def test_cuda_graphed_training_equals_eager() -> None:
    """Full batches replayed as CUDA graphs (``TrainConfig.cuda_graphs``) train as eager steps
    do (float64; two epochs, each ending in a smaller batch that runs eagerly), and the module
    keeps its eager forward for BatchNorm re-estimation and evaluation."""
    digits = load_splits("digits")
    x, y = digits.train.tensors
    assert len(y) % TrainConfig().batch_size  # a last, smaller batch every epoch
    data = TensorDataset(x.double(), y)
    val = TensorDataset(digits.val.tensors[0].double(), digits.val.tensors[1])
    runs = []
    for graphs in (False, True):
        trainer, losses = _two_epochs(data, cuda_graphs=graphs)
        trainer.recalibrate_batchnorm()
        runs.append((trainer, losses, trainer.scores(val)))
    (eager, eager_losses, eager_scores), (graphed, graphed_losses, graphed_scores) = runs
    assert eager._graphed is None and graphed._graphed is not None
    assert "forward" not in vars(graphed.model)  # the class's forward, not the graph's
    assert graphed_losses == pytest.approx(eager_losses, rel=1e-9)
    for p, q in zip(eager.model.parameters(), graphed.model.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-7, atol=1e-9)
    assert graphed_scores == pytest.approx(eager_scores, rel=1e-7)


def test_cuda_dense_layout_trains_as_compact_training() -> None:
    """On a GPU every SSC layer trains in its dense layout (``ssc_nas.layers.dense_layout``),
    replayed as CUDA graphs across two epochs (the layout is left and entered again between
    them), and ends where compact training ends (float64), with the compact model outside."""
    x, y = load_splits("digits").train.tensors
    data = TensorDataset(x.double(), y)
    runs = []
    for layout in (False, True):
        trainer, losses = _two_epochs(data, dense_layout=layout)
        model = trainer.model
        layers = [m for m in model.modules() if isinstance(m, SSCConv2d)]
        assert all((m._layout is not None) == layout and not m.in_dense_layout for m in layers)
        assert "dense_weight" not in dict(model.named_parameters())
        runs.append((model, losses))
    (compact, compact_losses), (dense, dense_losses) = runs
    assert dense_losses == pytest.approx(compact_losses, rel=1e-9)
    for p, q in zip(compact.parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-7, atol=1e-9)
