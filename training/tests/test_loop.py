"""The training loop on the tiny preset: every stage runs and writes a loadable model, checkpoints rotate,
resume is exact (also with input workers), gradient accumulation, a non-finite loss keeps the last good
checkpoint, and the hand-off of packed pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from echogen_training.loop import NON_FINITE_EXIT, Trainer

from echogen_ros.model.echogen import EchoGen


@pytest.mark.parametrize("stage", ["vq", "vision", "pmtp", "djo", "cycle_rl"])
def test_every_stage_trains_and_writes_a_loadable_model(tiny_config, stage: str) -> None:
    config = tiny_config(stage, "eval.every=3", "eval.scenes=2")
    before = {k: v.clone() for k, v in EchoGen.create("tiny", seed=0).model.state_dict().items()}
    assert Trainer(config).run() == 0
    out = Path(config.run.out)
    model = EchoGen.load(out / "final")
    assert model.manifest["stage"] == stage and model.manifest["metrics"]
    changed = [k for k, v in model.model.state_dict().items() if not torch.equal(v, before[k])]
    vq_changed = [k for k in changed if ".vqmodel." in k]
    assert changed and (bool(vq_changed) == (stage == "vq")) and (len(vq_changed) == len(changed) or stage != "vq")
    if stage == "vision":  # the encoder and aligner train; the word classifier becomes the word embeddings
        assert all(".vision_model." in k or ".aligner." in k or "embed_tokens" in k or "lm_head" in k for k in changed)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["split"] == "train"] == [1, 2, 3]
    assert any(r["split"] == "eval" for r in lines)
    assert list((out / "tb").iterdir())  # TensorBoard event file
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_00000003"


def test_checkpoints_rotate_to_the_last_two_and_keep_every_milestone(tiny_config) -> None:
    config = tiny_config("vq", "optim.max_steps=7", "run.save_every=1", "run.keep_every=3")
    assert Trainer(config).run() == 0
    kept = sorted(p.name for p in (Path(config.run.out) / "checkpoints").glob("step_*"))
    assert kept == ["step_00000003", "step_00000006", "step_00000007"]
    assert EchoGen.load(Path(config.run.out) / "checkpoints" / "step_00000003" / "model").manifest["stage"] == "vq"


def test_resume_takes_the_newest_checkpoint_that_verifies(tiny_config, capsys) -> None:
    """A `latest` that points nowhere once restarted the run at step 0 over its checkpoints, and a truncated
    trainer state was a traceback: resume now takes the newest checkpoint that verifies and says why."""
    config = tiny_config("vq", "optim.max_steps=3", "run.save_every=1")
    assert Trainer(config).run() == 0
    root = Path(config.run.out) / "checkpoints"
    (root / "latest").write_text("step_99999999\n")  # points nowhere
    assert Trainer(config).step == 3
    state_file = root / "step_00000003" / "trainer.safetensors"
    state_file.write_bytes(state_file.read_bytes()[:-100])  # truncated
    capsys.readouterr()
    assert Trainer(config).step == 2
    said = capsys.readouterr().out
    assert "resuming from step_00000002" in said
    assert "step_00000003 (trainer.safetensors is missing or truncated)" in said
    (root / "step_00000002" / "trainer.json").unlink()
    with pytest.raises(ValueError, match="holds checkpoints but none can be resumed"):
        Trainer(config)  # never starts over them


@pytest.mark.parametrize("stage", ["pmtp", "djo", "cycle_rl"])
def test_generating_stages_train_with_positions_and_the_layout_map(tiny_config, stage: str) -> None:
    """Every stage that trains the generator runs with both L2I input options on, and the model it writes
    keeps them (generation then uses them wherever the model goes)."""
    config = tiny_config(stage, "model.image_positions=true", "model.layout_map=true")
    assert Trainer(config).run() == 0
    saved = EchoGen.load(Path(config.run.out) / "final").model.config
    assert saved.layout_map["grid"] == saved.image_positions["grid"] == 4  # tiny: 4 × 4 image tokens


def test_gradient_accumulation_matches_one_big_batch(tiny_config) -> None:
    """Two micro-batches of 2 accumulate to the mean of their gradients (vq: no random masking)."""
    big = Trainer(tiny_config("vq", "data.batch_size=4", "optim.grad_accum=1", "optim.max_steps=1"))
    small = Trainer(tiny_config("vq", "data.batch_size=2", "optim.grad_accum=2", "optim.max_steps=1",
                                f"run.out={big.out}_accum"))  # fmt: skip
    big.train_step()
    small.train_step()
    # Adam's first moment after one step is (1 - beta1) x the (clipped) gradient: compare gradients
    a, b = big.optimizer.state_dict()["state"], small.optimizer.state_dict()["state"]
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k]["exp_avg"], b[k]["exp_avg"], atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize(
    ("stage", "extra"),
    [
        ("pmtp", ()),
        ("pmtp", ("pmtp.pointer_weight=1.0",)),
        ("pmtp", ("pmtp.category_weight=0.5",)),  # a training-only head, saved and restored
        ("pmtp", ("optim.language_lr_scale=0.25",)),  # two optimizer groups
        ("vq", ("vq.restart_every=3",)),
    ],
)
def test_resume_is_exact(tiny_config, tmp_path: Path, stage: str, extra: tuple[str, ...]) -> None:
    """Also for VQ with dead-code restarts: the code-hit window spans the interruption (restart at step 3)."""
    straight = tiny_config(stage, "optim.max_steps=4", f"run.out={tmp_path / 'straight'}", "run.save_every=100",
                           *extra)  # fmt: skip
    assert Trainer(straight).run() == 0
    first = tiny_config(stage, "optim.max_steps=4", f"run.out={tmp_path / 'resumed'}", "run.save_every=100",
                        "run.stop_after=2", *extra)  # fmt: skip
    assert Trainer(first).run() == 0
    assert not (tmp_path / "resumed" / "final").exists()
    second = tiny_config(stage, "optim.max_steps=4", f"run.out={tmp_path / 'resumed'}", "run.save_every=100", *extra)
    trainer = Trainer(second)
    assert trainer.step == 2 and trainer.stream.position == 2 * second.data.batch_size
    assert trainer.run() == 0
    a = EchoGen.load(tmp_path / "straight" / "final").model.state_dict()
    b = EchoGen.load(tmp_path / "resumed" / "final").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("stage", ["vision", "pmtp", "djo"])
def test_input_workers_train_exactly_as_the_training_process(tiny_config, tmp_path: Path, stage: str) -> None:
    """data.workers builds the same draws in forked processes: the same weights come out, also when a run
    stopped by stop_after resumes with workers (the draw count restarts from the checkpoint's position)."""
    common = ("optim.max_steps=4", "run.save_every=100")
    inline = tiny_config(stage, *common, f"run.out={tmp_path / 'inline'}")
    assert Trainer(inline).run() == 0
    first = tiny_config(stage, *common, f"run.out={tmp_path / 'workers'}", "data.workers=2", "run.stop_after=1")
    assert Trainer(first).run() == 0
    second = tiny_config(stage, *common, f"run.out={tmp_path / 'workers'}", "data.workers=2", "data.prefetch=1")
    trainer = Trainer(second)
    assert trainer.step == 1 and trainer.loader is not None
    assert trainer.run() == 0
    a = EchoGen.load(tmp_path / "inline" / "final").model.state_dict()
    b = EchoGen.load(tmp_path / "workers" / "final").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_config) -> None:
    config = tiny_config("pmtp", "optim.max_steps=50", "run.save_every=1", "optim.lr=1.0e30",
                         "optim.warmup_steps=1", "optim.grad_clip=1.0e30")  # fmt: skip
    assert Trainer(config).run() == NON_FINITE_EXIT
    latest = Path(config.run.out) / "checkpoints" / "latest"
    good = Path(config.run.out) / "checkpoints" / latest.read_text().strip()
    model = EchoGen.load(good / "model")  # the kept checkpoint loads and is finite
    assert all(torch.isfinite(v).all() for v in model.model.state_dict().values())


