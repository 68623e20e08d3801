"""The training loop on the tiny preset: every stage runs, DJO's grounding loss reaches the generator,
resume is exact, a non-finite loss keeps the last good checkpoint, and torchrun (gloo) DDP works."""

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
from echogen_training.data.batches import centre_patch
from echogen_training.data.sources import build_stream
from echogen_training.logger import Logger
from echogen_training.loop import BUDGET_REFITS, BUDGET_RESERVE, NON_FINITE_EXIT, Trainer
from echogen_training.objectives import CodeUsage, gumbel_tau

from echogen_ros.model import layout_decoder, vq
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


def test_the_rl_reward_grounds_alike_objects_as_a_pair(tiny_config) -> None:
    """Cycle RL grounds back as the cycle check does: a label the layout names twice gets its two best
    distinct boxes, one each; a label named once gets its greedy box."""
    trainer = Trainer(tiny_config("cycle_rl"))
    cup, plate = trainer.batcher.text("cup"), trainer.batcher.text("plate")
    alike = [(cup, (0.05, 0.1, 0.3, 0.4)), (plate, (0.4, 0.5, 0.9, 0.8)), (cup, (0.6, 0.1, 0.9, 0.4))]
    codes = trainer.model.config.vq_config.num_embeddings
    seeded = torch.Generator().manual_seed(0)
    image = torch.randint(0, codes, (1, trainer.echogen.scheme.generation_tokens), generator=seeded)
    trainer.model.eval()
    with torch.no_grad():  # one imagined image, grounded back for the layout and for a layout naming each once
        paired, alone = trainer._ground_back(image.expand(2, -1), [alike, alike[:2]])
    assert paired[0] != paired[2]  # two cups, two boxes
    assert paired[1] == pytest.approx(alone[1], abs=1e-4)  # the plate: its greedy box
    assert min(max(abs(a - b) for a, b in zip(alone[0], paired[i])) for i in (0, 2)) < 1e-3  # best cup: greedy's


def test_vision_targets_put_each_object_in_its_centre_patch(tiny_config) -> None:
    trainer = Trainer(tiny_config("vision"))
    record = trainer.stream.take(1)[0]
    grid = trainer.echogen.vision_size // trainer.model.config.vision_config.patch_size
    batch = trainer.batcher.patches([record], grid, trainer.model.config.text_config.vocab_size)
    assert batch.pixels.shape[0] == 1 and batch.words.shape[:2] == (1, grid * grid)
    cells = batch.present[0].nonzero().flatten().tolist()
    assert 1 <= len(cells) <= len(record.objects)
    labels = [set(trainer.batcher.text(label)) for label, _ in record.objects]
    for cell in cells:
        x1, y1, x2, y2 = batch.boxes[0, cell].tolist()
        assert int((x1 + x2) / 2 * grid) + grid * int((y1 + y2) / 2 * grid) == cell
        assert set(batch.words[0, cell].nonzero().flatten().tolist()) in labels  # exactly one object's words
    assert batch.words[0, [c for c in range(grid * grid) if c not in cells]].sum() == 0


def test_pointer_loss_picks_the_target_patch(tiny_config) -> None:
    trainer = Trainer(tiny_config("pmtp", "pmtp.pointer_weight=1.0", "pmtp.tasks=[i2l]"))
    before = trainer.objective.pointer.weight.detach().clone()
    metrics = trainer.train_step()
    assert {"pointer_ce", "pointer_acc", "i2l_ce"} <= set(metrics) and "l2i_ce" not in metrics
    assert not torch.equal(before, trainer.objective.pointer.weight)
    assert "pointer" in trainer._extra_modules()
    assert centre_patch((0.0, 0.0, 0.1, 0.1), 4) == 0 and centre_patch((0.5, 0.5, 1.0, 1.0), 4) == 15
    assert centre_patch((0.25, 0.5, 0.5, 0.75), 4) == 2 * 4 + 1


def test_a_frozen_vision_tower_stays_fixed(tiny_config) -> None:
    trainer = Trainer(tiny_config("pmtp", "model.freeze_vision=true"))
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.train_step()
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and not {k for k in changed if ".vision_model." in k or ".aligner." in k}


