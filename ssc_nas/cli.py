"""The ``ssc-nas`` command line: subcommands only, each a thin wrapper over the Python API."""

from __future__ import annotations

import errno
import sys
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

# Only torch-free modules here (checked by tests/test_package.py): ``ssc-nas --help`` and a
# mistake in the options answer at once; each command imports what it runs.
from . import __version__
from .budget import Budget, format_count
from .choices import (
    AMP_CHOICES,
    CLI_DEFAULTS,
    COMPARE_METHODS,
    DATASETS,
    DEFAULT_COMPARE_METHODS,
    DEFAULT_SCORE_SHARE,
    DEFAULT_TRIALS,
    FAMILY_NAMES,
    OBJECTIVES,
    OPTIMIZERS,
    PROXIES,
    REFERENCE_DESIGNS,
    SAMPLERS,
    STRATEGIES,
)
from .errors import SearchInterrupted, SSCNasError, cannot_write

__all__ = ["cli", "main"]

console = Console()
err_console = Console(stderr=True)

BUDGET_HELP = "Parameter budget, e.g. 0.5M, 500k, 500000 or 5e5."
MACS_HELP = ("Compute budget in multiply-accumulates (MACs) per image, e.g. 40M; like MobileNet "
             "and ShuffleNet, one multiply-add counts once.")
DEVICES = ("auto", "cpu", "cuda")


class CommaList(click.ParamType):
    """A comma-separated list (or a YAML list from --config) -> a tuple of stripped names.

    Each name is checked by the config object it goes to, whose error names the valid choices.
    """

    name = "list"

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + ",".join(self.choices) + "]"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(v).strip() for v in items if str(v).strip())


def _macs_option(command: Any) -> Any:
    """``--macs`` plus its hidden old name ``--flops`` (merged by :func:`_macs`)."""
    command = click.option("--flops", default=None, hidden=True,
                           help="Old name of --macs.")(command)
    return click.option("--macs", default=None, help=MACS_HELP)(command)


def _macs(ctx: click.Context, macs: str | None, flops: str | None) -> str | None:
    """The MAC budget from ``--macs`` or its old name ``--flops`` (given on the command line)."""
    from click.core import ParameterSource

    if flops is None:
        return macs
    if macs is not None and ctx.get_parameter_source("macs") is ParameterSource.COMMANDLINE:
        raise SSCNasError("give the MAC budget once: --macs (--flops is its old name)")
    return flops


class _Command(click.Command):
    """A command whose run (not its ``--help`` or a refused option) starts by quieting Optuna:
    our own lines say what happened; Optuna's INFO lines (e.g. the in-memory study the report
    computes importances on) are noise to a user. Warnings and errors still show. Here rather
    than in the group's callback, which runs before a command's ``--help`` is answered."""

    def invoke(self, ctx: click.Context) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return super().invoke(ctx)


class _Group(click.Group):
    command_class = _Command
    group_class = type  # sub-groups (``space``) are _Groups too


