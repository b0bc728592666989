"""After a search: front, studies, export -> train -> load, resume a killed train, dashboard."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import torch

import ssc_nas
from ssc_nas.data import load_splits
from ssc_nas.train import evaluate
from tests import forked
from tests.inprocess import run_cli

pytestmark = pytest.mark.slow  # a real search, training runs and processes to kill


def cli(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``ssc-nas ARGS`` as a process of its own (forked ready-imported: tests.forked)."""
    return forked.run(args, cwd, {**os.environ, "OMP_NUM_THREADS": "1"}, timeout=timeout)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real study made by `ssc-nas search` (in-process), shared by this module."""
    root = tmp_path_factory.mktemp("workflow")
    result = run_cli(["search", "--budget", "80k", "--dataset", "digits", "--space",
                      "digits-tiny", "--epochs", "1", "--trials", "3", "--sampler", "random",
                      "--strategy", "full", "--quiet"], root)
    assert result.returncode == 0, result.stderr
    return root


def _study(root: Path) -> optuna.Study:
    url = f"sqlite:///{root / 'ssc-nas.db'}"
    (summary,) = optuna.get_all_study_summaries(url)
    return optuna.load_study(study_name=summary.study_name, storage=url)


def test_front_output_matches_best_trials(searched: Path) -> None:
    study = _study(searched)
    # The default score, val loss, is minimized: best (lowest) first.
    expected = sorted(study.best_trials, key=lambda t: (t.values[0], t.number))
    as_json = json.loads(run_cli(["front", "--json"], searched).stdout)
    assert [r["trial"] for r in as_json] == [t.number for t in expected]
    for row, t in zip(as_json, expected, strict=True):
        assert [row["val_loss"], row["params"], row["macs"]] == t.values
        assert row["accuracy"] == t.user_attrs["val_accuracy"]
        assert row["architecture"] == t.user_attrs["architecture"]
    rows = list(csv.DictReader(io.StringIO(run_cli(["front", "--csv"], searched).stdout)))
    assert [int(r["trial"]) for r in rows] == [t.number for t in expected]
    table = run_cli(["front"], searched)
    assert table.returncode == 0 and "Pareto front" in table.stdout


def test_commands_that_read_a_study_answer_without_torch(searched: Path) -> None:
    """``front``, ``studies`` and ``export`` in a fresh process import no torch (it was 1.7 of
    their 2.9 s) and print what they print in-process, where torch is loaded."""
    trial = json.loads(run_cli(["front", "--json"], searched).stdout)[0]["trial"]
    commands = (["front", "--csv"], ["studies"], ["export", "--trial", str(trial), "-o", "a.json"])
    probe = (
        "import sys\n"
        "from ssc_nas.cli import main\n"
        f"for argv in {commands!r}:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, (argv, exc.code)\n"
        "print('@ torch', 'torch' in sys.modules)\n"
    )
    fresh = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           cwd=searched, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    exported = (searched / "a.json").read_text()
    expected = "".join(run_cli(argv, searched).stdout for argv in commands)
    expected = expected.replace("\r\n", "\n")  # the CSV's line ends, as text mode reads them
    assert fresh.stdout == expected + "@ torch False\n", fresh.stderr
    assert (searched / "a.json").read_text() == exported


def test_an_empty_front_says_why(tmp_path: Path) -> None:
    """A study whose only trial failed (a Ctrl-C in its first trial, say) prints one sentence,
    not an empty table."""
    study = optuna.create_study(study_name="early", storage=f"sqlite:///{tmp_path / 'e.db'}",
                                directions=["minimize"] * 3)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    result = run_cli(["front", "--storage", "sqlite:///e.db"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert " ".join(result.stdout.split()) == (
        "the front of study 'early' is empty: no trial within the budget has been trained "
        "through the whole schedule yet (its trials: 1 failed); run the search again to go on")


def test_studies_lists_the_study(searched: Path) -> None:
    result = run_cli(["studies"], searched)
    assert result.returncode == 0
    assert _study(searched).study_name[:8] in result.stdout


def test_export_train_load_round_trip(searched: Path) -> None:
    study = _study(searched)
    best = min(study.best_trials, key=lambda t: t.values[0])  # lowest val loss
    arch = searched / "designs" / "arch.json"  # a new folder: export makes it, as report does
    exported = run_cli(["export", "--trial", str(best.number), "-o", str(arch)], searched)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(arch.read_text())
    assert data["architecture"] == best.user_attrs["architecture"]
    assert data["input"] == {"in_channels": 1, "input_size": [8, 8], "num_classes": 10}
    assert data["summary"].split(": ")[-1].startswith("ResNet-20 x")
    assert {r["layer"] for r in data["layer_table"]} >= set(data["architecture"]["layers"])
    run = searched / "run"
    trained = cli(["train", str(arch), "--dataset", "digits", "--epochs", "2", "--out",
                   str(run), "--lr", "0.05", "--quiet"], searched)
    assert trained.returncode == 0, trained.stderr
    reported = float(trained.stdout.split("test accuracy ")[1].split(";")[0])
    model = ssc_nas.load(run / "model.pt")
    assert not model.training
    test = load_splits("digits").test
    measured = evaluate(model, test)
    n = len(test.tensors[1])  # every accuracy carries its noise
    se = math.sqrt(measured * (1 - measured) / n)
    assert (f"± {se:.4f} binomial standard error on {n} test images, one training seed"
            in " ".join(trained.stdout.split()))
    saved = torch.load(run / "model.pt", weights_only=False)
    assert measured == pytest.approx(saved["test_accuracy"], abs=1e-12)
    assert measured == pytest.approx(reported, abs=5e-5)
    assert measured > 0.3
    again = ssc_nas.load(arch, weights=run / "model.pt")
    x = test.tensors[0][:4]
    torch.testing.assert_close(again(x), model(x))
    assert saved["architecture"] == best.user_attrs["architecture"]


def test_train_takes_the_study_dataset_and_refuses_another_runs_folder(searched: Path) -> None:
    """Without --dataset an exported architecture trains on the dataset it was searched on; a
    second run with other settings into the same folder is one clear error, not a resume."""
    arch = searched / "arch-default.json"
    assert run_cli(["export", "--trial", "0", "-o", str(arch)], searched).returncode == 0
    trained = run_cli(["train", str(arch), "--epochs", "1", "--quiet"], searched)
    assert trained.returncode == 0, trained.stderr
    assert "dataset digits: the one" in trained.stderr
    n = len(load_splits("digits").test.tensors[1])
    assert f"on {n} test images" in " ".join(trained.stdout.split())
    checkpoint = searched / "runs" / "arch-default-digits" / "checkpoint.pt"
    saved = checkpoint.read_bytes()
    refused = run_cli(["train", str(arch), "--epochs", "2", "--quiet"], searched)
    assert refused.returncode == 2
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert "another run's checkpoint (train.epochs 1 there, 2 now)" in line
    assert "Traceback" not in refused.stderr and checkpoint.read_bytes() == saved


def test_killed_train_resumes_from_checkpoint(searched: Path) -> None:
    EPOCHS = 12  # noqa: N806  the resumed run trains the 10 or 11 after the kill
    arch = searched / "arch-resume.json"
    assert run_cli(["export", "--trial", "0", "-o", str(arch)], searched).returncode == 0
    run = searched / "run-resume"
    args = ["train", str(arch), "--dataset", "digits", "--epochs", str(EPOCHS), "--out",
            str(run), "--quiet"]
    proc = forked.start(args, searched, {**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoint = run / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline and not checkpoint.exists():  # written atomically
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # within 50 ms of epoch 1: nowhere near all epochs
    proc.communicate()
    state = torch.load(checkpoint, weights_only=False)
    done = state["epoch"]
    assert 1 <= done < EPOCHS
    resumed = run_cli(["train", str(arch), "--dataset", "digits", "--epochs", str(EPOCHS),
                       "--out", str(run)], searched)
    assert resumed.returncode == 0, resumed.stderr
    epochs = [int(line.split()[1]) for line in resumed.stderr.splitlines()
              if line.startswith("epoch")]
    assert epochs and epochs[0] == done + 1 and epochs[-1] == EPOCHS
    final = torch.load(checkpoint, weights_only=False)
    assert final["epoch"] == EPOCHS and len(final["result"]["val_accuracy"]) == EPOCHS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study(searched: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ssc_nas", "dashboard", "--port", str(port)],
                            cwd=searched, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        body = None
        deadline = time.time() + 60
        while time.time() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.3)
        assert body is not None, "optuna-dashboard did not answer"
        study = _study(searched)
        (summary,) = [s for s in body["study_summaries"]
                      if s["study_name"] == study.study_name]
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}?after=0", timeout=10
        ) as r:
            detail = json.loads(r.read())
        assert len(detail["trials"]) == len(study.trials)
        attrs = {a["key"] for t in detail["trials"] for a in t["user_attrs"]}
        assert {"architecture", "params", "macs"} <= attrs
        params = {p["name"] for t in detail["trials"] for p in t["params"]}
        assert "stage1.groups" in params
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_export_unknown_trial_is_a_clear_error(searched: Path) -> None:
    result = run_cli(["export", "--trial", "999"], searched)
    assert result.returncode == 2 and "no trial 999" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli(["front", "--storage", f"sqlite:///{searched / 'nope.db'}"], searched)
    assert missing.returncode == 2 and "no such database file" in missing.stderr


def test_front_reads_a_read_only_database(searched: Path) -> None:
    """Reading a front needs no write access: a read-only SQLite URI works."""
    url = f"sqlite:///file:{searched / 'ssc-nas.db'}?mode=ro&uri=true"
    result = run_cli(["front", "--storage", url, "--json"], searched)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)
