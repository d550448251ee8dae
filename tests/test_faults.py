"""Faults: kill -9 leftovers, full or read-only disks, and error lines that a progress bar cannot hide."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from pipeline.core import io
from pipeline.core.cli import entry_name, report_error
from pipeline.core.errors import ConfigError, StorageError
from pipeline.core.io import atomic_dir, atomic_file, remove_stale_temps, write_json

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
OLD = time.time() - 3 * 24 * 3600  # older than every stale age


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def age(path: Path, when: float = OLD) -> None:
    for p in [*path.rglob("*"), path] if path.is_dir() else [path]:
        os.utime(p, (when, when), follow_symlinks=False)


# a writer that stops inside atomic_dir and atomic_file until it is killed
WRITER = """
import sys, time
from pathlib import Path
from pipeline.core.io import atomic_dir, atomic_file
out = Path(sys.argv[1])
with atomic_dir(out / "segments.zarr") as tmp, atomic_file(out / "logreg.json") as f:
    (tmp / "chunk").write_bytes(b"x" * 100)
    f.write("{")
    f.flush()
    print("ready", flush=True)
    time.sleep(600)
"""


def start_writer(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_killed_writers_temps_are_removed_when_the_outputs_are_next_written(tmp_path):
    kill(start_writer(tmp_path))
    left = temps(tmp_path)
    assert len(left) == 2 and all(f"tmp-{os.getpid()}" not in n for n in left)  # the dead pid's, not ours
    with atomic_dir(tmp_path / "segments.zarr") as tmp:
        (tmp / "a").write_text("new")
    assert [n for n in temps(tmp_path) if n.startswith(".segments.zarr.")] == []
    write_json(tmp_path / "logreg.json", {"ok": 1})
    assert temps(tmp_path) == []
    assert (tmp_path / "segments.zarr" / "a").read_text() == "new"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_an_unreaped_killed_writer_is_dead(tmp_path):
    proc = start_writer(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # not waited for: a zombie, as under a container without an init
    try:
        deadline = time.time() + 30
        while Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.time() < deadline
            time.sleep(0.01)
        assert len(remove_stale_temps(tmp_path)) == 2 and temps(tmp_path) == []
    finally:
        proc.wait()


def test_a_live_writers_temps_are_kept_and_remove_stale_temps_spares_them(tmp_path):
    proc = start_writer(tmp_path)
    try:
        live = temps(tmp_path)
        assert len(live) == 2 and all(f"tmp-{proc.pid}@" in n for n in live)
        with atomic_dir(tmp_path / "segments.zarr") as tmp:  # a concurrent run of the same output
            (tmp / "a").write_text("mine")
        write_json(tmp_path / "logreg.json", {})
        assert remove_stale_temps(tmp_path) == []
        assert temps(tmp_path) == live and (tmp_path / "segments.zarr" / "a").exists()
    finally:
        kill(proc)
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == live
    assert temps(tmp_path) == [] and (tmp_path / "segments.zarr" / "a").exists()


def test_this_process_keeps_its_own_open_temps(tmp_path):
    final = tmp_path / "shard.zarr"
    with atomic_dir(final) as outer:
        with atomic_dir(final) as inner:  # same output, same pid: the outer temp is still being written
            assert outer.exists()
            (inner / "x").write_text("inner")
        assert outer.exists() and remove_stale_temps(tmp_path) == [] and outer.exists()
        (outer / "x").write_text("outer")
        # a temp with our pid that is not open here is a dead one (a reused pid, e.g. in a container)
        ghost = tmp_path / f"{io._prefix(final)}ab12cd34"
        ghost.mkdir()
        assert remove_stale_temps(tmp_path) == [ghost] and outer.exists()
    assert (final / "x").read_text() == "outer" and temps(tmp_path) == []


def test_parallel_shards_in_one_directory_keep_each_others_temps(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.replace('"segments.zarr"', '"a.zarr"'), str(tmp_path)],
        env=ENV, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        theirs = [n for n in temps(tmp_path) if n.startswith(".a.zarr.")]
        with atomic_dir(tmp_path / "b.zarr"):
            pass
        assert remove_stale_temps(tmp_path) == [] and [n for n in temps(tmp_path) if n.startswith(".a.zarr.")] == theirs
    finally:
        kill(proc)


def test_old_style_and_other_hosts_temps_go_only_when_untouched_long_enough(tmp_path):
    legacy = tmp_path / ".s.zarr.tmp-k3j_x9q2"  # tempfile's name, before pids were in it
    legacy.mkdir()
    (legacy / "sub").mkdir()
    (legacy / "sub" / "chunk").write_bytes(b"x")
    foreign = tmp_path / ".s.zarr.tmp-4242@otherhost+1~ab12cd34"  # pid 4242 means nothing here
    foreign.write_bytes(b"x")
    keep = [tmp_path / n for n in (".s.zarr.tmp", "s.zarr.tmp-ab12cd34", ".s.zarr.tmp-notatemp!", "notes.txt")]
    for p in keep:
        p.write_text("x")
        age(p)
    with atomic_dir(tmp_path / "s.zarr"):
        pass
    assert legacy.exists() and foreign.exists()  # fresh: their writers may be alive

    age(legacy)
    os.utime(legacy / "sub" / "chunk")  # something inside was written just now: a live writer
    age(foreign, time.time() - io.FOREIGN_STALE_S + 60)
    assert remove_stale_temps(tmp_path) == [] and legacy.exists() and foreign.exists()

    age(legacy)
    age(foreign, time.time() - io.FOREIGN_STALE_S - 60)
    with atomic_dir(tmp_path / "s.zarr"):
        pass
    assert not legacy.exists() and not foreign.exists()
    assert all(p.exists() for p in keep)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_a_failed_write_is_a_storage_error_naming_the_output(tmp_path, code):
    final = tmp_path / "data" / "segments.zarr"
    final.mkdir(parents=True)
    (final / "old").write_text("previous output")
    with pytest.raises(StorageError) as err, atomic_dir(final) as tmp:
        (tmp / "chunk").write_bytes(b"x")
        raise OSError(code, os.strerror(code))  # as write() raises it: no file name
    assert str(err.value) == f"cannot write {final}: {os.strerror(code)}"
    assert err.value.errno == code and isinstance(err.value, OSError) and err.value.path == str(final)
    assert isinstance(err.value.__cause__, OSError)
    assert temps(final.parent) == [] and (final / "old").read_text() == "previous output"

    own_temp = str(tmp_path / f".x.json.tmp-{os.getpid()}@h~ab12cd34")  # an error naming the temp names the output
    with pytest.raises(StorageError, match=f"cannot write {tmp_path / 'x.json'}: "), atomic_file(tmp_path / "x.json") as f:
        f.write("{")
        raise OSError(code, os.strerror(code), own_temp)
    assert temps(tmp_path) == [] and not (tmp_path / "x.json").exists()


def test_errors_about_other_files_name_them_and_other_oserrors_stay_bugs(tmp_path):
    with pytest.raises(StorageError, match=r"^cannot access /media/in\.wav: Permission denied$"), \
            atomic_dir(tmp_path / "out.zarr"):
        raise PermissionError(errno.EACCES, "Permission denied", "/media/in.wav")
    with pytest.raises(FileNotFoundError) as err, atomic_dir(tmp_path / "out.zarr"):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/media/in.wav")
    assert not isinstance(err.value, StorageError)
    with pytest.raises(OSError) as err, atomic_file(tmp_path / "o.json"):
        raise OSError(errno.EIO, "Input/output error")
    assert not isinstance(err.value, StorageError)
    assert temps(tmp_path) == []


def test_storage_error_pickles():
    import pickle

    err = pickle.loads(pickle.dumps(StorageError("a/b", errno.ENOSPC)))
    assert str(err) == "cannot write a/b: No space left on device" and err.errno == errno.ENOSPC


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_directory_is_a_storage_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StorageError, match=f"^cannot write {ro / 'm.json'}: Permission denied$"):
            write_json(ro / "m.json", {})
        with pytest.raises(StorageError, match=f"^cannot write {ro / 'sub' / 'd.zarr'}: Permission denied$"), \
                atomic_dir(ro / "sub" / "d.zarr"):
            pass
    finally:
        ro.chmod(0o700)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs (root only: a real full and a real read-only filesystem)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a tmpfs")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                      check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_really_full_and_read_only_filesystem(small_tmpfs):
    final = small_tmpfs / "segments.zarr"
    with pytest.raises(StorageError, match=f"^cannot write {final}: No space left on device$"), atomic_dir(final) as tmp:
        (tmp / "chunk").write_bytes(b"x" * 1_000_000)
    assert list(small_tmpfs.iterdir()) == []  # the temp is gone, and so is the space it took
    write_json(small_tmpfs / "ok.json", {"fits": True})
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with pytest.raises(StorageError, match=f"^cannot write {small_tmpfs / 'm.json'}: Read-only file system$"):
        write_json(small_tmpfs / "m.json", {})


# ---- entry points: one `error:` line on a line of its own, naming the path and the stage ----

STAGE = """
import errno, os, sys
from tqdm import tqdm
from pipeline.core.errors import ConfigError
from pipeline.core.io import atomic_dir
from stages._cli import run_stage

