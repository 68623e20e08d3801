"""Each training stage on the tiny preset: what it trains, the inputs it draws, its extra modules and
config checks (Cycle RL grounds back as the cycle check does, DJO's grounding loss reaches the generator,
the vision stage hands its classifier over, VQ code restarts and decoder maps)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from echogen_training.data.batches import centre_patch
from echogen_training.loop import Trainer
from echogen_training.stages.djo import gumbel_tau
from echogen_training.stages.vq import CodeUsage

from echogen_ros.model import layout_decoder, vision_stem, vq
from echogen_ros.model.echogen import EchoGen


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
        paired, alone = trainer.stage.ground_back(image.expand(2, -1), [alike, alike[:2]])
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
    assert "pointer" in trainer.extra_modules()
    assert centre_patch((0.0, 0.0, 0.1, 0.1), 4) == 0 and centre_patch((0.5, 0.5, 1.0, 1.0), 4) == 15
    assert centre_patch((0.25, 0.5, 0.5, 0.75), 4) == 2 * 4 + 1


def test_the_category_head_trains_on_the_grounding_frames(tiny_config) -> None:
    trainer = Trainer(tiny_config("pmtp", "pmtp.category_weight=0.5", "pmtp.tasks=[i2l]", "model.vision_only=true"))
    before = trainer.objective.categories.weight.detach().clone()
    assert not before.any()  # it starts at zero: no gradient reaches the encoder until it names something
    metrics = trainer.train_step()
    assert {"category_ce", "category_acc", "i2l_ce"} <= set(metrics) and metrics["category_ce"] > 0
    assert not torch.equal(before, trainer.objective.categories.weight)
    assert "categories" in trainer.extra_modules()
    assert Trainer(tiny_config("pmtp", "pmtp.tasks=[i2l]")).objective.categories is None  # off by default
    with pytest.raises(ValueError, match="category_weight"):
        Trainer(tiny_config("pmtp", "pmtp.category_weight=0.5", "pmtp.tasks=[l2i]"))


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
    """DJO and Cycle RL run on a model with a decoder map (and never decode through it: test_djo)."""
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


def test_the_language_model_trains_at_its_own_learning_rate(tiny_config) -> None:
    """optim.language_lr_scale: Adam's first step moves a weight by its group's rate (g / |g|), so the language
    model's weights move a quarter as far as the encoder's; at 1 the optimizer has one group, as before."""
    rates = ("optim.lr=1e-3", "optim.weight_decay=0", "optim.warmup_steps=1")
    trainer = Trainer(tiny_config("pmtp", "pmtp.tasks=[i2l]", "optim.language_lr_scale=0.25", *rates))
    assert [group["lr"] for group in trainer.optimizer.param_groups] == pytest.approx([1e-3, 2.5e-4])
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train_step()
    moved = {name: float((p.detach() - before[name]).abs().max()) for name, p in trainer.model.named_parameters()}
    language = max(step for name, step in moved.items() if ".language_model." in name)
    encoder = max(step for name, step in moved.items() if ".vision_model." in name or ".aligner." in name)
    assert language == pytest.approx(2.5e-4, rel=0.02) and encoder == pytest.approx(1e-3, rel=0.02)
    assert len(Trainer(tiny_config("pmtp", "run.out=" + str(trainer.out) + "_one")).optimizer.param_groups) == 1
    with pytest.raises(ValueError, match="language_lr_scale must be in"):
        tiny_config("pmtp", "optim.language_lr_scale=0")


def test_a_vision_stem_trains_at_its_own_learning_rate_and_is_kept(tiny_config, tmp_path: Path) -> None:
    """optim.stem_lr_scale: a stem (zero at first, so only its last convolution has a gradient on the first step)
    moves at lr × the scale, the rest of the encoder at lr; its weights are saved with the run's model."""
    model = EchoGen.create("tiny", seed=0)
    vision_stem.enable(model.model)
    init = model.save(tmp_path / "stemmed")
    rates = ("optim.lr=1e-3", "optim.weight_decay=0", "optim.warmup_steps=1", "optim.stem_lr_scale=10")
    config = tiny_config("pmtp", f"model.init={init}", "model.vision_only=true", "pmtp.tasks=[i2l]", *rates)
    trainer = Trainer(config)
    assert [group["lr"] for group in trainer.optimizer.param_groups] == pytest.approx([1e-3, 1e-2])
    stem = vision_stem.stem_of(trainer.model)
    before = stem.net[-1].weight.detach().clone()
    conv = trainer.model.model.vision_model.embeddings.patch_embedding.weight.detach().clone()
    trainer.train_step()
    assert float((stem.net[-1].weight.detach() - before).abs().max()) == pytest.approx(1e-2, rel=0.02)
    patch = trainer.model.model.vision_model.embeddings.patch_embedding.weight.detach()
    assert float((patch - conv).abs().max()) == pytest.approx(1e-3, rel=0.02)
    assert trainer.run() == 0
    final = EchoGen.load(config.run.out + "/final")
    assert vision_stem.stem_of(final.model).net[-1].weight.abs().max() > 0
    with pytest.raises(ValueError, match="stem_lr_scale must be in"):
        tiny_config("pmtp", "optim.stem_lr_scale=101")


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


