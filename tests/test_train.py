"""Proxy training: learns, is reproducible, and stops hopeless candidates by our rule."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ssc_nas.data import load_splits
from ssc_nas.models import Architecture, build
from ssc_nas.runtime import cpu_has_native_bf16
from ssc_nas.train import (
    AMP_MIN_SPEEDUP,
    BN_IMAGES,
    TrainConfig,
    Trainer,
    autocast,
    autocast_speedup,
    evaluate,
    hopeless,
    resolve_amp,
    scores,
    train_model,
)


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits")


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(Architecture("resnet20", 0.5), 1, 10, (8, 8))


def test_short_training_learns_digits(digits) -> None:
    result = train_model(_model(), digits.train, digits.val, TrainConfig(epochs=2),
                         num_classes=10, seed=0)
    assert result.epochs_run == 2 and len(result.val_accuracy) == 2
    assert result.final_accuracy > 0.5  # chance is 0.1
    assert result.stopped_early is None


class _FixedLogits(nn.Module):
    """Returns the logits stored for each input's first pixel value (its index)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x.flatten(1)[:, 0].long()]


def test_scores_are_accuracy_and_plain_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    data = TensorDataset(torch.arange(3.0).view(3, 1, 1, 1), torch.tensor([0, 1, 1]))
    acc, loss = scores(_FixedLogits(logits), data, batch_size=2)
    assert acc == pytest.approx(2 / 3)
    expected = -(torch.log_softmax(logits, 1)[[0, 1, 2], [0, 1, 1]]).mean()
    assert loss == pytest.approx(float(expected), rel=1e-6)
    assert evaluate(_FixedLogits(logits), data) == acc


def test_validation_records_accuracy_and_loss(digits) -> None:
    result = train_model(_model(), digits.train, digits.val, TrainConfig(epochs=1),
                         num_classes=10, seed=0)
    assert len(result.val_loss) == len(result.val_accuracy) == 1
    assert result.final_loss == result.val_loss[-1] > 0


def test_training_is_reproducible(digits) -> None:
    config = TrainConfig(epochs=1)
    a = train_model(_model(1), digits.train, digits.val, config, num_classes=10, seed=3)
    b = train_model(_model(1), digits.train, digits.val, config, num_classes=10, seed=3)
    assert a.val_accuracy == b.val_accuracy and a.train_loss == b.train_loss


def test_full_training_is_reproducible_from_its_seed(tmp_path) -> None:
    """``ssc-nas train --seed``: the same seed gives the same model, initial weights included
    (they are drawn after seeding, whatever the global RNG held before)."""
    from ssc_nas.models import InputShape, write_architecture_file
    from ssc_nas.train import train_architecture

    arch_file = tmp_path / "arch.json"
    write_architecture_file(arch_file, Architecture("resnet20", 0.25), InputShape(1, (8, 8), 10))
    config = TrainConfig(epochs=1)
    runs = []
    for i, seed in enumerate((5, 5, 6)):
        torch.manual_seed(100 + i)  # whatever the caller's RNG state
        runs.append(train_architecture(arch_file, "digits", tmp_path / f"run{i}", config,
                                       seed=seed))
    weights = [torch.load(r.model_path, weights_only=False)["state_dict"] for r in runs]
    assert runs[0].test_accuracy == runs[1].test_accuracy
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    assert runs[0].test_images == len(load_splits("digits").test.tensors[1])


def test_a_run_folder_resumes_only_its_own_run(tmp_path) -> None:
    """``ssc-nas train`` into a folder that holds another run's checkpoint (another
    architecture exported to the same file name, other epochs, seed or learning rate) is
    refused with the differences, and the checkpoint is left as it was; the same run resumes."""
    from ssc_nas.errors import CheckpointError
    from ssc_nas.models import InputShape, write_architecture_file
    from ssc_nas.train import train_architecture

    shape = InputShape(1, (8, 8), 10)
    arch_file, other_file = tmp_path / "arch.json", tmp_path / "other" / "arch.json"
    other_file.parent.mkdir()
    write_architecture_file(arch_file, Architecture("resnet20", 0.25), shape)
    write_architecture_file(other_file, Architecture("resnet20", 0.5), shape)
    folder = tmp_path / "run"
    first = train_architecture(arch_file, "digits", folder, TrainConfig(epochs=1))
    saved = first.checkpoint.read_bytes()
    refused = [(arch_file, TrainConfig(epochs=2), 0, "train.epochs 1 there, 2 now"),
               (arch_file, TrainConfig(epochs=1, lr=0.05), 0, "train.lr None there, 0.05 now"),
               (arch_file, TrainConfig(epochs=1), 1, "seed 0 there, 1 now"),
               (other_file, TrainConfig(epochs=1), 0, "another architecture")]
    for file, config, seed, difference in refused:
        with pytest.raises(CheckpointError, match=difference):
            train_architecture(file, "digits", folder, config, seed=seed)
    assert first.checkpoint.read_bytes() == saved
    again = train_architecture(arch_file, "digits", folder, TrainConfig(epochs=1))
    assert again.test_accuracy == first.test_accuracy
    assert again.result.val_accuracy == first.result.val_accuracy


