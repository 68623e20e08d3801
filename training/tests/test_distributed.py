"""torchrun with gloo: DDP and FSDP runs train as one process would, resume exactly, agree on time, and
shard the data stream by rank."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from echogen_training.data.sources import build_stream

from echogen_ros.model.echogen import EchoGen


def _marked_processes(entry: str) -> list[int]:
    """The processes whose environment holds `entry` ("KEY=value"), from /proc."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if entry.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def test_marked_processes_finds_a_child_by_its_environment() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             env={**os.environ, "ECHOGEN_TEST_MARK": "probe"}, start_new_session=True)  # fmt: skip
    try:
        assert _marked_processes("ECHOGEN_TEST_MARK=probe") == [child.pid]
    finally:
        child.kill()
        child.wait()


def _torchrun(*program: str) -> str:
    """Run `program` (torchrun's arguments after its own) in 2 processes on gloo; its stdout."""
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
               *program]  # fmt: skip
    # a mark its workers inherit: torchrun starts each in a session of its own, so on a timeout they are
    # found by it (a worker left alive would keep the output pipes open, and the test would wait forever)
    mark = f"{os.getpid()}-{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ECHOGEN_TEST_TORCHRUN": mark}
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = launcher.communicate(timeout=300)
    except subprocess.TimeoutExpired:  # show where it stopped
        os.killpg(launcher.pid, signal.SIGKILL)
        for pid in _marked_processes(f"ECHOGEN_TEST_TORCHRUN={mark}"):
            with contextlib.suppress(ProcessLookupError):  # ended since
                os.kill(pid, signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=60)
        pytest.fail(f"torchrun {program} did not finish in 300 s:\n{stderr[-3000:]}")
    assert launcher.returncode == 0, stderr[-3000:]
    return stdout


@pytest.mark.parametrize(
    ("stage", "strategy", "decoder_map"),
    [
        ("vq", "ddp", False),
        ("vq", "ddp", True),
        ("vq", "fsdp", False),
        ("vq", "fsdp", True),
        ("pmtp", "ddp", False),
        ("djo", "ddp", False),
        ("cycle_rl", "ddp", False),
        ("pmtp", "fsdp", False),
        ("djo", "fsdp", True),
    ],
)
def test_torchrun_with_gloo(tiny_config, tmp_path: Path, stage: str, strategy: str, decoder_map: bool) -> None:
    """A real 2-process torchrun (gloo) of every stage (DDP) and of FSDP2; the model it writes loads and
    grounds. Under FSDP the checkpoint holds the gathered full weights and evaluation runs on a copy. PMTP
    runs with its frame options on (hue turns, fades, tokenizer round trips: the VQ runs inside the sharded
    model's forward). With a decoder map, the VQ stage trains it decoder-only from the frames' layouts on
    every rank, and DJO soft-decodes through it inside the sharded model. The VQ stage's objective holds the VQ
    alone: under FSDP its checkpoint still holds the whole model."""
    config = tmp_path / "ddp.yaml"
    out = tmp_path / "ddp"
    evaluate = "{every: 2, scenes: 1}" if strategy == "fsdp" else "{every: 0}"
    # dead-code restarts all-reduce hits and broadcast rank 0's latents (DDP only: FSDP shards the codebook);
    # a decoder-only run keeps every code
    restarts = 1 if strategy == "ddp" and not decoder_map else 0
    vq_options = f"{{decoder_only: {str(decoder_map).lower()}, restart_every: {restarts}}}"
    config.write_text(
        f"model: {{init: tiny, decoder_map: {str(decoder_map).lower()}}}\n"
        "data: {batch_size: 2, count: 16, render_scales: [0.25]}\n"
        "optim: {max_steps: 2, warmup_steps: 1}\n"
        "cycle_rl: {layouts_per_step: 1, group_size: 2}\n"
        f"vq: {vq_options}\n"
        "pmtp: {recolour: 0.4, desaturate: 0.3, tokenized: 1.0}\n"  # every frame round-trips
        f"eval: {evaluate}\n"
        f"run: {{out: {out}, save_every: 2, progress: false, autocast: none, distributed: {strategy}}}\n"
    )
    _torchrun("-m", "echogen_training", stage, "--config", str(config))
    trainer = json.loads((out / "checkpoints" / "step_00000002" / "trainer.json").read_text())
    assert trainer["data_position"] == 4  # per rank: 2 steps × batch 2 (the other rank read the odd items)
    model = EchoGen.load(out / "final")
    assert model.manifest["stage"] == stage
    if stage == "vq":  # the VQ trained; every other weight saved whole as it started (FSDP shards the VQ alone)
        start = EchoGen.create("tiny", seed=0).model.state_dict()
        saved = model.model.state_dict()
        rest = [k for k in start if not k.startswith("model.vqmodel.")]
        assert rest and all(torch.equal(saved[k], start[k]) for k in rest)
        assert any(not torch.equal(saved[k], start[k]) for k in start if k.startswith("model.vqmodel.decoder."))
    if decoder_map:  # saved and loaded with the model; the VQ stage trained it (DJO leaves the VQ alone)
        trained = any(p.abs().sum() > 0 for p in model.model.model.vqmodel.decoder_map.parameters())
        assert trained == (stage == "vq")
    from echogen_ros.world.dataset import world_sample

    (detection,) = model.ground(world_sample(0, 0, "val").image(160, 120), "the red cup")
    assert 0 <= detection.box[0] < detection.box[2] <= 160