def test_naive_joint_schedule_alternates_tasks(tiny_config) -> None:
    trainer = Trainer(tiny_config("pmtp", "pmtp.schedule=alternate"))
    first, second = trainer.train_step(), trainer.train_step()
    assert "l2i_ce" in first and "i2l_ce" not in first
    assert "i2l_ce" in second and "l2i_ce" not in second
    with pytest.raises(ValueError, match="schedule"):
        Trainer(tiny_config("pmtp", "pmtp.schedule=sometimes"))


def test_vision_stage_hands_its_word_classifier_to_the_embeddings(tiny_config) -> None:
    trainer = Trainer(tiny_config("vision"))
    assert trainer.run() == 0
    model = EchoGen.load(Path(trainer.config.run.out) / "final")
    scheme, words = model.scheme, trainer.objective.word_ids
    assert words and not set(words) & set(scheme.special.values())
    assert not set(words) & set(range(scheme.bin_offset, scheme.bin_offset + scheme.bins))
    embeddings = model.model.get_input_embeddings().weight.detach()
    classifier = trainer.objective.words.weight.detach()
    cosine = torch.nn.functional.cosine_similarity(embeddings[words], classifier[words], dim=1)
    assert torch.allclose(cosine, torch.ones_like(cosine), atol=1e-4)
    bins = slice(scheme.bin_offset, scheme.bin_offset + scheme.bins)
    assert torch.equal(embeddings[bins], EchoGen.create("tiny", seed=0).model.get_input_embeddings().weight[bins])
    pixels = trainer.batcher.patches(trainer.stream.take(4), 4, embeddings.shape[0]).pixels
    with torch.no_grad():  # image features now have the word embeddings' norm
        norm = model.model.model.get_image_features(pixels).pooler_output.norm(dim=-1).mean()
    assert float(norm) == pytest.approx(float(embeddings[words].norm(dim=-1).mean()), rel=0.25)


def test_dead_codes_are_reseeded_from_batch_latents() -> None:
    usage = CodeUsage(codes=8, every=2)
    codebook = torch.zeros(8, 4)
    latent = torch.nn.functional.normalize(torch.randn(2, 4, 3, 3), dim=1)
    usage.observe(torch.tensor([[0, 1, 1]]), latent)
    assert usage.restart(codebook, step=0) == 0 and usage.hits.sum() == 3  # mid-window: nothing happens
    usage.observe(torch.tensor([[2, 2, 2]]), latent)
    assert usage.restart(codebook, step=1) == 5  # codes 3…7 were never picked
    assert torch.equal(codebook[:3], torch.zeros(3, 4)) and (codebook[3:].norm(dim=1) > 0.9).all()
    flat = latent.permute(0, 2, 3, 1).reshape(-1, 4)
    assert all((flat - row).norm(dim=1).min() < 0.1 for row in codebook[3:])  # near a batch latent
    assert usage.hits.sum() == 0


def test_decoder_only_vq_training_keeps_every_code(tiny_config) -> None:
    """The decoder learns; the encoder and codebook do not, so a generator's tokens keep their meaning."""
    config = tiny_config("vq", "vq.decoder_only=true", "optim.lr=1e-2")
    before = {k: v.clone() for k, v in EchoGen.create("tiny", seed=0).model.model.vqmodel.state_dict().items()}
    pixels = torch.rand(2, 3, 32, 32) * 2 - 1
    tokens = vq.encode_tokens(EchoGen.create("tiny", seed=0).model.model.vqmodel, pixels)
    assert Trainer(config).run() == 0
    vqmodel = EchoGen.load(Path(config.run.out) / "final").model.model.vqmodel
    changed = {k.split(".")[0] for k, v in vqmodel.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"decoder", "post_quant_conv"}
    assert torch.equal(vq.encode_tokens(vqmodel, pixels), tokens)


def test_a_decoder_map_learns_from_the_frames_layouts_with_every_code_kept(tiny_config) -> None:
    """`model.decoder_map=true` on a decoder-only VQ stage: the map (zero at the start) and the decoder learn
    from world frames and their layouts, the encoder and codebook stay, and the model it writes keeps the map."""
    config = tiny_config("vq", "vq.decoder_only=true", "optim.lr=1e-2", "model.decoder_map=true")
    before = {k: v.clone() for k, v in EchoGen.create("tiny", seed=0).model.model.vqmodel.state_dict().items()}
    assert Trainer(config).run() == 0
    model = EchoGen.load(Path(config.run.out) / "final")
    vqmodel = model.model.model.vqmodel
    changed = {
        k.split(".")[0] for k, v in vqmodel.state_dict().items() if k not in before or not torch.equal(v, before[k])
    }
    assert changed == {"decoder", "post_quant_conv", "decoder_map"}
    assert all(p.abs().sum() > 0 for p in vqmodel.decoder_map.parameters())
    assert model.model.config.decoder_map["channels"] == layout_decoder.conditioned_inputs(vqmodel)