@pytest.mark.parametrize(
    ("loss", "acc", "expected"),
    [(0.5, 0.9, None), (float("nan"), 0.9, "not finite"), (float("inf"), 0.9, "not finite"),
     (2.3, 0.12, "chance"), (2.3, 0.149, "chance"), (2.3, 0.151, None)],
)
def test_hopeless_rule(loss: float, acc: float, expected: str | None) -> None:
    reason = hopeless(loss, acc, num_classes=10, factor=1.5)
    assert (reason is None) if expected is None else (expected in reason)


def test_a_candidate_that_cannot_learn_stops_after_one_epoch(digits) -> None:
    # A constant model: its validation accuracy is one class's share, below 1.5 x chance.
    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bias.expand(x.shape[0], 10) * 0

    result = train_model(Constant(), digits.train, digits.val,
                         TrainConfig(epochs=5, channels_last=False), num_classes=10)
    assert result.epochs_run == 1
    assert "chance" in result.stopped_early


def test_diverging_candidate_stops(digits) -> None:
    config = TrainConfig(epochs=4, lr=1e6, momentum=0.0, label_smoothing=0.0)
    result = train_model(_model(), digits.train, digits.val, config, num_classes=10)
    assert result.epochs_run < 4
    assert result.stopped_early is not None
    assert not math.isfinite(result.train_loss[0]) or "chance" in result.stopped_early


def test_evaluate_counts_correct_predictions() -> None:
    x = torch.randn(10, 4)
    y = torch.tensor([0, 1] * 5)

    class Oracle(nn.Module):
        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(y[: len(inp)], 2).float()

    assert evaluate(Oracle(), TensorDataset(x, y), batch_size=64) == 1.0


def test_bad_train_config_raises() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="amp must be one of off, bf16, fp16"):
        TrainConfig(amp="fp8")


def test_bf16_autocast_runs_on_cpu_and_fp16_does_not() -> None:
    model, x = _model(), torch.randn(2, 1, 8, 8)
    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        assert model(x).dtype == torch.bfloat16
    for amp in ("off", "fp16"):  # fp16 autocast is for CUDA; on CPU the forward stays fp32
        with autocast(cpu, amp):
            assert model(x).dtype == torch.float32


def test_bf16_training_on_cpu_learns_and_keeps_float32_weights(digits) -> None:
    config = TrainConfig(epochs=2)
    a = train_model(_model(1), digits.train, digits.val, config, num_classes=10, seed=3)
    model = _model(1)
    b = train_model(model, digits.train, digits.val, replace(config, amp="bf16"),
                    num_classes=10, seed=3)
    assert b.train_loss != a.train_loss  # the forward ran in bf16
    assert b.final_accuracy > 0.5 and abs(b.final_accuracy - a.final_accuracy) < 0.1
    assert all(p.dtype == torch.float32 for p in model.parameters())
    again = train_model(_model(1), digits.train, digits.val, replace(config, amp="bf16"),
                        num_classes=10, seed=3)
    assert again.train_loss == b.train_loss  # bf16 training is reproducible too


def test_auto_amp_is_a_resumed_studys_else_bf16_only_where_it_measured_faster() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_amp("auto", cpu, stored="off") == "off"  # a resumed study keeps its own
    assert resolve_amp("auto", cuda, stored="bf16") == "bf16"
    assert resolve_amp("auto", cuda, speedup=lambda: 2.0) == "off"
    calls: list[float] = []

    def probe(value: float):
        return lambda: calls.append(value) or value

    native = cpu_has_native_bf16()
    assert resolve_amp("auto", cpu, speedup=probe(1.3)) == ("bf16" if native else "off")
    assert resolve_amp("auto", cpu, speedup=probe(AMP_MIN_SPEEDUP - 0.01)) == "off"
    assert calls == ([1.3, AMP_MIN_SPEEDUP - 0.01] if native else [])  # measured only there
    assert resolve_amp("auto", cpu) == "off"  # nothing measured: float32
    for amp in ("off", "bf16", "fp16"):
        assert resolve_amp(amp, cpu, stored="off", speedup=probe(0.5)) == amp  # the user wins


def test_autocast_speedup_times_both_precisions_and_leaves_the_weights() -> None:
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    speedup = autocast_speedup(model, (1, 8, 8), 10, batch_size=8, rounds=2)
    assert math.isfinite(speedup) and speedup > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_validation_uses_batchnorm_statistics_of_the_current_weights(digits) -> None:
    """After an epoch, each BatchNorm's running mean is the average batch mean of its input over
    the first BN_IMAGES training images, under the weights the epoch ended with."""
    trainer = Trainer(_model(), digits.train, TrainConfig(epochs=2, channels_last=False), seed=0)
    trainer.epoch_with_validation(digits.val)
    bn = next(m for m in trainer.model.modules() if isinstance(m, nn.BatchNorm2d))
    means: list[torch.Tensor] = []
    hook = bn.register_forward_hook(lambda _m, args, _out: means.append(args[0].mean((0, 2, 3))))
    trainer.model.eval()
    with torch.no_grad():
        for x in digits.train.tensors[0][:BN_IMAGES].split(trainer.config.batch_size):
            trainer.model(x)
    hook.remove()
    expected = torch.stack(means).mean(0)
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)
    assert bn.momentum == 0.1  # training itself keeps torch's default
