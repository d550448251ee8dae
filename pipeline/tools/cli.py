"""The ``affectbench`` command: the project's tools and DVC runs behind one entry point.

    affectbench list corpora|backbones|heads [NAME] [--options]
    affectbench validate [--params params.yaml]
    affectbench run --corpus emodb --root /data/emodb -b egemaps -b minilm -H logreg [-S key=value] [--name NAME]
    affectbench report [--no-repro] [--open]
    affectbench predict MODEL_DIR FILE [--top 5] ...
    affectbench verify [PATH ...] [--repair]
    affectbench fetch BACKBONE [--revision REV]

Installed into the project's venv as a console script by ``make repro``/``make test`` (an editable
install of the clone). It finds the project (the nearest folder at or above the working directory
holding ``dvc.yaml`` and ``params.yaml``) and the venv (the one running it, else ``<project>/.venv``)
itself: DVC runs with the venv's ``bin`` first on ``PATH`` (stage commands call ``python``) and with
the model hubs offline, as ``make`` does, so ``.venv/bin/affectbench run …`` works without activating
anything. ``run`` is ``dvc exp run -S …`` with the overrides spelled out (it prints the DVC command
it runs, so the same experiment can be rerun or queued by hand); ``list`` reads the same registries
as ``python -m pipeline.tools.catalog``; the other commands are the ``pipeline.tools`` modules.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import webbrowser
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="affectbench", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="AffectBench: reproducible affective-computing experiments (corpora → embeddings → probes → metrics).",
)
console = Console()

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class Kind(str, Enum):
    corpora = "corpora"
    backbones = "backbones"
    heads = "heads"


def fail(message: str) -> None:
    """One ``error:`` line on stderr, exit status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) with dvc.yaml and params.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "params.yaml").is_file():
            return folder
    fail(f"{here}: not inside an AffectBench project (no dvc.yaml and params.yaml here or above); "
         "cd into your clone first")
    raise AssertionError  # unreachable: fail() exits


def venv_bin(root: Path) -> Path:
    """The ``bin`` folder of the venv to run DVC and stage commands with: the running one, else ``<root>/.venv``."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "bin"
    candidate = root / ".venv" / "bin"
    if (candidate / "python").exists():
        return candidate
    fail(f"{root / '.venv'}: no project venv; run `make repro` (or `make setup`) in {root} first")
    raise AssertionError


def tool_env(bin_dir: Path) -> dict[str, str]:
    """The environment DVC runs in: the venv first on PATH (stages call ``python``), hubs offline."""
    return {**os.environ, **OFFLINE, "VIRTUAL_ENV": str(bin_dir.parent),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def enter_project(offline: bool = True) -> tuple[Path, Path]:
    """cd into the project (tools resolve params.yaml, data/ and models/ relative to it) and take on the
    environment DVC runs in (``offline=False``: leave the hub settings as the user has them); return
    (root, venv bin)."""
    root = project_root()
    bin_dir = venv_bin(root)
    os.chdir(root)
    env = tool_env(bin_dir)
    os.environ.update(env if offline else {k: v for k, v in env.items() if k not in OFFLINE})
    return root, bin_dir


def dvc(bin_dir: Path, *args: str) -> int:
    """Run the venv's ``dvc`` with its output shown live; its exit status."""
    exe = bin_dir / "dvc"
    if not exe.exists():
        fail(f"{exe}: DVC is not installed in this venv; run `make setup`")
    typer.echo(f"$ dvc {shlex.join(args)}")
    return subprocess.run([str(exe), *args], check=False, env=tool_env(bin_dir)).returncode


# ---------------------------------------------------------------------------------------------- list


def _registry(kind: Kind):
    from pipeline.tools.catalog import REGISTRIES

    return REGISTRIES[kind.value]


SUMMARY_COLUMNS = {"backbones": 4}  # type, modality, what, licence: weights and verification per entry (NAME)


