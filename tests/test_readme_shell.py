"""Every shell block of README.md is copy-paste safe: it parses, its line continuations continue,
it has no unquoted ``<placeholder>`` (bash reads ``<x>`` as redirections), the modules, make targets,
``-S`` overrides and demo paths it names exist, and the cheap commands run for real in the venv.

Blocks are ```` ```bash ````, ```` ```sh ````, ```` ```shell ```` and ```` ```console ```` fences
(``$ `` prompts stripped), found with markdown-it, the parser the stack already ships (via rich).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV = ROOT / ".venv"
SHELLS = {"bash", "sh", "shell", "console"}

# The commands the test runs for real (read-only, seconds each). Anything else is only parsed.
CHEAP = (
    "affectbench --help",
    "affectbench list backbones",
    "affectbench validate",
    "python -m pipeline.tools.validate",
    "python -m pipeline.tools.catalog backbones --options",
)


def shell_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, body) of every shell fence in ``text``; console prompts are stripped."""
    blocks = []
    for tok in MarkdownIt().parse(text):
        if tok.type != "fence" or tok.info.split()[:1] == [] or tok.info.split()[0] not in SHELLS:
            continue
        body = tok.content
        if tok.info.split()[0] == "console":
            body = "".join(line[2:] + "\n" for line in body.splitlines() if line.startswith("$ "))
        blocks.append((tok.map[0] + 2, body))
    return blocks


def commands(body: str) -> list[str]:
    """The block's commands, continuation lines joined, comments and blank lines dropped."""
    out, current = [], ""
    for line in body.splitlines():
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip() and not current.lstrip().startswith("#"):
            out.append(current.strip())
        current = ""
    return out


def words(command: str) -> list[str]:
    """The command's words as bash splits them (comments dropped), split again at ``&&``/``;``/``|``."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def simple_commands(command: str) -> list[list[str]]:
    """The command's simple commands (word lists) between ``&&``, ``||``, ``;``, ``|`` and ``&``."""
    out = [[]]
    for word in words(command):
        if word in {"&&", "||", ";", "|", "&"}:
            out.append([])
        else:
            out[-1].append(word)
    return [c for c in out if c]


BLOCKS = shell_blocks(README.read_text())
IDS = [f"README.md:{line}" for line, _ in BLOCKS]


def test_the_readme_has_shell_blocks_and_the_extractor_finds_them():
    assert len(BLOCKS) >= 10, BLOCKS
    sample = "x\n```bash\necho a \\\n  b\n# note\n```\n```console\n$ ls\nout\n```\n```python\nimport os\n```\n"
    assert shell_blocks(sample) == [(3, "echo a \\\n  b\n# note\n"), (8, "ls\n")]
    assert commands("echo a \\\n  b   # c\n# note\n\nls\n") == ["echo a    b   # c", "ls"]


@pytest.mark.parametrize(("line", "body"), BLOCKS, ids=IDS)
def test_block_parses_with_bash_n(line, body):
    res = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"README.md:{line}: bash -n: {res.stderr.strip()}"


def continuation_problems(body: str, first: int) -> list[str]:
    """Lines whose backslash does not continue the command (``\\\\``, ``\\`` + spaces, ``\\`` last)."""
    lines = body.splitlines()
    problems = []
    for i, text in enumerate(lines):
        where = f"README.md:{first + i}"
        if re.search(r"\\\s+$", text):
            problems.append(f"{where}: backslash followed by spaces does not continue the line")
        elif text.endswith("\\\\"):
            problems.append(f"{where}: ends in an escaped backslash (\\\\), which passes '\\' as an argument")
        elif text.endswith("\\"):
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if not nxt.strip() or nxt.lstrip().startswith("#"):
                problems.append(f"{where}: continues into {'a comment' if nxt.strip() else 'nothing'}")
    return problems


def test_continuation_check_catches_the_broken_forms():
    assert continuation_problems("a \\\n  b\n", 1) == []
    assert len(continuation_problems("a \\\\\nb\n", 1)) == 1
    assert len(continuation_problems("a \\  \nb\n", 1)) == 1
    assert len(continuation_problems("a \\\n# c\n", 1)) == 1
    assert len(continuation_problems("a \\\n", 1)) == 1


@pytest.mark.parametrize(("line", "body"), BLOCKS, ids=IDS)
def test_block_has_no_broken_line_continuation(line, body):
    assert continuation_problems(body, line) == []


def unquoted_placeholders(command: str) -> list[str]:
    """``<word>`` outside quotes and comments: bash would redirect from/to files named by it."""
    code = re.sub(r"'[^']*'|\"(?:\\.|[^\"\\])*\"", "''", command)
    code = re.sub(r"(^|\s)#.*", "", code)
    return re.findall(r"<[A-Za-z_][\w.-]*>", code)


def test_placeholder_check_ignores_quotes_and_comments():
    assert unquoted_placeholders("dvc pull features/<corpus>.zarr") == ["<corpus>"]
    assert unquoted_placeholders("git commit -m 'x: <what>'  # <c>") == []


@pytest.mark.parametrize(("line", "body"), BLOCKS, ids=IDS)
def test_block_has_no_unquoted_placeholder(line, body):
    found = [(cmd, p) for cmd in commands(body) for p in unquoted_placeholders(cmd)]
    assert not found, f"README.md:{line}: bash reads these as redirections; use a real example: {found}"


ALL = [(line, cmd) for line, body in BLOCKS for cmd in commands(body)]