@click.group(cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ssc-nas")
def cli() -> None:
    """Neural architecture search for structured sparse convolutions (SSC).

    Finds the most accurate CNNs under a parameter and MAC budget by searching per-layer SSC
    settings with Optuna. Start with: ssc-nas search --budget 0.5M
    """


# -- space ------------------------------------------------------------------------------------


@cli.group()
def space() -> None:
    """Inspect search spaces (search_spaces/*.yaml)."""


@space.command("list")
def space_list() -> None:
    """List the search spaces that ship with ssc-nas."""
    from .spaces import load_space, shipped_spaces

    table = Table("name", "family", "share", "widths", "description")
    for name, path in sorted(shipped_spaces().items()):
        sp = load_space(path)
        table.add_row(name, sp.family, sp.share, sp.describe_width(),
                      sp.description)
    console.print(table)


@space.command("show")
@click.argument("space_file")
@click.option("--budget", "budget", default=None, help=BUDGET_HELP)
@_macs_option
@click.option("--dataset", type=click.Choice(DATASETS), default="mnist-5k", show_default=True,
              help="Dataset whose image shape and classes the space is costed for.")
@click.option("--samples", type=int, default=1000, show_default=True,
              help="Random architectures drawn to measure the share that fits the budget.")
@click.option("--seed", default=0, show_default=True, help="Seed of those random draws.")
@click.pass_context
def space_show(ctx: click.Context, space_file: str, budget: str | None, macs: str | None,
               flops: str | None, dataset: str, samples: int, seed: int) -> None:
    """Show a space's knobs, size, reachable params/MACs and the share of samples that fit.

    SPACE_FILE is a YAML file or the name of a shipped space (see: ssc-nas space list).
    """
    from .data import dataset_info
    from .spaces import BoundSpace, load_space, summarize

    if samples < 1:
        raise SSCNasError(f"--samples must be >= 1, but got {samples}")
    sp = load_space(space_file)
    info = dataset_info(dataset)
    bound = BoundSpace(sp, info.in_channels, info.num_classes, info.input_size)
    summary = summarize(bound, Budget.parse(budget, _macs(ctx, macs, flops)), samples, seed)
    c, (h, w) = info.in_channels, info.input_size
    console.print(f"[bold]{sp.name}[/]  {sp.description}")
    console.print(f"family {sp.family}, knobs per {sp.share}, costed for {dataset} "
                  f"({c}x{h}x{w}, {info.num_classes} classes)")
    table = Table("knob", "choices", title="knobs (every searched layer unless overridden)")
    table.add_row("width", sp.describe_width())
    for knob, choices in sp.knobs.items():
        table.add_row(knob, ", ".join(str(x) for x in choices))
    for ov in sp.overrides:
        for knob, choices in ov.knobs.items():
            table.add_row(f"  {ov.match}: {knob}", ", ".join(str(x) for x in choices))
    console.print(table)
    n_layers = sum(len(g.slots) for g in bound.param_groups)
    console.print(f"searched layers: {n_layers} in {len(bound.param_groups)} parameter groups; "
                  f"space size: {summary.size:.3g} assignments")
    cost = Table("", "smallest reachable", "largest reachable")
    cost.add_row("params", format_count(summary.low.params), format_count(summary.high.params))
    cost.add_row("MACs / image", format_count(summary.low.macs), format_count(summary.high.macs))
    console.print(cost)
    if summary.share is not None:
        console.print(f"budget {summary.budget.describe()}: {summary.share:.1%} of "
                      f"{summary.samples} random samples fit (seed {seed})")


# -- search -----------------------------------------------------------------------------------


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager ``--config``: the study config file becomes the command's ``default_map``, so
    defaults < --config file < flags given on the command line."""
    if value is not None:
        from .search import load_study_config

        config = load_study_config(value)
        defaults = {("macs" if key == "flops" else key): v for key, v in config.items()
                    if key != "description"}
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _dashboard_hint(storage: str) -> str:
    return f"optuna-dashboard {storage}"


def _storage_where(storage: str) -> str:
    from .search import sqlite_path

    path = sqlite_path(storage)
    return storage if path is None else f"{storage} ({path.resolve()})"


@cli.command()
@click.option("--budget", default=None, help=BUDGET_HELP + " Required (here or in --config).")
@_macs_option
@click.option("--space", default=CLI_DEFAULTS["space"], show_default=True,
              help="Search space: a YAML file or a shipped space name (ssc-nas space list).")
@click.option("--config", default=None, is_eager=True, expose_value=False,
              callback=_load_config,
              help="A study config (studies/NAME.yaml or its name); flags override its values.")
@click.option("--dataset", type=click.Choice(DATASETS), default="mnist-5k", show_default=True,
              help="mnist-5k and digits ship with the install; the others read --data-dir.")
@click.option("--data-dir", default="data", show_default=True,
              help="Where Fashion-MNIST, CIFAR-10/100 and Tiny-ImageNet files are.")
@click.option("--download", is_flag=True,
              help="Download missing Fashion-MNIST, CIFAR or Tiny-ImageNet files into "
                   "--data-dir (needs internet).")
@click.option("--trials", type=int, default=None,
              help="Trained candidates in the study in total; a resumed study runs only the "
                   f"rest [default: {DEFAULT_TRIALS['sh']} with --strategy sh, "
                   f"{DEFAULT_TRIALS['full']} with full, no limit with --timeout].")
@click.option("--timeout", default=None,
              help="Stop starting new trials after this long: 90s, 30m, 2h.")
@click.option("--epochs", type=int, default=2, show_default=True, help="Proxy training epochs.")
@click.option("--subset", type=float, default=1.0, show_default=True,
              help="Fraction of the training split used for proxy training.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd",
              show_default=True, help="Proxy optimizer (one-cycle cosine schedule).")
@click.option("--lr", type=float, default=None, help="Peak learning rate [sgd 0.05, adamw 2e-3].")
@click.option("--amp", type=click.Choice(AMP_CHOICES), default="auto", show_default=True,
              help="Proxy training's mixed precision (autocast). auto: a resumed study's "
                   "setting; for a new one bf16 on a CPU with bf16 in hardware (AVX512-BF16, "
                   "AMX, Arm BF16) where a bf16 train step of the family network measures at "
                   "least 1.1x as fast as float32 (a few seconds at the start; 1.2-1.5x on an "
                   "AMD EPYC, same ranking within the noise: docs/bf16-proxy.md), else off.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="tpe",
              show_default=True, help="Optuna sampler; budgets reach it as trial constraints "
              "(over-budget candidates are told infeasible, never trained).")
@click.option("--study", default=None,
              help="Study name [default: <dataset>-<space>-<budget>, so reruns resume].")
@click.option("--storage", default="sqlite:///ssc-nas.db", show_default=True,
              help="Optuna storage URL (SQLite file, or postgresql://... for many workers).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the sampler, data splits and weight init.")
@click.option("--device", type=click.Choice(DEVICES), default="auto",
              show_default=True, help="auto: CUDA when present, else CPU.")
@click.option("--objectives", type=CommaList(OBJECTIVES), default=None,
              help="Comma-separated, from " + ", ".join(OBJECTIVES) + "; exactly one score: "
              "val_loss (the proxy's validation cross-entropy, minimized) or accuracy "
              "(latency: measured at batch 1 on --device). [default: the resumed study's; "
              "val_loss,params,macs for a new one]")
@click.option("--latency-batch", type=int, default=32, show_default=True,
              help="Second batch size whose latency is stored when latency is an objective.")
@click.option("--reference-designs/--no-reference-designs", default=True, show_default=True,
              help="Start with the reference designs (" + ", ".join(REFERENCE_DESIGNS)
                   + "), each at the widest width that fits the budget.")
@click.option("--prescreen", type=click.Choice(PROXIES),
              default=None, help="Zero-cost proxy that picks, per trial, the best of "
                                 "--prescreen-k sampled candidates; only that one is trained.")
@click.option("--prescreen-k", type=int, default=10, show_default=True)
@click.option("--strategy", type=click.Choice(STRATEGIES), default=CLI_DEFAULTS["strategy"],
              show_default=True,
              help="full: every candidate trains all --epochs. sh: successive halving (multi-"
                   "objective ASHA): candidates train 1/eta^(rungs-1) of the schedule, the top "
                   "1/eta of each rung continue from their checkpoint; --trials counts "
                   "candidates.")
@click.option("--eta", type=int, default=3, show_default=True,
              help="sh: each rung trains eta x the one below and keeps its top 1/eta.")
@click.option("--rungs", type=int, default=3, show_default=True,
              help="sh: number of rungs; the top one is the whole --epochs schedule.")
@click.option("--score-share", type=float, default=None,
              help="sh: share (0-1) of each rung's promotions chosen by the proxy's score "
                   "alone; the rest in Pareto order of score, params and MACs [default: the "
                   f"resumed study's, else {DEFAULT_SCORE_SHARE:g}].")
@click.option("--checkpoint-dir", default=None,
              help="sh: where training state waits between rungs [default: beside the SQLite "
                   "file, else ./ssc-nas-checkpoints]; workers on many machines share it.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Worker processes on this machine, sharing the study storage.")
@click.option("--heartbeat", type=float, default=30.0, show_default=True,
              help="Seconds between worker heartbeats; a trial whose worker is silent for two "
                   "heartbeats is failed and retried.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def search(ctx: click.Context, **values: Any) -> None:
    """Search per-layer SSC architectures under a parameter (and MAC) budget.

    Each candidate is costed analytically; over-budget ones are recorded and never trained;
    the rest get a short proxy training run. Its validation loss (the default score; accuracy
    is kept too), params and MACs go into an Optuna study whose Pareto front is printed at the
    end. Example: ssc-nas search --budget 0.5M
    """
    v = values
    macs = _macs(ctx, v["macs"], v["flops"])
    if v["budget"] is None and macs is None:
        raise SSCNasError("give a budget: --budget 0.5M (params) and/or --macs 40M (MACs), "
                          "or a --config that sets one")
    budget = Budget.parse(v["budget"], macs)  # before torch is imported: a typo answers at once

    from .progress import SearchProgress
    from .search import SearchConfig, parse_duration, run_search
    from .train import TrainConfig

    try:
        train = TrainConfig(epochs=int(v["epochs"]), batch_size=int(v["batch_size"]),
                            optimizer=v["optimizer"], lr=v["lr"])
    except ValueError as exc:
        raise SSCNasError(str(exc)) from None
    config = SearchConfig(
        budget=budget, space=str(v["space"]),
        dataset=v["dataset"], data_dir=str(v["data_dir"]), download=bool(v["download"]),
        trials=_trials(v["trials"], v["timeout"], v["strategy"]),
        timeout=parse_duration(v["timeout"]), train=train, subset=float(v["subset"]),
        sampler=v["sampler"], study=v["study"], storage=v["storage"], seed=int(v["seed"]),
        device=v["device"],
        objectives=None if v["objectives"] is None else tuple(v["objectives"]),
        latency_batch=int(v["latency_batch"]), reference_designs=bool(v["reference_designs"]),
        workers=int(v["workers"]), heartbeat=float(v["heartbeat"]),
        prescreen=v["prescreen"], prescreen_k=int(v["prescreen_k"]),
        strategy=v["strategy"], eta=int(v["eta"]), rungs=int(v["rungs"]),
        score_share=None if v["score_share"] is None else float(v["score_share"]),
        checkpoint_dir=v["checkpoint_dir"], amp=v["amp"],
    )
    where = _storage_where(config.storage)
    banner = f"storage {where}\n  inspect: {_dashboard_hint(config.storage)}"
    # Once the study is open: a setting refused before then prints its one error line only.
    with SearchProgress(err_console, enabled=not v["quiet"],
                        on_start=lambda: console.print(banner)) as progress:
        result = run_search(config, reporter=progress)
    _print_front(result.study)
    if result.references:
        console.print("reference designs (enqueued at the widest width that fits): " + ", ".join(
            f"{name} x{width:g}" for name, width in result.references))
    from .search.halving import study_progress_count
    from .search.results import CAUSES
    untrained = ", ".join(f"{result.counts[c]} {c}" for c in CAUSES if result.counts[c])
    sh = config.strategy == "sh"
    console.print(
        f"study [bold]{result.study_name}[/]: "
        + (f"{study_progress_count(result.study)} candidates, " if sh else "")
        + f"{result.completed} trials complete" + (" (through the top rung)" if sh else "")
        + f" ({result.new_trials} new; not trained"
        + (" to the top" if sh else "") + f", in the study: {untrained or 'none'})"
    )
    console.print(banner)


def _trials(trials: Any, timeout: Any, strategy: str) -> int | None:
    if trials is None:
        return None if timeout is not None else DEFAULT_TRIALS[strategy]
    return int(trials)


def _print_front(study: Any) -> None:
    from .search import accuracy_se, front_rows, score_name, study_objectives
    from .search.objectives import seed_stds_text
    from .search.results import trial_counts

    rows = front_rows(study)
    if not rows:  # an empty table says nothing of why
        counts = trial_counts(study)
        held = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "none"
        console.print(f"the front of study {study.study_name!r} is empty: no trial within the "
                      f"budget has been trained through the whole schedule yet (its trials: "
                      f"{held}); run the search again to go on", highlight=False)
        return
    objectives = study_objectives(study)
    score = score_name(objectives)
    noise = study.user_attrs.get("seed_noise") or {}
    title = "Pareto front (feasible, non-dominated), best " + (
        "val loss" if score == "val_loss" else "accuracy") + " first"
    strategy = study.user_attrs.get("strategy")
    if isinstance(strategy, dict) and strategy.get("name") == "sh":
        title += (f"; successive halving: top-rung trials only (the whole "
                  f"{study.user_attrs.get('train', {}).get('epochs', '?')}-epoch schedule; "
                  "the lower rungs' results are kept on their trials)")
    if study.user_attrs.get("val_images"):
        title += (f"; proxy scores on {study.user_attrs['val_images']} validation images; "
                  "acc ± its binomial standard error")
    if study.user_attrs.get("train", {}).get("amp", "off") != "off":
        title += f"; proxy trained under {study.user_attrs['train']['amp']} autocast"
    if noise:
        title += (f"; seed-to-seed std: {seed_stds_text(noise)} "
                  f"({noise.get('source', 'measured')})")
    loss = any(row.val_loss is not None for row in rows)
    costs = [o for o in objectives if o not in ("accuracy", "val_loss")]
    columns = ["acc", *(["val loss"] if loss else []), *costs]
    table = Table("trial", *columns, "design", title=title)
    for row in rows:
        se = None if row.accuracy is None else accuracy_se(study, row.accuracy)
        cells = ["-" if row.accuracy is None
                 else f"{row.accuracy:.4f}" + ("" if se is None else f" ± {se:.4f}")]
        if loss:
            cells.append("-" if row.val_loss is None else f"{row.val_loss:.4f}")
        for name in costs:
            value = row.values[name]
            cells.append(f"{value * 1e3:.2f} ms" if name == "latency" else format_count(value))
        table.add_row(str(row.number), *cells, row.design)
    console.print(table)
    _print_against_references(study)


def _print_against_references(study: Any) -> None:
    """One line: the best searched design against the best reference design, with the noise."""
    from .search import against_references

    a = against_references(study)
    if a is not None:
        console.print("best searched design against the best reference design: "
                      + a.describe(), highlight=False)



@cli.command()
@click.option("--study", required=True, help="Name of the study to join.")
@click.option("--storage", required=True,
              help="Its storage URL, e.g. postgresql://user:pass@host/db (any Optuna RDB URL).")
@click.option("--data-dir", default="data", show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto",
              show_default=True)
@click.option("--timeout", default=None, help="Stop starting new trials after this long.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch CPU threads [default: torch's].")
@click.option("--heartbeat", type=float, default=30.0, show_default=True)
@click.option("--worker-index", type=click.IntRange(min=0), default=None, hidden=True)
@click.option("--checkpoint-dir", default=None,
              help="--strategy sh: the checkpoint folder all workers share [default: beside the "
                   "SQLite file, else ./ssc-nas-checkpoints].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def worker(study: str, storage: str, data_dir: str, device: str, timeout: str | None,
           threads: int | None, heartbeat: float, worker_index: int | None,
           checkpoint_dir: str | None, quiet: bool) -> None:
    """Join an existing study (made by ssc-nas search) and run its trials until it has as many
    as it asked for. Start one per machine or GPU; all read the search settings from the study."""

    import torch

    from .progress import SearchProgress
    from .search import parse_duration, run_worker

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with SearchProgress(err_console, enabled=not quiet) as progress:
            done = run_worker(study, storage, data_dir=data_dir, device=device,
                              timeout=parse_duration(timeout), worker_index=worker_index,
                              heartbeat=heartbeat, reporter=progress,
                              checkpoint_dir=checkpoint_dir)
    except SearchInterrupted:
        if worker_index is None:
            raise
        sys.exit(130)  # a worker of `search --workers N` (the index is theirs): it says it once
    console.print(f"worker done: {done} trials completed here")


# -- using studies ----------------------------------------------------------------------------

STORAGE_OPTION = click.option("--storage", default="sqlite:///ssc-nas.db", show_default=True,
                              help="Optuna storage URL of the study.")
STUDY_OPTION = click.option("--study", default=None,
                            help="Study name [default: the only study in the storage].")


@cli.command()
@STORAGE_OPTION
def studies(storage: str) -> None:
    """List the studies in a storage with trial counts, budgets, best accuracy and val loss."""
    from .search import study_rows
    from .search.results import CAUSES

    table = Table("trials", "dataset", "space", "budget", "best acc", "best val loss")
    table.add_column("study", overflow="fold")
    table.columns.insert(0, table.columns.pop())
    for r in study_rows(storage):
        budget = " / ".join(filter(None, [
            r["budget_params"] and f"{format_count(r['budget_params'])} params",
            r["budget_macs"] and f"{format_count(r['budget_macs'])} MACs"]))
        best = "-" if r["best_accuracy"] is None else f"{r['best_accuracy']:.4f}"
        loss = "-" if r["best_val_loss"] is None else f"{r['best_val_loss']:.4f}"
        counts = f"{r['complete']} done"
        for kind in (*CAUSES, "failed", "running"):
            if r["counts"][kind]:
                counts += f", {r['counts'][kind]} {kind}"
        table.add_row(r["study"], counts, str(r["dataset"]), str(r["space"]), budget, best,
                      loss)
    console.print(table)


@cli.command("front")
@STUDY_OPTION
@STORAGE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the front as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the front as CSV.")
def front_cmd(study: str | None, storage: str, as_json: bool, as_csv: bool) -> None:
    """Print a study's Pareto front (feasible, non-dominated trials), best score first.

    Under the table, one line sets the best searched design against the best reference design
    on the proxy score, in the proxy's measured seed stds.
    """
    import csv
    import json

    from .search import front_rows, load_existing_study

    if as_json and as_csv:
        raise SSCNasError("pass one of --json and --csv, not both")
    s = load_existing_study(study, storage)
    rows = [r.to_dict() for r in front_rows(s)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif as_csv:
        fields = [k for k in rows[0] if k != "architecture"] if rows else ["trial"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    else:
        _print_front(s)


@cli.command()
@STUDY_OPTION
@STORAGE_OPTION
@click.option("--trial", "number", type=int, required=True, help="Trial number to export.")
@click.option("-o", "--output", default="arch.json", show_default=True,
              help="Architecture JSON file to write.")
def export(study: str | None, storage: str, number: int, output: str) -> None:
    """Write one trial's architecture (and its input shape) to a JSON file."""
    from .search import export_trial, load_existing_study
    from .search.results import untrained_note

    loaded = load_existing_study(study, storage)
    try:
        path = export_trial(loaded, number, output, storage)
    except OSError as exc:
        raise cannot_write(output, exc) from None
    console.print(f"wrote {path}; train it (on the study's dataset): ssc-nas train {path}")
    note = untrained_note(loaded, number)
    if note:  # the user may well want that design, but should know what it is
        err_console.print(f"note: {note}", highlight=False)


def _dataset_searched_on(arch_file: str) -> str:
    """The dataset an exported architecture was searched on (its file's source), else mnist-5k."""
    from .models import read_architecture_file

    try:
        _, _, data = read_architecture_file(arch_file)
    except ValueError as exc:
        raise SSCNasError(str(exc)) from None
    source = data.get("source")
    searched = source.get("dataset") if isinstance(source, dict) else None
    if searched not in DATASETS:
        return "mnist-5k"
    err_console.print(f"dataset {searched}: the one {arch_file} was searched on (--dataset "
                      "to change)", highlight=False)
    return searched


@cli.command()
@click.argument("arch_file", type=click.Path(dir_okay=False))
@click.option("--dataset", type=click.Choice(DATASETS), default=None,
              help="Dataset to train on [default: the one the architecture was searched on, "
                   "from its file (ssc-nas export writes it), else mnist-5k].")
@click.option("--data-dir", default="data", show_default=True)
@click.option("--download", is_flag=True,
              help="Download missing Fashion-MNIST, CIFAR or Tiny-ImageNet files (needs internet).")
@click.option("--epochs", type=int, default=200, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd",
              show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True, help="Peak learning rate.")
@click.option("--weight-decay", type=float, default=5e-4, show_default=True)
@click.option("--out", "out_dir", default=None,
              help="Run folder for checkpoint.pt and model.pt [default: runs/<arch>-<dataset>].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto",
              show_default=True)
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default="off",
              show_default=True,
              help="Mixed precision (autocast): bf16 on CUDA or CPU, fp16 on CUDA only "
                   "(ignored on CPU).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(arch_file: str, dataset: str | None, data_dir: str, download: bool, epochs: int,
          batch_size: int, optimizer: str, lr: float, weight_decay: float,
          out_dir: str | None, seed: int, device: str, amp: str, quiet: bool) -> None:
    """Fully train an exported architecture: cosine schedule, augmentation for CIFAR-style data,
    a checkpoint every epoch (rerun the same command to resume after a kill), test accuracy,
    and model.pt with weights + architecture (load it with ssc_nas.load)."""
    from pathlib import Path

    from rich.progress import Progress

    from .train import TrainConfig, train_architecture

    try:
        config = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                             weight_decay=weight_decay, amp=amp)
    except ValueError as exc:
        raise SSCNasError(str(exc)) from None
    if not Path(arch_file).exists():
        raise SSCNasError(f"architecture file {arch_file} does not exist "
                          "(make one with: ssc-nas export --trial N -o arch.json)")
    if dataset is None:
        dataset = _dataset_searched_on(arch_file)
    out = Path(out_dir or f"runs/{Path(arch_file).stem}-{dataset}")
    with Progress(console=err_console, disable=quiet) as progress:
        task = progress.add_task("training", total=None)

        def on_epoch(epoch: int, loss: float, acc: float) -> None:
            progress.console.print(f"epoch {epoch:>3}  loss {loss:.4f}  val acc {acc:.4f}",
                                   highlight=False)

        try:
            result = train_architecture(
                arch_file, dataset, out, config, data_dir=data_dir, seed=seed,
                device=None if device == "auto" else device, download=download,
                on_batch=lambda d, t: progress.update(task, completed=d, total=t),
                on_epoch=on_epoch)
        except (ValueError, FileNotFoundError) as exc:
            raise SSCNasError(str(exc)) from None
    from .search import binomial_se

    se = binomial_se(result.test_accuracy, result.test_images)
    console.print(f"test accuracy {result.test_accuracy:.4f}; ± {se:.4f} binomial standard "
                  f"error on {result.test_images} test images, one training seed; saved "
                  f"{result.model_path} (checkpoint {result.checkpoint})")


