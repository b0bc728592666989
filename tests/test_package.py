"""Package-wide rules: ruff clean, one-way dependencies, a working console script."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ssc_nas

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ssc_nas"

# Lower layers never import higher ones (docs/architecture.md).
ORDER = ["errors", "choices", "runtime", "layers", "cost", "budget", "models", "spaces",
         "conversion", "data",
         "schedule", "train", "baselines", "search", "progress", "compare", "report", "cli"]


def _layer_of(module: str) -> str | None:
    head = module.split(".")[0]
    return head if head in ORDER else None


def _internal_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    rel = path.relative_to(PACKAGE).with_suffix("")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None or (
            isinstance(node, ast.ImportFrom) and node.level
        ):
            if node.level == 0:
                if node.module and node.module.startswith("ssc_nas."):
                    found.add(node.module.removeprefix("ssc_nas."))
                continue
            base = list(rel.parts[: len(rel.parts) - node.level])
            target = ".".join(base + ([node.module] if node.module else []))
            if target:
                found.add(target)
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("ssc_nas.") for a in node.names
                         if a.name.startswith("ssc_nas."))
    return found


def test_dependencies_point_one_way() -> None:
    bad = []
    for path in PACKAGE.rglob("*.py"):
        me = _layer_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if me is None:
            continue
        for target in _internal_imports(path):
            other = _layer_of(target)
            if other is not None and ORDER.index(other) > ORDER.index(me):
                bad.append(f"{path.relative_to(ROOT)} ({me}) imports {target} ({other})")
    assert not bad, "\n".join(bad)


# Inside a package, modules likewise import only those before them.
SUBORDER = {
    "search": ["objectives", "config", "rungs", "samplers", "storage", "references", "results",
               "halving", "trials", "workers", "run"],
    "compare": ["config", "store", "reporter", "stats", "table", "designs", "runs"],
    "baselines": ["saliency", "pruning", "proxies"],
}
# What reads a study depends on its results, not on the loop that runs trials.
READERS = ("report", "progress")
READABLE = {"search.config", "search.storage", "search.results", "search.objectives"}


def _modules() -> list[tuple[Path, str]]:
    return [(path, ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
            for path in PACKAGE.rglob("*.py")]


def test_modules_inside_a_package_point_one_way() -> None:
    bad = []
    for path, name in _modules():
        package, _, me = name.partition(".")
        order = SUBORDER.get(package)
        if order is None or me not in order:
            continue
        for target in _internal_imports(path):
            head, _, other = target.partition(".")
            other = other.split(".")[0]
            if head == package and other in order and order.index(other) > order.index(me):
                bad.append(f"{name} imports {target}")
    assert not bad, "\n".join(bad)


def test_readers_of_a_study_do_not_import_the_search_loop() -> None:
    bad = []
    for path, name in _modules():
        if name.split(".")[0] not in READERS:
            continue
        for target in _internal_imports(path):
            if target.split(".")[0] == "search" and target not in READABLE:
                bad.append(f"{name} imports {target}")
    assert not bad, "\n".join(bad)


def test_every_public_module_has_all() -> None:
    missing = []
    for path, name in _modules():
        if path.name in ("__main__.py",) or path.stem.startswith("_") and path.stem != "__init__":
            continue
        tree = ast.parse(path.read_text())
        names = {t.id for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)}
        if "__all__" not in names:
            missing.append(name)
    assert not missing, f"modules without __all__: {missing}"


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is part of the test extra: pip install -e '.[test]'")
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_console_script_version() -> None:
    result = subprocess.run([sys.executable, "-m", "ssc_nas", "--version"], capture_output=True,
                            text=True, check=True)
    assert ssc_nas.__version__ in result.stdout


def test_the_command_line_answers_help_and_option_mistakes_without_torch() -> None:
    """``ssc-nas --help``, a command's ``--help``, a mistake in its options and ``space show``
    import no torch (it took 2.4 of the 3 s such a command took): the CLI imports only
    torch-free modules at the top (``choices``, ``budget``, ``errors``) and each command imports
    what it runs (``space show``: spaces, analytic costs, ``data.dataset_info``)."""
    probe = (
        "import sys\n"
        "from ssc_nas.cli import main\n"
        "for argv in (['--help'], ['search', '--help'], ['compare', '--help'],\n"
        "             ['search', '--budget', 'abc'], ['search', '--dataset', 'bogus'],\n"
        "             ['space', 'show', 'resnet20-ssc', '--budget', '0.5M', '--samples', '50']):\n"
        "    try:\n"
        "        main(argv)\n"
        "        code = 0\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code\n"
        "    print('@', argv[-1], code)\n"
        "print('@ torch', 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    ours = [line for line in result.stdout.splitlines() if line.startswith("@ ")]
    assert ours == ["@ --help 0", "@ --help 0", "@ --help 0", "@ abc 2", "@ bogus 2", "@ 50 0",
                    "@ torch False"], result.stdout + result.stderr


def test_family_names_are_the_registry_s() -> None:
    from ssc_nas.choices import FAMILY_NAMES
    from ssc_nas.models import FAMILIES

    assert tuple(FAMILIES) == FAMILY_NAMES


def test_processes_the_tests_start_run_this_checkout(tmp_path: Path) -> None:
    """``python -m ssc_nas`` started by a test, from another folder, imports the package under
    test (tests/conftest.py puts this checkout first on PYTHONPATH)."""
    result = subprocess.run([sys.executable, "-c", "import ssc_nas; print(ssc_nas.__file__)"],
                            capture_output=True, text=True, check=True, cwd=tmp_path)
    assert Path(result.stdout.strip()) == PACKAGE / "__init__.py"


def test_public_surface() -> None:
    for name in ssc_nas.__all__:
        assert hasattr(ssc_nas, name), name


def test_nothing_cites_outside_the_repository() -> None:
    """Design docs live in docs/; code, tests and README never cite the old external notes."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list tracked files")
    listed = subprocess.run([git, "ls-files", "-z", "--", "*.py", "*.md", "*.yaml", "*.yml"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    outside = "shared" + "/design"  # spelled in two parts so this file does not match itself
    bad = [name for name in listed.stdout.split("\0")
           if name and (ROOT / name).is_file()
           and outside in (ROOT / name).read_text(errors="replace")]
    assert not bad, f"cite docs/ instead of {outside} in: {', '.join(bad)}"


def _heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a file's headings: lower case, punctuation dropped, spaces -> '-'."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#+ (.+)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_documentation_links_resolve() -> None:
    """Every relative link in README and docs/ names a file that exists, and a heading in it."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path) if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _heading_anchors(
                    linked.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def _readme_commands() -> list[list[str]]:
    """Every ``ssc-nas`` command line in README's bash blocks, split, without comments."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.splitlines():
            if "ssc-nas " in line:
                commands.append(shlex.split(line.split("ssc-nas ", 1)[1], comments=True))
    return commands


def test_readme_commands_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """README's commands name commands and flags that exist, with valid values (parsed by the
    CLI, not run); the worker example joins the study its search example makes."""
    import click

    from ssc_nas.budget import Budget
    from ssc_nas.cli import cli
    from ssc_nas.search import CLI_DEFAULTS, SearchConfig, default_study_name
    from ssc_nas.spaces import load_space

    monkeypatch.chdir(ROOT)  # --config studies/... and search_spaces/... are relative to it
    commands = _readme_commands()
    assert len(commands) >= 15
    for args in commands:
        command: click.Command = cli
        ctx = command.make_context("ssc-nas", list(args))
        while isinstance(command, click.Group):  # down to the command that would run
            name, command, rest = command.resolve_command(ctx, [*ctx.protected_args, *ctx.args])
            assert command is not None, args
            ctx = command.make_context(name, rest, parent=ctx)
    (worker,) = [a for a in commands if a[0] == "worker"]
    study = worker[worker.index("--study") + 1]
    config = SearchConfig(budget=Budget.parse("0.5M", None), space=CLI_DEFAULTS["space"])
    assert study == default_study_name(config, load_space(config.space))


def test_readme_python_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README's Python examples run as written, beside the files its commands make
    (``arch.json`` from ``ssc-nas export``, ``runs/arch-mnist-5k/model.pt`` from ``train``)."""
    import contextlib
    import io

    from ssc_nas.models import Architecture, InputShape, build, save_model, write_architecture_file

    shape = InputShape(1, (28, 28), 10)
    arch = Architecture("resnet20", 0.25)
    write_architecture_file(tmp_path / "arch.json", arch, shape)
    (tmp_path / "runs" / "arch-mnist-5k").mkdir(parents=True)
    save_model(tmp_path / "runs" / "arch-mnist-5k" / "model.pt", build(arch, 1, 10, (28, 28)),
               arch, shape)
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {})
    assert "8192" in printed.getvalue()  # the stored weights the comment promises


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_benchmark_scripts_start(script: str, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Every benchmark README names imports and parses its flags (``--help``, in-process), so
    an API change that breaks one fails here, not on the next machine that runs it."""
    import runpy

    monkeypatch.setattr(sys, "argv", [script, "--help"])
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "benchmarks" / script), run_name="__main__")
    assert exit_info.value.code in (0, None)
    assert "usage" in capsys.readouterr().out.lower()
