"""benchmarks/gpu.sh runs every step of the GPU benchmark end to end (here in miniature on the
CPU: 128 px, a few frames), prints JSON lines and writes them to the output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu.sh"


def run_script(tmp_path: Path, *args: str, timeout: float = 900) -> tuple[list[dict], list[dict], int]:
    """(lines printed, lines in OUT/gpu.jsonl, exit code)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out),
                           "--cache", str(tmp_path / "cache"), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)
    printed = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    written = [json.loads(x) for x in (out / "gpu.jsonl").read_text().splitlines()]
    return printed, written, done.returncode


def lines_of(lines: list[dict], step: str, **match) -> list[dict]:
    return [x for x in lines if x["step"] == step and all(x.get(k) == v for k, v in match.items())]


@pytest.mark.slow
def test_every_step_runs_and_reports(tmp_path):
    # a generous budget: the shared test machine must not turn this into a test of its load
    printed, written, code = run_script(tmp_path, "--budget", "800")
    assert printed == written
    assert code == 0, [x for x in written if "error" in x]
    assert all("t" in x and "step" in x for x in written)
    env = written[0]
    assert env["step"] == "env" and "error" not in env and env["torch"] and env["sam2"] == "1.1.0"
    done = written[-1]
    assert done["step"] == "done" and done["errors"] == [] and done["skipped"] == []

    fidelity = {x["engine"]: x for x in lines_of(written, "fidelity")}
    assert set(fidelity) == {"exact", "engine"}
    for line in fidelity.values():  # on the CPU both engines reproduce upstream exactly
        assert line["identical"] and line["within_tolerance"]
        assert line["object_frames"] == 2 * 4 and line["identical_object_frames"] == 8
        low, high = line["mask_area_pct_min_max"]
        assert 0 < low and high < 100  # the comparison is not vacuous

    for compiled in (False, True):
        runs = [x for x in lines_of(written, "speed", compiled=compiled) if not x.get("summary")]
        got = {(x["engine"], x["objects"]) for x in runs}
        expected = {(e, 1) for e in ("engine", "pipeline", "upstream")}
        expected |= {(e, 2) for e in ("engine", "pipeline", "upstream")}
        expected |= set() if compiled else {("exact", 2)}
        assert got == expected
        for x in runs:
            assert x["frames"] == 4 and x["fps"] > 0 and x["sec_per_frame"] > 0
            assert x["peak_gpu_mb"] is None and x["state_mb"] > 0
        summaries = lines_of(written, "speed", compiled=compiled, summary=True)
        assert [x["objects"] for x in summaries] == [1, 2]
        for x in summaries:
            assert x["engine_vs_upstream"] > 0 and x["pipeline_vs_upstream"] > 0
            assert x["decode_preprocess_ms_per_frame"] > 0

    latency = {x["case"]: x for x in lines_of(written, "latency")}
    assert latency["first_prompt_embedding_ready"]["median_ms"] > 0
    assert latency["first_prompt_embedding_ready"]["runs"] == 2

    (writer,) = lines_of(written, "writer")
    assert writer["video"] == "1920x1080 JPEG" and writer["frames"] == 3
    assert writer["engine_fps"] > 0 and writer["pipeline_fps"] > 0
    assert 0 <= writer["writer_share"] < 1 and isinstance(writer["keeps_up"], bool)
    assert writer["encode_cpu_ms_per_frame"] > 0 and writer["encode_threads"] >= 1
    assert 0 < writer["mask_area_pct_mean"] < 100

    memory = [x for x in lines_of(written, "memory") if not x.get("summary")]
    assert {(x["engine"], x["frames"]) for x in memory} == {
        (e, n) for e in ("pipeline", "upstream") for n in (3, 6)}
    held = {(x["engine"], x["frames"]): x["held_mb"] for x in memory}
    assert held[("pipeline", 6)] == held[("pipeline", 3)]  # nothing held per frame
    assert held[("upstream", 6)] > held[("upstream", 3)]  # upstream holds every frame
    (summary,) = lines_of(written, "memory", summary=True)
    assert summary["flat"] is True and summary["upstream_long_vs_short"] > 1

    (compile_line,) = lines_of(written, "compile")
    assert compile_line["warmup_sec"] > 0 and compile_line["graphs"] >= 5


def test_budget_stops_new_steps_and_says_so(tmp_path):
    printed, written, code = run_script(tmp_path, "--budget", "0.5", timeout=300)
    assert printed == written
    assert [x["step"] for x in written] == ["env", "frames", "tiny-eager", "tiny-compiled", "done"]
    assert all(x["skipped"] == "time budget" for x in written[2:4])
    assert written[-1]["skipped"] == ["tiny-compiled:tiny-compiled", "tiny-eager:tiny-eager"]
    assert code == 0


def test_the_full_run_covers_both_models_eager_and_compiled():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu
    from _common import MODEL_CONFIGS

    from napari_sam2_track.engine.models import _sam2_config_path

    plan = gpu.groups(gpu.FULL)
    assert [(size, compiled) for _name, size, compiled, _steps in plan] == [
        ("tiny", False), ("base-plus", False), ("tiny", True), ("base-plus", True)]
    assert gpu.FULL.image_size == 1024 and gpu.FULL.objects == (1, 8)
    assert gpu.FULL.memory_frames == (100, 1000)
    for size in gpu.FULL.sizes:  # the configs the full run builds exist in the installed sam2
        assert _sam2_config_path(MODEL_CONFIGS[size]).is_file()


def test_a_missing_package_is_named_in_one_line(tmp_path):
    """Where a package the steps import is missing, the env line names it and nothing runs."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('psygnal', 'zarr'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{blocker}"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--device", "cpu",
                           "--quick", "--out", str(out), "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    (line,) = [json.loads(x) for x in (out / "gpu.jsonl").read_text().splitlines()]
    assert line["step"] == "env"
    assert line["error"].startswith("missing Python packages: zarr>=3, psygnal (")
    assert "--fetch-wheels" in line["error"]