@cli.command()
@STUDY_OPTION
@STORAGE_OPTION
@click.option("-o", "--output", default="report.html", show_default=True,
              help="HTML file to write (self-contained, opens offline).")
def report(study: str | None, storage: str, output: str) -> None:
    """Write one self-contained HTML report of a study: fronts, hypervolume, per-layer knobs,
    parameter importances and the front table (baselines from ssc-nas compare overlaid)."""
    from .report import baseline_points, write_report
    from .search import load_existing_study

    s = load_existing_study(study, storage)
    try:
        path = write_report(s, output, baselines=baseline_points(storage, s.study_name))
    except OSError as exc:
        raise cannot_write(output, exc) from None
    console.print(f"wrote {path.resolve()}")


@cli.command()
@STUDY_OPTION
@STORAGE_OPTION
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
def dashboard(study: str | None, storage: str, host: str, port: int) -> None:
    """Open the study storage in optuna-dashboard (Ctrl-C to stop)."""
    import optuna_dashboard

    from .search import load_existing_study, make_storage

    if not 0 <= port <= 65535:
        raise SSCNasError(f"--port must be in 0..65535, but got {port}")
    store = make_storage(storage, must_exist=True)  # never serve an empty database it made
    url = f"http://{host}:{port}/dashboard/"
    if study is not None:
        s = load_existing_study(study, storage)
        url += f"studies/{store.get_study_id_from_name(s.study_name)}"
    console.print(f"optuna-dashboard on {url} (storage {storage}); Ctrl-C to stop")
    try:
        optuna_dashboard.run_server(store, host=host, port=port)
    except OSError as exc:
        raise SSCNasError(f"cannot serve on {host}:{port}: {exc.strerror}; try --port") from None


