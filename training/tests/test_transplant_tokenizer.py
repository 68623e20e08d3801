"""`echogen-train transplant-tokenizer` (echogen_training.tools.transplant_tokenizer): the donor's VQ tokenizer
(a finer grid) and the code-facing ends of the generation path replace the model's; grounding is untouched and
the model imagines on the new grid."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from echogen_training.cli import main as echogen_train
from echogen_training.tools import transplant_tokenizer

from echogen_ros.model import generation
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.model.presets import PRESETS
from echogen_ros.model.tokenizer import build_word_tokenizer
from echogen_ros.model.vq import encode_tokens
from echogen_ros.world.dataset import world_sample

LAYOUT = Layout(64, 48, (LayoutObject("red cup", (4.0, 6.0, 30.0, 40.0)), LayoutObject("plate", (34, 10, 60, 44))))


@pytest.fixture
def fine(monkeypatch: pytest.MonkeyPatch) -> None:
    """tiny-fine: the tiny preset with one downsampling less in its VQ (32 px → 8 × 8 codes, the encoder's 4 × 4)."""
    monkeypatch.setitem(PRESETS, "tiny-fine", replace(PRESETS["tiny"], vq_multipliers=(1, 1, 1)))


def run(args: list[str]) -> int:
    return echogen_train(["transplant-tokenizer", *args])


def ship(args: list[str]) -> int:
    return echogen_train(["ship", *args])


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_transplant_gives_the_donors_grid_and_keeps_grounding(fine, capsys, tmp_path: Path) -> None:
    model = EchoGen.create("tiny", seed=0)
    generation.enable_layout_map(model.model, model.scheme)
    generation.enable_image_positions(model.model, model.scheme)
    model_dir = model.save(tmp_path / "model")
    donor_dir = EchoGen.create("tiny-fine", seed=1).save(tmp_path / "donor")
    assert run([str(model_dir), str(donor_dir), "--out", str(tmp_path / "out")]) == 0
    assert "16 → 64 image tokens" in capsys.readouterr().out
    model, donor, out = EchoGen.load(model_dir), EchoGen.load(donor_dir), EchoGen.load(tmp_path / "out")

    mine, theirs, new = model.model.model, donor.model.model, out.model.model
    for part in ("vision_model", "aligner", "language_model", "generation_aligner"):
        assert _same(_state(getattr(new, part)), _state(getattr(mine, part))), part
    assert _same(_state(new.generation_head.proj_out), _state(mine.generation_head.proj_out))
    for part in ("vqmodel", "generation_embeddings"):
        assert _same(_state(getattr(new, part)), _state(getattr(theirs, part))), part
    assert _same(_state(new.generation_head.vision_head), _state(theirs.generation_head.vision_head))

    assert (out.scheme.image_tokens, out.scheme.generation_tokens) == (16, 64)
    assert out.model.config.layout_map["grid"] == 8 and out.model.config.image_positions["grid"] == 8
    assert out.manifest["preset"] == "tiny-fine"  # a tiny model with tiny-fine's tokenizer has its shapes
    sample = world_sample(7, 0, "heldout")
    expressions = [e.text for e in sample.expressions]
    assert [d.box for d in out.ground_many(sample.image(), expressions)] == [
        d.box for d in model.ground_many(sample.image(), expressions)
    ]
    assert out.imagine(LAYOUT, seed=0).shape == (48, 64, 3)
    cup = out.tokenizer.encode("cup", add_special_tokens=False).ids
    prompt, _ = out.scheme.l2i_prompt([], [(cup, (0.0, 0.0, 0.45, 0.45))])
    cells = generation.layout_map(out.model, torch.tensor([prompt]))[0].abs().sum(-1) > 0  # (64,): cells it covers
    assert cells.view(8, 8)[:4, :4].all() and not cells.view(8, 8)[4:].any()  # the top-left quarter of 8 × 8

    recorded = out.manifest["training"]["tokenizer_transplant"]
    assert recorded["donor"] == str(donor_dir.resolve()) and recorded["model_files"] == model.manifest["files"]
    assert recorded["before"]["generation_tokens"] == 16 and recorded["after"]["generation_tokens"] == 64
    assert json.loads((tmp_path / "out" / "tokenizer_transplant.json").read_text()) == recorded
    assert out.manifest["metrics"] == {}


def test_a_transplanted_model_trains_and_ships_with_its_record(fine, tiny_config, tmp_path: Path) -> None:
    from echogen_training.loop import Trainer

    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    donor_dir = EchoGen.create("tiny-fine", seed=1).save(tmp_path / "donor")
    assert run([str(model_dir), str(donor_dir), "--out", str(tmp_path / "tx")]) == 0
    more = tiny_config("pmtp", f"model.init={tmp_path / 'tx'}", f"run.out={tmp_path / 'more'}")
    assert Trainer(more).run() == 0
    trained = EchoGen.load(tmp_path / "more" / "final")
    assert trained.scheme.generation_tokens == 64 and trained.imagine(LAYOUT, seed=1).shape == (48, 64, 3)
    args = [str(tmp_path / "more" / "final"), "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "ship")]
    assert ship([*args, "--continuation", str(tmp_path / "tx"), "--continuation", str(tmp_path / "more")]) == 0
    training = json.loads((tmp_path / "ship" / "echogen.json").read_text())["training"]
    swapped, continued = training["continuations"]
    assert "tokenizer_transplant" not in training  # recorded once, where it happened
    assert swapped["stage"] == "tokenizer_transplant" and swapped["after"]["generation_tokens"] == 64
    assert continued["stage"] == "pmtp" and continued["steps"] == 3


def test_a_donor_with_another_vocabulary_is_refused(tmp_path: Path) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    donor = EchoGen.create("tiny", seed=1, bins=16)
    assert donor.tokenizer.get_vocab() != build_word_tokenizer(PRESETS["tiny"].bins).get_vocab()
    donor_dir = donor.save(tmp_path / "donor")
    with pytest.raises(ValueError, match="vocabulary"):
        transplant_tokenizer.transplant(EchoGen.load(model_dir), EchoGen.load(donor_dir))
    assert run([str(model_dir), str(donor_dir), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
@pytest.mark.parametrize("out", ["MODEL", "DONOR", "EXISTING"])
def test_an_out_that_holds_a_model_is_refused(tmp_path: Path, out: str, overwrite: list[str]) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    donor_dir = EchoGen.create("tiny", seed=1).save(tmp_path / "donor")
    existing = EchoGen.create("tiny", seed=2).save(tmp_path / "existing")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in existing.iterdir())
    target = {"MODEL": model_dir, "DONOR": donor_dir, "EXISTING": existing}[out]
    assert run([str(model_dir), str(donor_dir), "--out", str(target), *overwrite]) == 2
    assert sorted((p.name, p.stat().st_mtime_ns) for p in existing.iterdir()) == before
    assert np.isfinite(EchoGen.load(target).model.lm_head.weight.detach().numpy()).all()


def test_a_model_read_at_another_image_size_is_its_own_donor(tiny_config, tmp_path: Path) -> None:
    # tiny: 32 px images, a VQ downsampling by 8 (4 × 4 codes); read at 64 px the same weights write 8 × 8
    model = EchoGen.create("tiny", seed=0)
    generation.enable_layout_map(model.model, model.scheme)
    model_dir = model.save(tmp_path / "model")
    assert run([str(model_dir), str(model_dir), "--out", str(tmp_path / "big"), "--image-size", "64"]) == 0
    model, big = EchoGen.load(model_dir), EchoGen.load(tmp_path / "big")
    assert _same(_state(big.model), _state(model.model))  # not one weight changes
    assert (big.image_size, big.scheme.generation_tokens, big.scheme.image_tokens) == (64, 64, 16)
    assert big.manifest["preset"] == "tiny at 64 px" and big.model.config.layout_map["grid"] == 8
    # the longest prompt keeps its room beside the 48 more image tokens
    assert big.model.config.text_config.max_position_embeddings == PRESETS["tiny"].max_positions + 48
    vqmodel = big.model.model.vqmodel
    tokens = encode_tokens(vqmodel, torch.zeros(1, 3, 64, 64))
    assert tokens.shape == (1, 64) and generation.decode_image(big.model, tokens).shape == (1, 64, 64, 3)
    assert vqmodel.quantize.quant_state_dims == [8, 8]
    assert big.imagine(LAYOUT, seed=0).shape == (48, 64, 3)

    # the VQ stage then trains at the new size, and the generator after it
    for stage, init in (("vq", tmp_path / "big"), ("pmtp", tmp_path / "vq" / "final")):
        from echogen_training.loop import Trainer

        assert Trainer(tiny_config(stage, f"model.init={init}")).run() == 0
    trained = EchoGen.load(tmp_path / "pmtp" / "final")
    assert (trained.image_size, trained.scheme.generation_tokens) == (64, 64)
    assert trained.imagine(LAYOUT, seed=1).shape == (48, 64, 3)


@pytest.mark.parametrize("size", ["60", "4", "0"])
def test_an_image_size_the_vq_cannot_write_is_refused(capsys, tmp_path: Path, size: str) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    args = [str(model_dir), str(model_dir), "--out", str(tmp_path / "out"), "--image-size", size]
    assert run(args) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("echogen-train: error: ") and "multiple of the donor VQ's downsampling, 8" in line
    assert not (tmp_path / "out").exists()


def test_a_deepened_tokenizer_draws_the_same_until_its_decoder_trains(tiny_config, tmp_path: Path) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert run([str(model_dir), str(model_dir), "--out", str(tmp_path / "deep"), "--res-blocks", "3"]) == 0
    model, deep = EchoGen.load(model_dir), EchoGen.load(tmp_path / "deep")
    mine, new = model.model.model, deep.model.model
    for part in ("vision_model", "aligner", "language_model", "generation_embeddings", "generation_head"):
        assert _same(_state(getattr(new, part)), _state(getattr(mine, part))), part
    assert new.vqmodel.config.num_res_blocks == 3 and len(new.vqmodel.decoder.up[0].block) == 4
    assert len(new.vqmodel.encoder.down[-1].attn) == 3  # the lowest resolution's attention comes with its blocks
    assert deep.manifest["preset"] == "tiny, 3 VQ residual blocks"
    record = deep.manifest["training"]["tokenizer_transplant"]
    assert (record["before"]["vq_res_blocks"], record["after"]["vq_res_blocks"]) == (1, 3)

    # the added blocks start as identities: the same codes, the same pixels, the same imagined scene
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    codes = encode_tokens(mine.vqmodel, pixels)
    assert torch.equal(encode_tokens(new.vqmodel, pixels), codes)
    assert torch.equal(generation.decode_image(deep.model, codes), generation.decode_image(model.model, codes))
    assert np.array_equal(deep.imagine(LAYOUT, seed=0), model.imagine(LAYOUT, seed=0))

    # the decoder alone trains: the added blocks learn, the codes keep their meaning
    from echogen_training.loop import Trainer

    config = tiny_config("vq", f"model.init={tmp_path / 'deep'}", "vq.decoder_only=true", "vq.restart_every=0")
    assert Trainer(config).run() == 0
    trained = EchoGen.load(tmp_path / "vq" / "final").model.model.vqmodel
    assert torch.equal(encode_tokens(trained, pixels), codes)
    assert trained.decoder.up[0].block[3].conv2.weight.abs().sum() > 0
    assert not torch.equal(trained.decoder(trained.post_quant_conv(torch.ones(1, 8, 4, 4))),
                           new.vqmodel.decoder(new.vqmodel.post_quant_conv(torch.ones(1, 8, 4, 4))))  # fmt: skip


def test_a_deepened_tokenizer_takes_its_presets_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(PRESETS, "tiny-deep", replace(PRESETS["tiny"], vq_res_blocks=2))
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert run([str(model_dir), str(model_dir), "--out", str(tmp_path / "deep"), "--res-blocks", "2"]) == 0
    deep = EchoGen.load(tmp_path / "deep")
    assert deep.manifest["preset"] == "tiny-deep"
    reference = EchoGen.create("tiny-deep", seed=0).model.model.vqmodel.state_dict()
    assert {k: v.shape for k, v in deep.model.model.vqmodel.state_dict().items()} == {
        k: v.shape for k, v in reference.items()
    }


def test_a_shallower_tokenizer_is_refused(capsys, tmp_path: Path) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert run([str(model_dir), str(model_dir), "--out", str(tmp_path / "deep"), "--res-blocks", "2"]) == 0
    deep = tmp_path / "deep"
    assert run([str(deep), str(deep), "--out", str(tmp_path / "out"), "--res-blocks", "1"]) == 2
    assert "would drop trained blocks: the donor's VQ has 2 per level" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _inputs_of(module: torch.nn.Module, run) -> torch.Tensor:
    """What `module` is given while `run()` runs (its first input, the last call's)."""
    seen = []
    handle = module.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    return seen[-1]


def test_an_outer_level_starts_as_the_donor_at_half_the_side() -> None:
    donor = EchoGen.create("tiny", seed=0).model.model.vqmodel.float()
    outer = transplant_tokenizer.outer_level(donor)
    assert outer.config.channel_multiplier == [1, 1, 1, 1, 1] and len(outer.decoder.up) == 5
    torch.manual_seed(123)  # whatever the global random state, the new layers' fresh weights are the same
    assert _same(_state(transplant_tokenizer.outer_level(donor)), _state(outer))
    kept = ((outer.encoder.down[1], donor.encoder.down[0]), (outer.encoder.down[4], donor.encoder.down[3]),
            (outer.decoder.up[3].block, donor.decoder.up[3].block), (outer.decoder.conv_out, donor.decoder.conv_out),
            (outer.quantize, donor.quantize))  # fmt: skip
    for mine, theirs in kept:  # every trained level, one further in
        assert _same(_state(mine), _state(theirs))

    # the encoder's new level: the donor's first convolution, then a 2 × 2 average, into the donor's first level
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    given = _inputs_of(outer.encoder.down[1].block[0], lambda: outer.encoder(pixels))
    expected = torch.nn.functional.avg_pool2d(outer.encoder.conv_in(pixels), 2)
    torch.testing.assert_close(given, expected, atol=1e-5, rtol=1e-5)

    # the decoder's: the donor's last features, each doubled, reach the output layers
    latent = torch.randn(1, 8, 4, 4, generator=torch.Generator().manual_seed(1))
    theirs = _inputs_of(donor.decoder.norm_out, lambda: donor.decoder(donor.post_quant_conv(latent)))
    mine = _inputs_of(outer.decoder.norm_out, lambda: outer.decoder(outer.post_quant_conv(latent)))
    assert mine.shape == (1, 32, 64, 64)
    torch.testing.assert_close(mine, torch.nn.functional.interpolate(theirs, scale_factor=2, mode="nearest"))


def test_an_outer_level_doubles_the_image_with_the_donors_codes(tiny_config, tmp_path: Path) -> None:
    model = EchoGen.create("tiny", seed=0)
    generation.enable_layout_map(model.model, model.scheme)
    model_dir = model.save(tmp_path / "model")
    args = [str(model_dir), str(model_dir), "--out", str(tmp_path / "outer"), "--outer-level", "40"]
    assert run(args) == 0
    model, outer = EchoGen.load(model_dir), EchoGen.load(tmp_path / "outer")
    mine, new = model.model.model, outer.model.model
    for part in ("vision_model", "aligner", "language_model", "generation_embeddings", "generation_head"):
        assert _same(_state(getattr(new, part)), _state(getattr(mine, part))), part
    assert (outer.image_size, outer.scheme.generation_tokens) == (64, model.scheme.generation_tokens)
    assert outer.manifest["preset"] == "tiny at 64 px, an outer VQ level"
    assert outer.model.config.layout_map["grid"] == 4
    record = outer.manifest["training"]["tokenizer_transplant"]
    assert (record["before"]["vq_levels"], record["after"]["vq_levels"]) == (4, 5)
    matched = record["outer_level"]
    assert matched["steps"] == 40 and 0 <= matched["agreement_before"] <= 1 and 0 <= matched["agreement_after"] <= 1
    assert matched["error_after"] < matched["error_before"]  # fitted: its latents come closer to the donor's
    assert outer.imagine(LAYOUT, seed=0).shape == (48, 64, 3)
    sample = world_sample(7, 0, "heldout")
    expressions = [e.text for e in sample.expressions]
    assert [d.box for d in outer.ground_many(sample.image(), expressions)] == [
        d.box for d in model.ground_many(sample.image(), expressions)
    ]

    # the decoder then learns to draw the codes at the new size; the codes keep their meaning
    from echogen_training.loop import Trainer

    config = tiny_config("vq", f"model.init={tmp_path / 'outer'}", "vq.decoder_only=true", "vq.restart_every=0")
    assert Trainer(config).run() == 0
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    trained = EchoGen.load(tmp_path / "vq" / "final").model.model.vqmodel
    assert torch.equal(encode_tokens(trained, pixels), encode_tokens(new.vqmodel, pixels))
    assert not torch.equal(trained.decoder.up[4].block[0].conv2.weight, new.vqmodel.decoder.up[4].block[0].conv2.weight)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--res-blocks", "2"], "not with --image-size or --res-blocks"), (["--image-size", "64"], "not with --image"),
     ([], "first level keeps the base channels"), (["--outer-level", "-1"], "number of steps ≥ 0")],
)  # fmt: skip
def test_an_outer_level_it_cannot_add_is_refused(
    capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, extra: list[str], message: str
) -> None:
    monkeypatch.setitem(PRESETS, "tiny-wide", replace(PRESETS["tiny"], vq_multipliers=(2, 2, 2, 2)))
    model_dir = EchoGen.create("tiny-wide" if not extra else "tiny", seed=0).save(tmp_path / "model")
    steps = [] if "--outer-level" in extra else ["--outer-level", "1"]
    args = [str(model_dir), str(model_dir), "--out", str(tmp_path / "out"), *steps, *extra]
    assert run(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_decoder_map_goes_with_its_decoder(fine, mapped_model, tmp_path: Path) -> None:
    """A copied VQ keeps the donor's decoder map; a recipient's own map leaves with its VQ; a VQ with a map is
    not grown (its channels would change)."""
    mapped = mapped_model("tiny-fine", seed=1)
    donor_dir = mapped.save(tmp_path / "mapped_donor")
    model = EchoGen.create("tiny", seed=0)
    transplant_tokenizer.transplant(model, EchoGen.load(donor_dir))
    again = EchoGen.load(model.save(tmp_path / "with_map"))
    assert again.model.config.decoder_map == mapped.model.config.decoder_map
    assert _same(_state(again.model.model.vqmodel), _state(mapped.model.model.vqmodel))
    plain_dir = EchoGen.create("tiny-fine", seed=2).save(tmp_path / "plain_donor")
    transplant_tokenizer.transplant(again, EchoGen.load(plain_dir))  # the recipient's map leaves with its VQ
    assert not hasattr(again.model.config, "decoder_map")
    assert getattr(EchoGen.load(again.save(tmp_path / "without")).model.model.vqmodel, "decoder_map", None) is None
    for grown in ({"res_blocks": 2}, {"outer_steps": 0}):
        with pytest.raises(ValueError, match="decoder map"):
            transplant_tokenizer.transplant(EchoGen.create("tiny", seed=0), EchoGen.load(donor_dir), **grown)


def test_an_earlier_transplant_is_replaced_only_with_overwrite(capsys, tmp_path: Path) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    out = tmp_path / "out"
    assert run([str(model_dir), str(model_dir), "--out", str(out), "--res-blocks", "2"]) == 0
    first = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    assert run([str(model_dir), str(model_dir), "--out", str(out), "--res-blocks", "3"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == first
    assert run([str(model_dir), str(model_dir), "--out", str(out), "--res-blocks", "3", "--overwrite"]) == 0
    assert EchoGen.load(out).model.model.vqmodel.config.num_res_blocks == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial left beside it