@app.command("list")
def list_(
    kind: Annotated[Kind, typer.Argument(help="what to list")],
    name: Annotated[str | None, typer.Argument(help="one entry: its options, defaults and facts")] = None,
    options: Annotated[bool, typer.Option("--options", help="every entry's options and defaults")] = False,
) -> None:
    """List corpus recipes, backbone types or head types (from the registries) with their options."""
    import difflib

    from pipeline.tools.catalog import HEADERS, rows
    from pipeline.tools.catalog import options as entry_options

    registry = _registry(kind)
    if name is not None:
        entries = {e.name: e for e in registry.entries()}
        if name not in entries:
            close = difflib.get_close_matches(name, entries, n=1)
            fail(f"unknown {registry.kind} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                 + f"; known: {', '.join(entries)}")
        show_entry(kind, entries[name], entry_options(entries[name]))
        return
    headers = HEADERS[kind.value][:SUMMARY_COLUMNS.get(kind.value)]
    table = Table(title=f"{kind.value} ({len(registry.entries())})")
    for i, header in enumerate(headers):
        table.add_column(header, no_wrap=i == 0)  # a name is what gets copied: never broken
    for cells in rows(kind.value):
        table.add_row(*(c.replace("`", "") for c in cells[:len(headers)]))
    console.print(table)
    if options:
        for entry in registry.entries():
            show_entry(kind, entry, entry_options(entry), facts=False)
    else:
        typer.echo(f"options, defaults{', weights, verification' if kind is Kind.backbones else ''}: "
                   f"affectbench list {kind.value} NAME (or --options for all)")


def show_entry(kind: Kind, entry: Any, opts: dict[str, Any], facts: bool = True) -> None:
    typer.echo(f"{entry.name}: {entry.summary}")
    if facts:
        for key in ("modality", "tasks", "protocol", "unit", "family", "licence", "weights"):
            if entry.info.get(key):
                typer.echo(f"  {key}: {entry.info[key]}")
        if kind is Kind.backbones:
            from pipeline.tools.catalog import verified

            typer.echo(f"  verified against: {verified(entry)}")
        typer.echo(f"  module: {entry.module}")
    table = Table("option", "default", box=None, padding=(0, 2), show_header=facts)
    for key, value in opts.items():
        table.add_row(f"  {key}", repr(value))
    if opts:
        console.print(table)


# ------------------------------------------------------------------------------------------ validate


@app.command()
def validate(params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml")) -> None:
    """Check a params file: every section against its schema, the run lists against the sections."""
    enter_project()
    from pipeline.core.config import load_params
    from pipeline.core.errors import AffectBenchError
    from pipeline.tools.validate import validate_params

    try:
        summary = validate_params(load_params(params))
    except AffectBenchError as err:
        fail(str(err))
    typer.echo(f"{params}: valid ({summary})")


# ----------------------------------------------------------------------------------------------- run


def hydra_value(value: str) -> str:
    """A string as one Hydra override value: as it is when it is a plain word or path, else quoted
    (paths may hold spaces, commas, brackets, quotes; ``null``/``true``/numbers would change type)."""
    if re.fullmatch(r"[A-Za-z_/.~][\w./~+@:-]*", value) and value.lower() not in ("null", "true", "false"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def hydra_list(values: list[str]) -> str:
    return "[" + ",".join(hydra_value(v) for v in values) + "]"


def run_overrides(corpus: list[str], root: str | None, recipe: str | None, backbones: list[str],
                  heads: list[str], extra: list[str]) -> list[str]:
    """The ``-S`` overrides of an ``affectbench run`` (``++``: set, creating the key where missing)."""
    if (root or recipe) and len(corpus) != 1:
        fail("--root/--recipe name one corpus: give exactly one --corpus with them")
    out = [f"run.corpora={hydra_list(corpus)}"]
    if root:
        out.append(f"++corpora.{corpus[0]}.root={hydra_value(str(Path(root).expanduser().resolve()))}")
    if recipe:
        out.append(f"++corpora.{corpus[0]}.recipe={hydra_value(recipe)}")
    if backbones:
        out.append(f"run.backbones={hydra_list(backbones)}")
    if heads:
        out.append(f"run.heads={hydra_list(heads)}")
    return out + list(extra)


def check_run(params_file: Path, corpus: list[str], root: str | None, recipe: str | None,
              backbones: list[str], heads: list[str]) -> str:
    """Validate the params as this run will see them (the CLI's own overrides applied), before DVC
    touches the workspace: an unknown corpus, backbone or head is one line, in seconds. (``-S``
    overrides given by hand are checked by the pipeline's ``validate`` stage, which runs first.)"""
    from pipeline.core.config import load_params
    from pipeline.core.errors import AffectBenchError
    from pipeline.tools.validate import validate_params

    params = load_params(params_file)
    run = dict(params.get("run") or {})
    run["corpora"] = corpus
    if backbones:
        run["backbones"] = backbones
    if heads:
        run["heads"] = heads
    corpora = dict(params.get("corpora") or {})
    section = dict(corpora.get(corpus[0]) or {}) if (root or recipe) else None
    if section is not None:
        if root:
            if not Path(root).expanduser().exists():
                fail(f"--root {root}: no such directory")
            section["root"] = str(Path(root).expanduser().resolve())
        if recipe:
            section["recipe"] = recipe
        corpora[corpus[0]] = section
    try:
        return validate_params({**params, "run": run, "corpora": corpora})
    except AffectBenchError as err:
        fail(str(err))
    raise AssertionError


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
def run(
    corpus: Annotated[list[str], typer.Option("--corpus", "-c", help="corpus (params corpora.<name>); repeatable")],
    root: Annotated[str | None, typer.Option(help="where the corpus lives (sets corpora.<corpus>.root)")] = None,
    recipe: Annotated[str | None, typer.Option(help="recipe for a new corpus section (e.g. manifest)")] = None,
    backbone: Annotated[list[str] | None, typer.Option("--backbone", "-b", help="backbone; repeatable "
                                                         "(default: params run.backbones)")] = None,
    head: Annotated[list[str] | None, typer.Option("--head", "-H", help="probe head; repeatable "
                                                     "(default: params run.heads)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-S", help="any other override, as dvc exp run -S")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="experiment name (dvc exp show)")] = None,
    queue: Annotated[bool, typer.Option(help="queue it (dvc queue start runs it) instead of running now")] = False,
    dry: Annotated[bool, typer.Option("--dry", help="print the dvc command, run nothing")] = False,
) -> None:
    """Run an experiment: a corpus × backbones × probe heads, as `dvc exp run -S …` (results land in the
    workspace and in `dvc exp show`; compare with `dvc metrics diff` / `dvc exp show --only-changed`)."""
    if root:  # relative to where the user typed it, not to the project root the command cds into
        root = str(Path(root).expanduser().resolve())
    _, bin_dir = enter_project()
    backbones, heads = list(backbone or []), list(head or [])
    summary = check_run(Path("params.yaml"), corpus, root, recipe, backbones, heads)
    args = ["exp", "run"]
    for override in run_overrides(corpus, root, recipe, backbones, heads, list(set_ or [])):
        args += ["-S", override]
    if name:
        args += ["--name", name]
    if queue:
        args.append("--queue")
    typer.echo(f"params with these overrides: valid ({summary})")
    if dry:
        typer.echo(f"dvc {shlex.join(args)}")
        return
    code = dvc(bin_dir, *args)
    if code:
        raise typer.Exit(code)
    if not queue:
        show_leaderboard(Path("metrics/leaderboard.json"), corpus)
        typer.echo("compare: dvc exp show --only-changed  ·  dvc metrics diff main  ·  open metrics/report.html")


# -------------------------------------------------------------------------------------------- report


def show_leaderboard(path: Path, corpora: list[str] | None = None) -> None:
    """The leaderboard's test rows (dev where a corpus has no test split) as one table with intervals."""
    import json

    if not path.exists():
        fail(f"{path}: no leaderboard yet; run `affectbench report` (or dvc repro)")
    rows = json.loads(path.read_text())
    if corpora:
        rows = [r for r in rows if r["corpus"] in corpora or r["corpus"].split("-to-")[0] in corpora]
    splits = {r["corpus"]: r["split"] for r in rows if r["split"] == "test"}
    rows = [r for r in rows if r["split"] == splits.get(r["corpus"], "dev")]
    from pipeline.report.build import _score

    scores = [(title, key) for title, key in (("uar [95 % CI]", "uar"), ("macro F1", "macro_f1"), ("ccc", "ccc"))
              if any(r.get(key) is not None for r in rows)]  # a column no row fills is left out
    table = Table(title="leaderboard (metrics/leaderboard.md has every column and the paired tests)")
    for header in ("corpus", "task", "backbone", "head", "split", *(t for t, _ in scores), "n"):
        table.add_column(header, no_wrap=header in ("corpus", "backbone", "head"))
    for r in rows:
        table.add_row(r["corpus"], r["task"], r["backbone"], r["head"], r["split"],
                      *(_score(r, key) for _, key in scores), str(r.get("n", "")))
    console.print(table)


@app.command()
def report(
    repro: Annotated[bool, typer.Option(help="bring the report up to date first (dvc repro report)")] = True,
    open_: Annotated[bool, typer.Option("--open", help="open metrics/report.html in a browser")] = False,
) -> None:
    """Show the leaderboard (after `dvc repro report`: every number current) and where the HTML report is."""
    _, bin_dir = enter_project()
    if repro:
        code = dvc(bin_dir, "repro", "report")
        if code:
            raise typer.Exit(code)
    show_leaderboard(Path("metrics/leaderboard.json"))
    html = Path("metrics/report.html").resolve()
    if html.exists():
        typer.echo(f"report: {html.as_uri()}  (offline: no network needed)")
        if open_:
            webbrowser.open(html.as_uri())


# ---------------------------------------------------------------------- predict, verify, fetch: the tools


def _tool(main, argv: list[str]) -> None:
    code = main(argv)
    if code:
        raise typer.Exit(code)


@app.command()
def predict(
    model_dir: Annotated[str, typer.Argument(help="probe head dir, fine-tuning head dir or fine-tuned model dir")],
    file: Annotated[str, typer.Argument(help="audio or video file")],
    top: Annotated[int, typer.Option(help="classes to print per task")] = 5,
    task: Annotated[str | None, typer.Option(help="only this task")] = None,
    json_: Annotated[bool, typer.Option("--json", help="every probability as JSON")] = False,
    params: Annotated[str, typer.Option(help="params file (probe heads: backbone and head options)")] = "params.yaml",
    base: Annotated[str | None, typer.Option(help="LoRA: base encoder directory")] = None,
    text: Annotated[str | None, typer.Option(help="transcript, for probes on text backbones")] = None,
) -> None:
    """Run a saved model on a new audio or video file and print class probabilities."""
    cwd = Path.cwd()
    model_dir, file = str((cwd / model_dir).resolve()), str((cwd / file).resolve())
    enter_project()
    from pipeline.tools.predict import main

    argv = [model_dir, file, "--top", str(top), "--params", params]
    argv += (["--task", task] if task else []) + (["--json"] if json_ else [])
    argv += (["--base", base] if base else []) + (["--text", text] if text else [])
    _tool(main, argv)


@app.command()
def verify(
    paths: Annotated[list[Path] | None, typer.Argument(help="stores or cache shards (default: all)")] = None,
    repair: Annotated[bool, typer.Option(help="remove damaged cache shards and stale temporaries")] = False,
) -> None:
    """Read back every store and cache shard against its seal (after copying data between machines)."""
    cwd = Path.cwd()
    paths = [(cwd / p).resolve() for p in paths or []]
    root, _ = enter_project()
    from pipeline.tools.verify import main

    _tool(main, [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths]
          + (["--repair"] if repair else []))


@app.command()
def fetch(
    backbone: Annotated[str, typer.Argument(help="backbones.<name> whose model to download")],
    revision: Annotated[str | None, typer.Option(help="branch, tag or commit")] = None,
    dest: Annotated[str | None, typer.Option(help="target directory (default: models/pretrained/<backbone>)")] = None,
) -> None:
    """Download a backbone's pretrained model (on a machine with hub access) into models/pretrained/."""
    enter_project(offline=False)  # the one command that needs the hub
    from pipeline.tools.models import main

    _tool(main, ["fetch", backbone] + (["--revision", revision] if revision else []) + (["--dest", dest] if dest else []))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