# -- compare ----------------------------------------------------------------------------------


class _CompareProgress:
    """Prints one line per finished (method, seed) run and draws the running one's batches."""

    def __init__(self, search: Any) -> None:
        self.search = search  # a SearchProgress: ssc-search's own search reports to it
        self._task: Any = None

    def message(self, text: str) -> None:
        self.search.progress.console.print(text, highlight=False)

    def run_started(self, method: str, seed: int, design: str) -> None:
        progress = self.search.progress
        if self._task is None:
            progress.start()  # (the search's bars start with its study; compare's with a run)
            self._task = progress.add_task("", total=1)
        progress.reset(self._task, total=1, completed=0, visible=True,
                       description=f"{method} fold {seed}")

    def batch(self, done: int, total: int) -> None:
        if self._task is not None:
            self.search.progress.update(self._task, completed=done, total=total)

    def run_finished(self, run: Any) -> None:
        if self._task is not None:
            self.search.progress.update(self._task, visible=False)
        how = "stored earlier, not retrained" if run.reused else f"{run.train_time_s:.1f}s"
        self.message(f"{run.method:<11} fold {run.seed}  {run.epochs} ep  "
                     f"test acc {run.accuracy:.4f}  "
                     f"params {format_count(run.params):>6}  MACs {format_count(run.macs):>6}"
                     f"  {how}")