@pytest.mark.parametrize("stage", ["djo", "cycle_rl"])
def test_stages_that_decode_imagined_scenes_run_with_a_decoder_map(tiny_config, stage: str) -> None:
    """DJO decodes its soft tokens and Cycle RL its sampled ones with the layout they were asked for."""
    config = tiny_config(stage, "model.decoder_map=true", "model.layout_map=true")
    assert Trainer(config).run() == 0
    assert EchoGen.load(Path(config.run.out) / "final").model.model.vqmodel.decoder_map is not None


def test_decoder_only_refuses_codebook_restarts(tiny_config) -> None:
    with pytest.raises(ValueError, match="vq.decoder_only"):
        tiny_config("vq", "vq.decoder_only=true", "vq.restart_every=5")


def _trained_modules(config) -> set[str]:
    """The Janus submodules whose weights a run of `config` from the tiny preset (seed 0) changed."""
    before = {k: v.clone() for k, v in EchoGen.create("tiny", seed=0).model.state_dict().items()}
    assert Trainer(config).run() == 0
    after = EchoGen.load(Path(config.run.out) / "final").model.state_dict()
    return {k.split(".")[1] for k, v in after.items() if not torch.equal(v, before[k])}


def test_generation_only_trains_the_generation_path_alone(tiny_config) -> None:
    """What a transplanted tokenizer's codes are learned with: grounding's weights and the VQ stay as they were."""
    config = tiny_config("pmtp", "model.generation_only=true", "pmtp.tasks=[l2i]", "optim.lr=1e-2")
    assert _trained_modules(config) == {"generation_embeddings", "generation_aligner", "generation_head"}