def main(args, params):
    case = os.environ["CASE"]
    if case == "open_bar":  # an exception out of a loop leaves the bar open mid-line
        for i in tqdm(range(10), desc="work", leave=False, mininterval=0):
            if i == 3:
                raise ConfigError("params.yaml: segment.fps: must be > 0")
    if case == "closed_bar":  # a leave=False bar that closed cleanly ends its line with a bare \\r
        for _ in tqdm(range(3), desc="work", leave=False, mininterval=0):
            pass
        raise ConfigError("params.yaml: segment.fps: must be > 0")
    if case == "enospc":
        with atomic_dir("data/demo/segments.zarr") as tmp:
            for _ in tqdm(range(5), desc="segment demo", mininterval=0):
                (tmp / "x").write_bytes(b"x")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if case == "raw_enospc":  # raised outside atomic_dir, with a file name
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "metrics/leaderboard.json")
    if case == "dev_full":  # a real full device, no file name
        with open("/dev/full", "w") as f:
            f.write("x")
    if case == "bug":
        sys.stderr.write("\\rwork  30%")
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "missing.txt")

run_stage(__doc__, [], main)
"""


def run_fake_stage(tmp_path: Path, case: str) -> tuple[int, list[str]]:
    script = tmp_path / "fakestage.py"
    script.write_text(STAGE)
    (tmp_path / "params.yaml").write_text("{}\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env={**ENV, "CASE": case},
                          capture_output=True, timeout=120, check=False)
    return proc.returncode, proc.stderr.decode().split("\n")  # bytes: text=True would turn a bar's \r into \n


def error_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("error:")]


@pytest.mark.parametrize("case", ["open_bar", "closed_bar"])
def test_an_error_after_a_progress_bar_is_a_line_of_its_own(tmp_path, case):
    rc, lines = run_fake_stage(tmp_path, case)
    assert rc == 1, lines
    assert error_lines(lines) == ["error: params.yaml: segment.fps: must be > 0"], lines
    assert not any("Traceback" in line for line in lines)


def test_a_full_disk_inside_an_output_names_the_output_and_the_stage(tmp_path):
    rc, lines = run_fake_stage(tmp_path, "enospc")
    assert rc == 1, lines
    assert error_lines(lines) == ["error: fakestage: cannot write data/demo/segments.zarr: No space left on device"]
    assert not any("Traceback" in line for line in lines)
    assert list((tmp_path / "data" / "demo").iterdir()) == []


@pytest.mark.parametrize("case, line", [
    ("raw_enospc", "error: fakestage: cannot write metrics/leaderboard.json: No space left on device"),
    ("dev_full", "error: fakestage: cannot write: No space left on device"),
])
def test_storage_oserrors_raised_anywhere_are_one_line(tmp_path, case, line):
    if case == "dev_full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    rc, lines = run_fake_stage(tmp_path, case)
    assert rc == 1 and error_lines(lines) == [line], lines
    assert not any("Traceback" in line for line in lines)


def test_other_oserrors_keep_their_traceback_on_a_line_of_its_own(tmp_path):
    rc, lines = run_fake_stage(tmp_path, "bug")
    assert rc == 1 and error_lines(lines) == []
    assert "Traceback (most recent call last):" in lines, lines
    assert lines[-2].startswith("FileNotFoundError: [Errno 2]")


def test_the_stage_name_comes_from_the_stage_module(monkeypatch):
    def main(args, params):
        pass

    for module_name, spec_name in [("__main__", "stages.segment"), ("stages.segment", "stages.segment")]:
        module = types.ModuleType(module_name)  # python -m stages.segment, and an imported stage
        module.__spec__ = types.SimpleNamespace(name=spec_name)
        monkeypatch.setitem(sys.modules, "fake_stage_module", module)
        main.__module__ = "fake_stage_module"
        assert entry_name(main) == "segment"


def test_error_lines_start_a_line_even_on_an_untracked_stderr(capsys):
    from tqdm import tqdm

    sys.stderr.write("x\n")
    bar = tqdm(total=3, leave=False, file=sys.stderr, mininterval=0)  # open, mid-line, when the error comes
    bar.update()
    assert report_error(StorageError("x.h5", errno.EDQUOT), "byof") == 1
    err = capsys.readouterr().err.split("\n")
    assert err[-2] == "error: byof: cannot write x.h5: Disk quota exceeded" and err[-1] == "", err
    assert bar.disable  # closed
    assert report_error(ConfigError("p.yaml: bad"), "byof") == 1
    assert capsys.readouterr().err == "error: p.yaml: bad\n"  # nothing open: no blank line


def test_tools_print_through_the_same_helper(tmp_path, capsys, monkeypatch):
    from pipeline.core import cli
    from pipeline.tools import validate

    calls = []
    monkeypatch.setattr(validate, "report_error", lambda err, where: calls.append((str(err), where)) or 1)
    assert validate.main(["--params", str(tmp_path / "nope.yaml")]) == 1
    assert calls == [(f"{tmp_path / 'nope.yaml'}: params file not found (run from the repository root)", "validate")]
    monkeypatch.undo()
    assert validate.report_error is cli.report_error
    assert validate.main(["--params", str(tmp_path / "nope.yaml")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.yaml'}: params file not found (run from the repository root)\n"