@cli.command()
@click.option("--budget", required=True, help=BUDGET_HELP + " Pruned networks keep exactly "
                                                            "this many parameters.")
@click.option("--family", type=click.Choice(FAMILY_NAMES), default="vgg16",
              show_default=True, help="Model family.")
@click.option("--methods", type=CommaList(COMPARE_METHODS),
              default=",".join(DEFAULT_COMPARE_METHODS), show_default=True,
              help="Comma-separated, from " + ", ".join(COMPARE_METHODS) + ".")
@click.option("--dataset", type=click.Choice(DATASETS), default="mnist-5k", show_default=True)
@click.option("--data-dir", default="data", show_default=True,
              help="Where Fashion-MNIST, CIFAR-10/100 and Tiny-ImageNet files are.")
@click.option("--epochs", type=int, default=4, show_default=True,
              help="Training epochs, the same for every method.")
@click.option("--folds", "--seeds", "folds", type=int, default=5, show_default=True,
              help="Cross-validation folds: every image is held out once; fold i is the "
                   "test set of run i (seed i) for every method. --seeds is the old name.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--subset", type=float, default=1.0, show_default=True,
              help="Fraction of the training split used for training.")
@click.option("--width", type=float, default=None,
              help="Width of the dense network the pruning methods prune [default: the "
                   "smallest width of the family's space with >= 4x the budget's params].")
