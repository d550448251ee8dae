"""The demo corpus is byte-reproducible: the same bytes whatever the thread count, worker count,
scheduling order or the SIMD code paths the CPU offers (issue 13, item 2).

A fresh clone must reproduce the committed ``dvc.lock`` hashes of ``data/demo/prepared``, or every
stage reruns and the README's demo figures are not what a user sees. We cannot borrow a second
CPU in a test, so the second synthesis runs with every CPU-dependent choice we can reach switched
to another path: ffmpeg and x264 restricted to C code (through a wrapper that ``imageio-ffmpeg``
picks up via ``IMAGEIO_FFMPEG_EXE``), glibc's libm without its AVX/FMA variants, numpy without its
dispatched SIMD kernels, OpenBLAS/OpenMP on one thread, two spawn workers instead of one process.
"""

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

import pipeline.corpora.synth.demo as synth

SMALL = {"n_speakers": 3, "utterances_per_class": 1, "seed": 0, "fps": 10, "frame_size": 96}  # 12 clips
REPO = Path(__file__).resolve().parents[1]


def _tree_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _no_simd_ffmpeg(tmp: Path) -> Path:
    """An ffmpeg that behaves like one on a CPU without any SIMD: C paths in ffmpeg and x264."""
    real = imageio_ffmpeg.get_ffmpeg_exe()
    wrapper = tmp / "ffmpeg-no-simd"
    # -cpuflags is global (first); the extra -x264-params goes just before the output file.
    wrapper.write_text(
        "#!/bin/bash\n"
        'args=("$@"); out="${args[-1]}"; unset "args[-1]"\n'
        f'exec "{real}" -cpuflags 0 "${{args[@]}}" -x264-params asm=0 "$out"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def _restricted_cpu_env(tmp: Path) -> dict[str, str]:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    env = dict(os.environ)
    env.update(
        IMAGEIO_FFMPEG_EXE=str(_no_simd_ffmpeg(tmp)),
        GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX512F,-AVX512DQ,-AVX512BW,-AVX512VL,-AVX2,-FMA,-AVX",
        NPY_DISABLE_CPU_FEATURES=" ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f)),
        OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
    )
    return env


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, str]:
    """The small demo synthesised in this process, one worker, the machine's own SIMD paths."""
    root = synth.generate_demo_corpus(tmp_path_factory.mktemp("ref") / "media", workers=1,
                                      progress=False, **SMALL)
    return _tree_digests(root)


def test_bytes_do_not_depend_on_workers_threads_or_cpu_features(reference, tmp_path):
    out = tmp_path / "media"
    code = ("import sys, pipeline.corpora.synth.demo as s\n"
            "if __name__ == '__main__':\n"
            f"    s.generate_demo_corpus(sys.argv[1], workers=2, progress=False, **{SMALL!r})\n")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], env=_restricted_cpu_env(tmp_path),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    other = _tree_digests(out)
    assert len(reference) == 13 and set(other) == set(reference)  # 12 clips + metadata.csv
    assert [f for f in reference if other[f] != reference[f]] == []


def test_without_pinned_c_paths_the_cpu_changes_the_bytes(reference, tmp_path, monkeypatch):
    """The premise of the test above: the encoders' SIMD paths are not bit-exact with their C code,
    so dropping ``-cpuflags 0`` / ``asm=0`` from the encode makes the bytes depend on the CPU."""
    run = subprocess.run

    def unpinned(cmd, *args, **kw):
        cmd = list(cmd)
        for flag, value in (("-cpuflags", "0"), ("-x264-params", "asm=0")):
            i = cmd.index(flag)
            assert cmd[i + 1] == value
            del cmd[i:i + 2]
        return run(cmd, *args, **kw)

    monkeypatch.setattr(synth.subprocess, "run", unpinned)
    root = synth.generate_demo_corpus(tmp_path / "media", workers=1, progress=False, **SMALL)
    differing = [f for f, h in _tree_digests(root).items() if h != reference[f]]
    assert len(differing) == 12 and "metadata.csv" not in differing