@pytest.mark.parametrize(
    ("stage", "extra", "message"),
    [("vq", [], "does not use"), ("vision", [], "does not use"), ("pmtp", ["pmtp.tasks=[i2l]"], "l2i task")],
)
def test_generation_only_is_refused_where_nothing_would_train(
    tiny_config, stage: str, extra: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config(stage, "model.generation_only=true", *extra)


def test_vision_only_trains_the_encoder_alone(tiny_config) -> None:
    """Grounding teaches the encoder while the language model and everything that generates stay as they were."""
    config = tiny_config("pmtp", "model.vision_only=true", "pmtp.tasks=[i2l]", "optim.lr=1e-2")
    assert _trained_modules(config) == {"vision_model", "aligner"}


@pytest.mark.parametrize(
    ("stage", "extra", "message"),
    [
        ("vision", [], "pmtp stage"),
        ("djo", [], "pmtp stage"),
        ("pmtp", [], "pmtp.tasks=\\[i2l\\]"),
        ("pmtp", ["pmtp.tasks=[i2l]", "model.freeze_vision=true"], "nothing to train"),
        ("pmtp", ["pmtp.tasks=[i2l]", "model.generation_only=true"], "l2i task"),
    ],
)
def test_vision_only_is_refused_where_it_cannot_mean_what_it_says(
    tiny_config, stage: str, extra: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config(stage, "model.vision_only=true", *extra)


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


def test_djo_grounding_loss_reaches_the_generator(tiny_config) -> None:
    config = tiny_config("djo", "djo.l2i_weight=0", "djo.i2l_weight=0", "djo.grounding_weight=1")
    trainer = Trainer(config)
    inputs = trainer._inputs()
    loss, metrics = trainer.wrapped(**inputs)
    loss.backward()
    head = trainer.model.model.generation_head.vision_head.weight.grad
    embeddings = trainer.model.model.generation_embeddings.weight.grad
    assert metrics["djo_ground_ce"] > 0 and head is not None and head.abs().sum() > 0
    assert embeddings is not None and embeddings.abs().sum() > 0
    assert all(p.grad is None for p in trainer.model.model.vqmodel.parameters())  # tokenizer frozen


def test_gumbel_temperature_schedules(tiny_config) -> None:
    config = tiny_config("djo").djo
    for schedule in ("cosine", "linear", "exponential"):
        config.tau_schedule = schedule
        assert gumbel_tau(0, 100, config) == pytest.approx(config.tau_start)
        assert gumbel_tau(100, 100, config) == pytest.approx(config.tau_end)
        assert config.tau_end < gumbel_tau(50, 100, config) < config.tau_start


@pytest.mark.parametrize(
    ("stage", "extra"), [("pmtp", ()), ("pmtp", ("pmtp.pointer_weight=1.0",)), ("vq", ("vq.restart_every=3",))]
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
    assert trainer.step == 1 and trainer._loader is not None
    assert trainer.run() == 0
    a = EchoGen.load(tmp_path / "inline" / "final").model.state_dict()
    b = EchoGen.load(tmp_path / "workers" / "final").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_time_budget_fits_the_schedule_and_resume_keeps_it(tiny_config, tmp_path: Path) -> None:
    budget = ("optim.max_steps=100000", "optim.warmup_steps=2", "run.save_every=1000", f"run.out={tmp_path / 'b'}")
    config = tiny_config("pmtp", *budget, "run.time_budget_s=60", "run.stop_after=30")
    trainer = Trainer(config)
    assert trainer.run() == 0
    fitted = config.optim.max_steps
    assert 30 < fitted < 100000  # fitted after 25 steps to the rate, capped by the configured maximum
    saved = json.loads(next((tmp_path / "b" / "checkpoints").glob("step_*/trainer.json")).read_text())
    assert saved["budget_fitted"] and saved["config"]["optim"]["max_steps"] == fitted
    resumed = Trainer(tiny_config("pmtp", *budget, "run.time_budget_s=600", "run.stop_after=1"))
    assert resumed.config.optim.max_steps == fitted and resumed.scheduler.get_last_lr()[0] > 0
    capped = tiny_config("pmtp", *budget[:-1], f"run.out={tmp_path / 'c'}", "run.time_budget_s=0.5")
    assert Trainer(capped).run() == 0  # a budget spent before the fit still ends with a final model
    assert capped.optim.max_steps < 100000 and (tmp_path / "c" / "final" / "echogen.json").is_file()


def test_time_budget_is_fitted_again_when_the_step_rate_changes(tiny_config, tmp_path: Path) -> None:
    # the fit after warm-up sees start-up slowness (0.5 s per step here); the refits at BUDGET_REFITS of
    # the budget (25 and 50 s) use the mean rate since step 5, when steps have become faster (0.1 s, then 0.2)
    config = tiny_config("pmtp", "optim.max_steps=100000", "optim.warmup_steps=2", "run.time_budget_s=100",
                         f"run.out={tmp_path}")  # fmt: skip
    trainer = Trainer(config)
    logger = Logger(tmp_path, False, config.optim.max_steps, 0, False)
    usable, clock, fits = 100 * (1 - BUDGET_RESERVE), 0.0, []

    def advance(steps: int, seconds_per_step: float) -> None:
        nonlocal clock
        for _ in range(steps):
            trainer.step += 1
            clock = round(clock + seconds_per_step, 6)
            trainer._fit_budget(clock, logger)
            if trainer._fitted and (not fits or fits[-1][1] != config.optim.max_steps):
                fits.append((trainer.step, config.optim.max_steps))

    assert BUDGET_REFITS == (0.25, 0.5)
    advance(25, 0.5)  # the first fit, at step 25 (12.5 s)
    advance(125, 0.1)  # to 25 s, step 150: refit
    advance(150, 0.2)  # to 55 s; refit at 50 s, step 275
    expected = [(step, step + int((usable - at) / ((at - 2.5) / (step - 5))))  # 2.5 s: step 5
                for step, at in ((25, 12.5), (150, 25.0), (275, 50.0))]  # fmt: skip
    assert expected[0][1] < expected[1][1]  # faster steps: a longer schedule
    assert [(s, m) for s, m in fits] == expected and trainer._refits == ()
    advance(100, 0.01)  # faster again: no refit after the last one, the schedule's end stays put
    assert config.optim.max_steps == expected[-1][1]
    advance(1, 50.0)  # past the budget: stop at this step
    assert config.optim.max_steps == trainer.step

    # a first fit that comes late (slow warm-up, past a quarter of the budget) drops the refit points passed,
    # and a refit waits for enough steps to measure a rate
    config = tiny_config("pmtp", "optim.max_steps=100000", "optim.warmup_steps=2", "run.time_budget_s=100",
                         f"run.out={tmp_path / 'late'}")  # fmt: skip
    trainer, clock, fits = Trainer(config), 0.0, []
    advance(25, 1.2)  # first fit at 30 s: the 25 % refit point has passed
    assert fits == [(25, 25 + int((usable - 30) / 1.2))] and trainer._refits == (0.5,)
    advance(17, 1.2)  # 50.4 s, but 17 steps since the fit: not yet
    assert len(fits) == 1
    advance(8, 0.1)  # 25 steps since the fit: refit at the mean rate since step 5 (6 s)
    assert fits[-1] == (50, 50 + int((usable - 51.2) / ((51.2 - 6) / 45)))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_config) -> None:
    config = tiny_config("pmtp", "optim.max_steps=50", "run.save_every=1", "optim.lr=1.0e30",
                         "optim.warmup_steps=1", "optim.grad_clip=1.0e30")  # fmt: skip
    assert Trainer(config).run() == NON_FINITE_EXIT
    latest = Path(config.run.out) / "checkpoints" / "latest"
    good = Path(config.run.out) / "checkpoints" / latest.read_text().strip()
    model = EchoGen.load(good / "model")  # the kept checkpoint loads and is finite
    assert all(torch.isfinite(v).all() for v in model.model.state_dict().values())


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
    from echogen_training.loop import _pack_pixels, _pixels_to

    frames = [torch.randint(0, 256, (16, 16, 3), dtype=torch.uint8).numpy() for _ in range(3)]
    pixels = to_pixels(frames)
    packed = _pack_pixels({"pixels": pixels.clone()})["pixels"]
    assert packed.dtype == torch.uint8 and torch.equal(_pixels_to(packed, "cpu"), pixels)
    trainer = Trainer(tiny_config("pmtp"))
    cpu = trainer.cpu_inputs(0)
    packed_batches = _pack_pixels(copy.deepcopy(cpu))
    assert packed_batches["i2l"].pixels.dtype == packed_batches["l2i"].gen_pixels.dtype == torch.uint8
    moved = trainer._device_inputs(packed_batches)
    assert torch.equal(moved["i2l"].pixels, cpu["i2l"].pixels)
    assert torch.equal(moved["l2i"].gen_pixels, cpu["l2i"].gen_pixels)


@pytest.mark.parametrize(("positions", "layout_map"), [(False, False), (True, False), (False, True), (True, True)])
def test_teacher_forced_logits_match_generation(positions: bool, layout_map: bool) -> None:
    """Training (l2i_logits) and inference (generate_image_tokens) must feed the model the same inputs:
    greedy tokens decoded without guidance are the argmax of the teacher-forced logits on themselves,
    with and without image-token positions and the layout map (each must change what the model sees)."""
    from echogen_training.data.batches import left_pad
    from echogen_training.forward import l2i_logits

    from echogen_ros.model import generation

    model = EchoGen.create("tiny", seed=0)
    janus = model.model.eval()
    if positions:
        generation.enable_image_positions(janus, model.scheme)
        assert generation.image_positions(janus).shape == (
            model.scheme.image_tokens,
            janus.config.text_config.hidden_size,
        )
    if layout_map:
        generation.enable_layout_map(janus, model.scheme)
    cup, plate = model.tokenizer.token_to_id("cup"), model.tokenizer.token_to_id("plate")
    cond, _ = model.scheme.l2i_prompt([], [([cup], (0.1, 0.2, 0.5, 0.6)), ([plate], (0.6, 0.1, 0.9, 0.4))])
    short, _ = model.scheme.l2i_prompt([], [([plate], (0.6, 0.1, 0.9, 0.4))])
    seq = left_pad([cond, short], model.scheme.pad)  # two rows: left padding is exercised
    with torch.no_grad():
        tokens = generation.generate_image_tokens(
            janus, seq.ids, seq.ids, model.scheme.image_tokens, 0.0, 0.0, torch.Generator(), mask=seq.mask
        )
        logits = l2i_logits(janus, seq, tokens)
    assert torch.equal(logits.argmax(-1), tokens)
    plain = EchoGen.create("tiny", seed=0).model.eval()
    with torch.no_grad():
        changed = not torch.allclose(l2i_logits(plain, seq, tokens), logits)
    assert changed == (positions or layout_map)


@pytest.mark.parametrize(
    "override",
    [
        "data.workers=-1",
        "data.prefetch=0",
        "run.time_budget_s=-5",
        "vision.decolour=1.5",
        "vision.recolour=-0.1",
        "pmtp.recolour=2",
        "pmtp.desaturate=-1",
        "pmtp.tokenized=1.5",
    ],
)
def test_bad_worker_and_budget_settings_are_refused(tiny_config, override: str) -> None:
    with pytest.raises(ValueError, match=override.split("=")[0]):
        Trainer(tiny_config("pmtp", override))


def test_micro_batches_of_one_step_draw_independently_and_reproducibly(tiny_config) -> None:
    """With optim.grad_accum=2 the two micro-batches of a step get their own random draws (dropout, turned
    frames, RL layouts), the same ones again on a second trainer; without accumulation a step's draws are
    keyed as before (seed, rank, step)."""

    def draws(trainer: Trainer, draw: int) -> tuple:
        trainer._draw_records(draw)
        b = trainer.batcher
        return tuple(b.rng.random(4)) + tuple(b.colour_rng.random(4)) + tuple(trainer.rl_rng.random(4))

    accum = Trainer(tiny_config("pmtp", "optim.grad_accum=2", "data.batch_size=2"))
    again = Trainer(tiny_config("pmtp", "optim.grad_accum=2", "data.batch_size=2", f"run.out={accum.out}_2"))
    single = Trainer(tiny_config("pmtp", "data.batch_size=2", f"run.out={accum.out}_1"))
    first, second, next_step = draws(accum, 0), draws(accum, 1), draws(accum, 2)
    assert len({first, second, next_step}) == 3
    assert (first, second, next_step) == (draws(again, 0), draws(again, 1), draws(again, 2))
    assert first == draws(single, 0) and next_step == draws(single, 1)  # micro-batch 0 keeps the step's key


@pytest.mark.parametrize("decoder_map", [False, True])
def test_pmtp_tokenized_marks_every_grounding_frame_and_trains(tiny_config, decoder_map: bool) -> None:
    """pmtp.tokenized=1: every I2L frame is marked for the tokenizer round trip, with its layout (which a
    decoder map reads), and the run trains through it."""
    trainer = Trainer(tiny_config("pmtp", "pmtp.tokenized=1.0", f"model.decoder_map={str(decoder_map).lower()}"))
    i2l = trainer.cpu_inputs(0)["i2l"]
    assert i2l.tokenized is not None and bool(i2l.tokenized.all())
    assert len(i2l.layouts) == len(i2l.pixels) and all(i2l.layouts)
    assert trainer.run() == 0


def test_grey_and_turned_frames_together_cannot_exceed_one(tiny_config) -> None:
    with pytest.raises(ValueError, match="decolour \\+ vision.recolour"):
        Trainer(tiny_config("vision", "vision.decolour=0.6", "vision.recolour=0.6"))
    with pytest.raises(ValueError, match="recolour \\+ pmtp.desaturate"):
        Trainer(tiny_config("pmtp", "pmtp.recolour=0.6", "pmtp.desaturate=0.6"))


@pytest.mark.parametrize("stage", ["pmtp", "djo"])
def test_pmtp_recolour_turns_grounding_frames_in_pmtp_only_and_draws_the_same_expressions(
    tiny_config, stage: str
) -> None:
    """pmtp.recolour reaches the PMTP input batches (some grounding frames change, the expressions drawn do
    not), and DJO's inputs are the same with or without it."""
    data = ["data.count=64", "data.batch_size=16"]
    plain = Trainer(tiny_config(stage, *data)).cpu_inputs(0)["i2l"]
    for option in ("pmtp.recolour=1.0", "pmtp.desaturate=1.0"):
        turned = Trainer(tiny_config(stage, *data, option)).cpu_inputs(0)["i2l"]
        assert torch.equal(plain.seq.ids, turned.seq.ids)
        changed = sum(not torch.equal(a, b) for a, b in zip(plain.pixels, turned.pixels))
        assert (changed > 0) == (stage == "pmtp")