@pytest.mark.parametrize("mode", ["free_running", "teacher_forced"])
def test_djo_grounding_loss_reaches_the_generator(tiny_config, mode: str) -> None:
    weights = ("djo.l2i_weight=0", "djo.i2l_weight=0", "djo.grounding_weight=1")
    config = tiny_config("djo", f"djo.mode={mode}", *weights)
    trainer = Trainer(config)
    inputs = trainer.next_inputs()
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


def test_cycle_rl_trains_each_sampled_group_for_its_epochs(tiny_config) -> None:
    """cycle_rl.epochs=2: the second step trains on the group the first sampled (same tokens, frozen old
    log-probs), its ratio is no longer 1 and the clip (ε 0.01 here) binds on some tokens; the third samples a
    new group, where nothing is clipped."""
    trainer = Trainer(tiny_config("cycle_rl", "cycle_rl.epochs=2", "optim.lr=1e-2", "cycle_rl.clip=0.01"))
    groups, draw = [], trainer.device_inputs
    trainer.device_inputs = lambda cpu: groups.append(draw(cpu)) or groups[-1]
    steps = [trainer.train_step() for _ in range(3)]
    assert groups[1]["tokens"] is groups[0]["tokens"] and groups[1]["old_logp"] is groups[0]["old_logp"]
    assert not torch.equal(groups[2]["tokens"], groups[0]["tokens"])
    assert steps[0]["ratio"] == pytest.approx(1.0, abs=1e-4) and steps[2]["ratio"] == pytest.approx(1.0, abs=1e-4)
    assert abs(steps[1]["ratio"] - 1.0) > 1e-3
    assert steps[0]["clipped"] == steps[2]["clipped"] == 0 < steps[1]["clipped"]
    assert all({"clipped", "ratio", "reward"} <= set(s) for s in steps)


def test_cycle_rl_guided_logprobs_are_the_sampled_distributions(tiny_config) -> None:
    """Through the tiny model: guidance 1 at temperature 1 gives the conditional log-probs (the ablation's),
    guidance 0 the unconditional prompt's; the default guidance differs from both."""
    from echogen_training.stages.cycle_rl import sampled_logprobs

    trainer = Trainer(tiny_config("cycle_rl"))
    layout = [(trainer.batcher.text("cup"), (0.1, 0.1, 0.4, 0.5))]
    cond, uncond = trainer.batcher.layout_prompts([layout], ["a cup"])
    codes = trainer.model.config.vq_config.num_embeddings
    tokens = torch.randint(0, codes, (1, trainer.echogen.scheme.generation_tokens), generator=torch.Generator())
    c, model = trainer.config.cycle_rl, trainer.model.eval()
    with torch.no_grad():
        plain = sampled_logprobs(model, cond, uncond, tokens, replace(c, guided_logprobs=False))
        unguided = sampled_logprobs(model, cond, uncond, tokens, replace(c, guidance=1.0, temperature=1.0))
        empty = sampled_logprobs(model, uncond, uncond, tokens, replace(c, guided_logprobs=False))
        zero = sampled_logprobs(model, cond, uncond, tokens, replace(c, guidance=0.0, temperature=1.0))
        guided = sampled_logprobs(model, cond, uncond, tokens, c)
    torch.testing.assert_close(unguided, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(zero, empty, atol=1e-5, rtol=1e-5)
    assert (guided - plain).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("extra", "message"), [("cycle_rl.epochs=0", "epochs"), ("cycle_rl.temperature=0", "greedily")]
)
def test_cycle_rl_refuses_settings_without_a_policy_step(tiny_config, extra: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config("cycle_rl", extra)


def test_cycle_rl_keeps_a_group_per_micro_batch(tiny_config) -> None:
    """With optim.grad_accum=2 each micro-batch samples its own group and trains on it again next step."""
    trainer = Trainer(tiny_config("cycle_rl", "optim.grad_accum=2", "data.batch_size=2"))
    groups, draw = [], trainer.device_inputs
    trainer.device_inputs = lambda cpu: groups.append(draw(cpu)) or groups[-1]
    trainer.train_step(), trainer.train_step()
    assert groups[2]["tokens"] is groups[0]["tokens"] and groups[3]["tokens"] is groups[1]["tokens"]
    assert groups[0]["tokens"] is not groups[1]["tokens"]