@click.option("--space", default=None,
              help="SSC space of ssc-search/ssc-uniform [default: <family>-ssc].")
@click.option("--search-trials", type=int, default=8, show_default=True,
              help="Trials of the short search ssc-search runs when the SSC study has no "
                   "front within the budget yet.")
@click.option("--study", default=None,
              help="SSC study name [default: <dataset>-<family>-ssc-<budget>, the study ssc-nas "
                   "search --space <family>-ssc makes]; results go to <study>-baselines.")
@click.option("--trial", "trials", type=int, multiple=True,
              help="Also retrain this trial of the SSC study (a design picked from its front, "
                   "e.g. a cheaper one), paired by fold with every method: row trial:<n>. "
                   "Repeat for more.")
@click.option("--storage", default="sqlite:///ssc-nas.db", show_default=True,
              help="Optuna storage URL (the same as the search's).")
@click.option("--device", type=click.Choice(DEVICES), default="auto",
              show_default=True)
@click.option("--equal-time/--no-equal-time", default=True, show_default=True,
              help="Also train the SSC methods for the pruned runs' mean training time.")
@click.option("--equal-time-s", type=float, default=None,
              help="Equal-time target in seconds for every method [default: the pruned runs' "
                   "mean training time].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def compare(budget: str, family: str, methods: tuple[str, ...], dataset: str, data_dir: str,
            epochs: int, folds: int, batch_size: int, subset: float, width: float | None,
            space: str | None, search_trials: int, study: str | None,
            trials: tuple[int, ...], storage: str, device: str, equal_time: bool,
            equal_time_s: float | None, quiet: bool) -> None:
    """Train SSC designs and pruning-at-init baselines at one parameter budget, same schedule.

    ssc-search retrains the best-scored searched architecture (lowest proxy val loss, never a
    reference design) within budget in the SSC study (searching --search-trials trials first
    if there is none, with the study's own schedule and strategy when it exists); reference
    retrains every reference design of that study within budget (standard, groupwise, ...), one
    row each (reference:standard, ...), the yardsticks the search must beat; ssc-uniform is
    HetConv-style uniform SSC (HetConv part P in 2, 4, 8: 3x3 kernels on 1/P of the channels,
    sized to the budget); snip, grasp, synflow, erk and random prune the dense network at init
    to exactly --budget params; --trial N retrains trial N of the SSC study too (row trial:N,
    a design picked from its front). Evaluation is --folds-fold
    cross-validation: fold i is held out as the test set of every method's run i (seed i), so
    every image is scored once and methods are compared paired by fold. Every method trains
    with SGD one-cycle for --epochs, no early stop. The table gives mean test accuracy with a
    95% t interval over folds; the verdict names the winner and its paired margin over each
    other method (95% t interval; "not distinguishable" where it covers zero). With
    --equal-time the SSC methods are trained again for the whole number of epochs that fits in
    the pruned runs' mean training time. Runs are stored in study <study>-baselines (ssc-nas
    report overlays them) and reused when rerun with the same settings and version.

    Defaults are sized for a CPU: ssc-nas compare --budget 0.5M --family vgg16 on mnist-5k
    prunes VGG-16 x0.375 (2.07M params, 4x the budget, 29M MACs per image as masked dense;
    full width would run ~205M) and trains each method 4 epochs per fold on 3,600 training
    images (5 folds of 1,000 test images). With 1 seed on one split this took 5.0 minutes
    (298 s, 1 torch thread, shared 2-core AMD EPYC, about 40 s per pruned run, the 8-trial
    search included); 5 folds train every method 5 times, plus the equal-time runs.
    """
    from .compare import (
        CompareConfig,
        format_accuracy,
        format_equal_time,
        run_compare,
        study_name,
        table_note,
        verdict_lines,
    )
    from .progress import SearchProgress

    config = CompareConfig(
        budget=Budget.parse(budget), family=family, methods=methods, dataset=dataset,
        data_dir=data_dir, epochs=epochs, folds=folds, batch_size=batch_size, subset=subset,
        storage=storage, study=study, space=space, search_trials=search_trials, width=width,
        device=device, equal_time=equal_time, equal_time_s=equal_time_s, trials=trials)
    with SearchProgress(err_console, enabled=not quiet) as progress:
        rows = run_compare(config, reporter=_CompareProgress(progress))
    equal = any(r.equal_runs for r in rows)
    table = Table("method", "params", "MACs", "accuracy (95% CI)", "train time",
                  *(["acc. at equal time"] if equal else []), "design",
                  title=f"{family} on {dataset} at {config.budget.describe()}, "
                        f"{epochs} epoch{'' if epochs == 1 else 's'} each, {folds} folds")
    for r in rows:
        table.add_row(r.method, format_count(r.params), format_count(r.macs),
                      format_accuracy(r), f"{r.train_time_s:.1f}s",
                      *([format_equal_time(r)] if equal else []), r.design)
    console.print(table)
    console.print(table_note(rows), highlight=False)
    for line in verdict_lines(rows):
        console.print(line, highlight=False)
    ssc_study = study_name(config)
    console.print(f"runs stored in study {ssc_study}-baselines of {_storage_where(storage)}; "
                  f"overlay them on the SSC front: ssc-nas report --storage {storage} "
                  f"--study {ssc_study}", highlight=False)