@pytest.mark.parametrize("stage", ["vq", "pmtp"])
def test_torchrun_fsdp_resume_is_exact(tmp_path: Path, stage: str) -> None:
    """Under FSDP a run stopped by run.stop_after resumes from the gathered full weights and the full optimizer
    state to the same weights as a run that went straight through (2-process gloo torchrun)."""

    def config(name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            "model: {init: tiny, decoder_map: true}\n"
            "data: {batch_size: 2, count: 16, render_scales: [0.25]}\n"
            "optim: {max_steps: 3, warmup_steps: 1}\n"
            "vq: {decoder_only: false, restart_every: 0}\n"
            "eval: {every: 0}\n"
            f"run: {{out: {tmp_path / name}, save_every: 100, log_every: 1, progress: false, autocast: none, "
            "distributed: fsdp}\n"
        )
        return path

    _torchrun("-m", "echogen_training", stage, "--config", str(config("straight")))
    resumed = config("resumed")
    _torchrun("-m", "echogen_training", stage, "--config", str(resumed), "run.stop_after=2")
    assert not (tmp_path / "resumed" / "final").exists()
    _torchrun("-m", "echogen_training", stage, "--config", str(resumed))
    logged = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["split"] == "train"] == [1, 2, 3]  # the second run went on at step 3
    a = EchoGen.load(tmp_path / "straight" / "final").model.state_dict()
    b = EchoGen.load(tmp_path / "resumed" / "final").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = EchoGen.create("tiny", seed=0).model.state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a if k in start)  # it trained


def test_ranks_agree_on_the_slowest_wall_time(tmp_path: Path) -> None:
    # the time budget decides on this value: every rank must get the same one, or one rank stops a step
    # early and leaves the others waiting in the gradient all-reduce
    script = tmp_path / "agree.py"
    script.write_text(
        "import pathlib, sys\nfrom echogen_training import distributed\nc = distributed.setup()\n"
        "value = distributed.slowest(10.0 + 5 * c.rank, c)\n"
        "pathlib.Path(sys.argv[1], f'rank{c.rank}').write_text(str(value))\ndistributed.teardown(c)\n"
    )
    _torchrun(str(script), str(tmp_path))
    assert [(tmp_path / f"rank{rank}").read_text() for rank in (0, 1)] == ["15.0", "15.0"]


def test_a_time_budget_under_torchrun_ends_every_rank_together(tmp_path: Path) -> None:
    config, out = tmp_path / "budget.yaml", tmp_path / "budget"
    config.write_text(
        "model: {init: tiny}\n"
        "data: {batch_size: 2, count: 16, render_scales: [0.25]}\n"
        "optim: {max_steps: 100000, warmup_steps: 1}\n"
        "eval: {every: 0}\n"
        f"run: {{out: {out}, save_every: 100000, progress: false, autocast: none, time_budget_s: 12}}\n"
    )
    _torchrun("-m", "echogen_training", "pmtp", "--config", str(config))
    trainer = json.loads(next((out / "checkpoints").glob("step_*/trainer.json")).read_text())
    assert 0 < trainer["step"] == trainer["config"]["optim"]["max_steps"] < 100000  # stopped by the budget
    assert (out / "final" / "echogen.json").is_file()


def test_world_stream_shards_differ_by_rank(tiny_config) -> None:
    data = tiny_config("pmtp").data
    assert build_stream(data, rank=1, world=2).index(0) != build_stream(data).index(0)