def test_loss_falls_when_overfitting_a_tiny_batch(tiny_config) -> None:
    config = tiny_config("pmtp", "data.count=2", "data.batch_size=2", "optim.lr=1.0e-2", "optim.max_steps=60",
                         "optim.warmup_steps=1", "optim.min_lr_ratio=1.0", "optim.weight_decay=0")  # fmt: skip
    trainer = Trainer(config)
    losses = [trainer.train_step()["loss"] for _ in range(60)]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_throughput_benchmark_reports_tokens_and_mfu(capsys) -> None:
    from echogen_training.bench import main

    assert main(["--steps", "1", "--json", "model.init=tiny", "data.batch_size=2", "data.render_scales=[0.25]"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["tokens_per_s"] > 0 and 0 < result["mfu_vs_bf16_peak"] < 1


def test_pixels_packed_for_the_hand_off_come_back_bit_identical(tiny_config) -> None:
    """Workers feeding an accelerator send uint8 pixels; the floats rebuilt from them equal to_pixels's,
    for the VQ stage's bare tensor and inside the PMTP batches (I2L pixels, L2I generation targets)."""
    import copy

    from echogen_training.data.batches import to_pixels
    from echogen_training.data.device import pack_pixels, pixels_to

    frames = [torch.randint(0, 256, (16, 16, 3), dtype=torch.uint8).numpy() for _ in range(3)]
    pixels = to_pixels(frames)
    packed = pack_pixels({"pixels": pixels.clone()})["pixels"]
    assert packed.dtype == torch.uint8 and torch.equal(pixels_to(packed, "cpu"), pixels)
    trainer = Trainer(tiny_config("pmtp"))
    cpu = trainer.cpu_inputs(0)
    packed_batches = pack_pixels(copy.deepcopy(cpu))
    assert packed_batches["i2l"].pixels.dtype == packed_batches["l2i"].gen_pixels.dtype == torch.uint8
    moved = trainer.device_inputs(packed_batches)
    assert torch.equal(moved["i2l"].pixels, cpu["i2l"].pixels)
    assert torch.equal(moved["l2i"].gen_pixels, cpu["l2i"].gen_pixels)


def test_micro_batches_of_one_step_draw_independently_and_reproducibly(tiny_config) -> None:
    """With optim.grad_accum=2 the two micro-batches of a step get their own random draws (dropout, turned
    frames, RL layouts), the same ones again on a second trainer; without accumulation a step's draws are
    keyed as before (seed, rank, step)."""

    def draws(trainer: Trainer, draw: int) -> tuple:
        trainer.draw_records(draw)
        b = trainer.batcher
        return tuple(b.rng.random(4)) + tuple(b.colour_rng.random(4)) + tuple(trainer.stage.rng.random(4))

    accum = Trainer(tiny_config("cycle_rl", "optim.grad_accum=2", "data.batch_size=2"))
    again = Trainer(tiny_config("cycle_rl", "optim.grad_accum=2", "data.batch_size=2", f"run.out={accum.out}_2"))
    single = Trainer(tiny_config("cycle_rl", "data.batch_size=2", f"run.out={accum.out}_1"))
    first, second, next_step = draws(accum, 0), draws(accum, 1), draws(accum, 2)
    assert len({first, second, next_step}) == 3
    assert (first, second, next_step) == (draws(again, 0), draws(again, 1), draws(again, 2))
    assert first == draws(single, 0) and next_step == draws(single, 1)  # micro-batch 0 keeps the step's key