def _stdout_failed() -> bool:
    """Whether standard output cannot be written; if so, it is pointed at os.devnull.

    A buffered write that failed keeps its text, so flushing again fails the same way; an
    empty write fails on a device that refuses every write (``/dev/full``). The redirect keeps
    Python from failing once more, with a traceback, when it flushes at exit.
    """
    import os

    try:
        fd: int | None = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (a test captures it) or closed
        fd = None
    try:
        sys.stdout.flush()
        if fd is not None:
            os.write(fd, b"")
    except (OSError, ValueError):  # ValueError: closed
        if fd is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        return True
    return False


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes become one line on stderr and exit code 2.

    ``argv`` defaults to ``sys.argv[1:]``; passing it runs the CLI in-process (the tests do).
    Failures end in ``SystemExit`` (2: user mistake, 130: interrupted); bugs propagate with
    their traceback. Without ``argv`` (the ``ssc-nas`` process itself) a run that ends, however
    it ends short of a bug, ends the process at once (:func:`_exit_now`).
    """
    if argv is not None:
        _main(argv)
        return
    try:
        _main(None)
    except SystemExit as exc:
        _exit_now(exc.code)
    _exit_now(0)


def _exit_now(code: object) -> NoReturn:
    """End the process without the interpreter's teardown of its modules.

    Tearing down torch, Optuna and SQLAlchemy took 0.6-1.5 s per process on a 2-core EPYC
    (``ssc-nas worker`` on a finished study: 1.2 s after its last atexit handler), paid by every
    command and every worker. Nothing needs it: each study write is committed when it is made
    and each file is closed when written. Logging and the standard streams are flushed first.
    """
    import contextlib
    import logging
    import os

    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"), as Python itself would show it
        sys.stderr.write(f"{code}\n")
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # (an output that cannot be written
            stream.flush()  # was reported already)
    os._exit(code)


def _main(argv: list[str] | None) -> None:
    from .runtime import tune_malloc

    try:
        tune_malloc()  # first: the allocator settings apply to everything this run allocates
        cli.main(args=argv, standalone_mode=False)
        sys.stdout.flush()  # here, not at exit, so that a failure is reported like any other
    except OSError as exc:
        # `> /dev/full`, a full disk or a file-size limit under a redirect; the files our
        # commands write name themselves in their own errors, and click ends a broken pipe.
        if _stdout_failed():
            what = "cannot write the output"
        elif exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            what = "a write failed"  # stdout lost the failed text, or a library's own file
        else:
            raise
        err_console.print(f"[red]error:[/] {what}: {exc.strerror}", highlight=False,
                          soft_wrap=True)
        sys.exit(2)
    except SearchInterrupted as exc:
        err_console.print(str(exc), highlight=False, soft_wrap=True)
        sys.exit(130)
    except SSCNasError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        reason = _storage_write_failure(exc)
        if reason is None:
            raise  # a bug: its traceback
        err_console.print(f"[red]error:[/] cannot write to the study storage: {reason}; check "
                          "that the database file and its folder are writable and the disk has "
                          "space", highlight=False, soft_wrap=True)
        sys.exit(2)


def _storage_write_failure(exc: Exception) -> str | None:
    """Why a storage could not be written (a read-only file, a full disk: nothing was
    committed); None for any other error. Optuna and SQLAlchemy are imported here, not at the
    top, so that commands that never open a study start without them."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(exc, StorageInternalError | SQLAlchemyError):
        return None
    cause = exc.__cause__ if isinstance(exc, StorageInternalError) else exc
    return str(getattr(cause, "orig", None) or cause or exc).strip().splitlines()[0]