def test_the_venv_is_activated_before_any_bare_dvc_or_python_command():
    """Stage commands call ``python``: plain ``dvc`` only works with the venv first on PATH."""
    first = next(i for i, (_, cmd) in enumerate(ALL) for c in simple_commands(cmd) if c[0] in {"dvc", "python"})
    activate = next((i for i, (_, cmd) in enumerate(ALL) if cmd.startswith("source .venv/bin/activate")), None)
    assert activate is not None and activate < first, (
        f"README.md:{ALL[first][0]}: {ALL[first][1]!r} runs bare dvc/python before any `source .venv/bin/activate`"
    )


def test_every_python_module_and_make_target_exists():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    missing = []
    for line, cmd in ALL:
        for c in simple_commands(cmd):
            env_free = [w for w in c if not re.match(r"^\w+=", w)] or [""]
            if env_free[0] == "python" and env_free[1:2] == ["-m"] and importlib.util.find_spec(env_free[2]) is None:
                missing.append(f"README.md:{line}: no module {env_free[2]}")
            if env_free[0] == "make" and env_free[1:] and "=" not in env_free[1] and env_free[1] not in targets:
                missing.append(f"README.md:{line}: no make target {env_free[1]}")
    assert not missing


def exp_run_overrides() -> list[tuple[int, list[str]]]:
    out = []
    for line, cmd in ALL:
        for c in simple_commands(cmd):
            if c[:3] == ["dvc", "exp", "run"]:
                out.append((line, [c[i + 1] for i, w in enumerate(c) if w == "-S"]))
    return out


def test_every_exp_run_recipe_gives_valid_params(tmp_path):
    """Each `dvc exp run -S …` recipe, applied by DVC's own Hydra code to params.yaml, validates."""
    from dvc.utils.hydra import apply_overrides

    from pipeline.tools.validate import validate_params

    recipes = exp_run_overrides()
    assert len(recipes) >= 6, recipes
    for i, (line, overrides) in enumerate(recipes):
        params = tmp_path / f"params{i}.yaml"
        shutil.copy(ROOT / "params.yaml", params)
        assert overrides, f"README.md:{line}: dvc exp run without -S"
        for o in overrides:
            key = o.lstrip("+").split("=", 1)[0]
            assert "=" in o and re.fullmatch(r"[\w.]+", key), f"README.md:{line}: malformed override {o!r}"
        apply_overrides(params, overrides)
        validate_params(yaml.safe_load(params.read_text()))


PRODUCED = ("data/demo/", "models/demo/", "features/demo/", "metrics/")


def test_demo_paths_the_readme_names_are_pipeline_outputs():
    """A path under the demo's outputs (e.g. the `predict` example's media) is one dvc.lock records."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    outs = {o["path"] for st in lock["stages"].values() for kind in ("outs", "metrics") for o in st.get(kind, [])}
    named = {w for _, cmd in ALL for c in simple_commands(cmd) for w in c if w.startswith(PRODUCED)}
    assert named, "expected the README to name demo outputs (predict, dvc pull examples)"
    orphans = sorted(p for p in named if not any(p == o or p.startswith(o.rstrip("/") + "/") for o in outs))
    assert not orphans, f"README names paths no stage produces: {orphans}"
    media = [p for p in named if p.endswith(".mp4")]
    manifest = ROOT / "data/demo/prepared/manifest.parquet"
    if media and manifest.exists():  # after `make repro`: the file is really there
        assert all((ROOT / p).is_file() for p in media), media


@pytest.mark.skipif(not (VENV / "bin" / "activate").exists(), reason="no .venv (run make setup)")
@pytest.mark.parametrize("command", CHEAP)
def test_cheap_readme_commands_run_in_the_venv(command):
    assert command in [cmd.split("#")[0].strip() for _, cmd in ALL], f"{command!r} is no longer in a README block"
    res = subprocess.run(
        ["bash", "-c", f"source .venv/bin/activate && {command}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert res.returncode == 0, f"{command}: {res.stderr[-2000:]}"
    assert res.stdout.strip(), f"{command}: printed nothing"


def test_make_repro_prints_the_leaderboard_once(tmp_path):
    """`make repro` cats metrics/leaderboard.md after `dvc repro`; the report stage must not print it too."""
    dry = subprocess.run(["make", "-n", "repro"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert dry.splitlines().count("cat metrics/leaderboard.md") == 1, dry
    metrics = ROOT / "metrics"
    if not any((metrics / "experiments").rglob("*.json")):  # a fresh clone holds only .gitignore files there
        pytest.skip("no experiment results in metrics/experiments (run make repro)")
    for sub in ("experiments", "predictions", "segment"):
        if (metrics / sub).is_dir():
            shutil.copytree(metrics / sub, tmp_path / "metrics" / sub)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    res = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "stages.report"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    title = (tmp_path / "metrics" / "leaderboard.md").read_text().splitlines()[0]
    assert title.startswith("# ") and title not in res.stdout, res.stdout
    assert "leaderboard.md" in res.stdout  # the stage still says where it is


def test_every_affectbench_subcommand_the_readme_names_exists():
    import typer.main

    from pipeline.tools.cli import app

    known = set(typer.main.get_command(app).commands)
    named = [(line, c[1]) for line, cmd in ALL for c in simple_commands(cmd) if c[0] == "affectbench" and c[1:]
             and not c[1].startswith("-")]
    assert named, "expected affectbench examples in the README"
    assert not [(line, sub) for line, sub in named if sub not in known], known
