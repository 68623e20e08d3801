"""DJO draws its image free-running (each straight-through Gumbel sample is the next step's input, the grounding
loss reaches the generator through the samples) or, as the ablation, teacher-forced on the real frame; imagined
scenes are graded as the generator drew them, never through a decoder map's layout (DJO and Cycle RL)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from echogen_training.data.batches import left_pad
from echogen_training.forward import l2i_logits
from echogen_training.loop import Trainer

from echogen_ros.model import generation
from echogen_ros.model.echogen import EchoGen


@pytest.fixture
def tiny():
    """The tiny model in eval mode, two left-padded layout prompts, their unconditional twins (the same
    padding) and the image-token count."""
    model = EchoGen.create("tiny", seed=0)
    cup, plate = model.tokenizer.token_to_id("cup"), model.tokenizer.token_to_id("plate")
    rows = [model.scheme.l2i_prompt([], [([cup], (0.1, 0.2, 0.5, 0.6)), ([plate], (0.6, 0.1, 0.9, 0.4))]),
            model.scheme.l2i_prompt([], [([plate], (0.6, 0.1, 0.9, 0.4))])]  # fmt: skip
    cond, uncond = (left_pad([row[i] for row in rows], model.scheme.pad) for i in (0, 1))
    return model.model.eval(), cond, uncond, model.scheme.image_tokens


def forced(tokens: torch.Tensor, codes: int, seen: list[torch.Tensor]):
    """A `draw` that records each step's logits and draws the given `tokens` (B, N) as one-hots."""

    def draw(logits: torch.Tensor) -> torch.Tensor:
        seen.append(logits)
        return F.one_hot(tokens[:, len(seen) - 1 : len(seen)], codes).float()

    return draw


def test_one_hot_weights_are_the_tokens_inputs_exactly(tiny) -> None:
    janus, _, _, count = tiny
    ids = torch.arange(count).remainder(janus.config.vq_config.num_embeddings)[None]
    weights = F.one_hot(ids, janus.config.vq_config.num_embeddings).float()
    assert torch.equal(generation.code_embeddings(janus, weights), generation.code_embeddings(janus, ids))


def test_each_free_running_step_reads_the_token_drawn_before_it(tiny) -> None:
    """Step t's logits are the teacher-forced logits of the drawn sequence (the input at t is token t − 1 as
    drawn), and a different draw at step 5 changes step 6's logits and none before it."""
    janus, seq, _, count = tiny
    codes = janus.config.vq_config.num_embeddings
    tokens = torch.randint(0, codes, (2, count), generator=torch.Generator().manual_seed(1))
    other = tokens.clone()
    other[:, 5] = (tokens[:, 5] + 1) % codes
    first, second = [], []
    with torch.no_grad():
        generation.draw_image_tokens(janus, seq.ids, None, count, 1.0, forced(tokens, codes, first), seq.mask)
        generation.draw_image_tokens(janus, seq.ids, None, count, 1.0, forced(other, codes, second), seq.mask)
        teacher = l2i_logits(janus, seq, tokens)
    torch.testing.assert_close(torch.stack(first, 1), teacher, atol=1e-5, rtol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(first[:6], second[:6]))
    assert (first[6] - second[6]).abs().max() > 1e-4


def test_greedy_one_hot_draws_are_what_inference_samples(tiny) -> None:
    """The differentiable loop with guidance is inference's loop: argmax one-hots give generate_image_tokens'
    greedy tokens."""
    janus, seq, uncond, count = tiny
    codes = janus.config.vq_config.num_embeddings
    assert torch.equal(uncond.mask, seq.mask)
    with torch.no_grad():
        greedy = generation.generate_image_tokens(janus, seq.ids, uncond.ids, count, 3.0, 0.0, None, mask=seq.mask)
        drawn = generation.draw_image_tokens(
            janus, seq.ids, uncond.ids, count, 3.0, lambda x: F.one_hot(x.argmax(-1, keepdim=True), codes).float(),
            seq.mask,
        )  # fmt: skip
    assert torch.equal(torch.cat(drawn, 1).argmax(-1), greedy)


@pytest.mark.parametrize("mode", ["free_running", "teacher_forced"])
def test_a_loss_on_the_last_sample_reaches_the_first_steps_logits_only_free_running(tiny_config, mode) -> None:
    """Free-running, the first step's sample is the second step's input and so on: a loss on the last sample
    has a gradient at the first step's logits and at the embeddings of exactly the tokens drawn before the
    last. Teacher-forced, the steps read the real frame's tokens: the first step's logits get none."""
    trainer = Trainer(tiny_config("djo", f"djo.mode={mode}"))
    janus, objective = trainer.model.eval(), trainer.objective
    l2i, count = trainer.cpu_inputs(0)["l2i"], trainer.echogen.scheme.generation_tokens
    real = torch.randint(0, janus.config.vq_config.num_embeddings, (len(l2i.layouts), count))
    seen = []

    def keep(logits: torch.Tensor) -> torch.Tensor:
        logits.retain_grad()
        seen.append(logits)
        return logits

    with torch.random.fork_rng():
        torch.manual_seed(0)
        if mode == "free_running":
            draw = lambda x: F.gumbel_softmax(keep(x), tau=0.5, hard=True, dim=-1)[:, None]  # noqa: E731
            drawn = generation.draw_image_tokens(janus, l2i.seq.ids, None, count, 1.0, draw, l2i.seq.mask)
            drawn = torch.cat(drawn, 1)
        else:
            logits = keep(l2i_logits(janus, l2i.seq, real))
            drawn = objective.draw(l2i.seq, None, logits, real, tau=0.5)
    weights = torch.randn(drawn.shape[-1], generator=torch.Generator().manual_seed(2))
    (drawn[:, -1] @ weights).sum().backward()
    first = seen[0].grad if mode == "free_running" else seen[0].grad[:, 0]
    rows = set(janus.model.generation_embeddings.weight.grad.abs().sum(1).nonzero().flatten().tolist())
    inputs = drawn.argmax(-1) if mode == "free_running" else real
    if mode == "free_running":
        assert first.abs().sum() > 0
    else:
        assert first.abs().sum() == 0
    assert rows == set(inputs[:, :-1].flatten().tolist())


@pytest.mark.parametrize("mode", ["free_running", "teacher_forced"])
def test_only_teacher_forcing_reads_the_real_frame(tiny_config, mode: str) -> None:
    """Free-running, another real frame behind the same layouts changes nothing in the image drawn (it is the
    generator's); teacher-forced, the image is a resample of the real frame. Soft samples (djo.hard=false): an
    untrained head's logits are nearly flat, so its hard samples are the Gumbel noise's argmax either way."""
    trainer = Trainer(tiny_config("djo", f"djo.mode={mode}", "djo.hard=false"))
    inputs = trainer.next_inputs()
    l2i, images, tokens = inputs["l2i"], [], []
    for pixels in (l2i.gen_pixels, l2i.gen_pixels.flip(-1)):
        l2i.gen_pixels = pixels
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(0)
            image, _, real = trainer.objective.imagine(l2i, None, inputs["tau"])
        images.append(image)
        tokens.append(real)
    assert not torch.equal(tokens[0], tokens[1])  # the two frames' tokens differ
    assert torch.equal(images[0], images[1]) == (mode == "free_running")


@pytest.mark.parametrize("stage", ["djo", "cycle_rl"])
def test_imagined_scenes_are_graded_without_the_decoder_map(tiny_config, stage: str) -> None:
    """DJO's grounding loss and Cycle RL's reward read what the generator drew: under two different (non-zero)
    decoder maps, DJO draws the same image (guided, free-running) and Cycle RL grounds the same boxes back,
    while decoding with the layout through the two maps differs."""
    trainer = Trainer(tiny_config(stage, "model.decoder_map=true", "djo.guidance=3.0"))
    janus = trainer.model.eval()
    vqmodel = janus.model.vqmodel
    layout = [(trainer.batcher.text("cup"), (0.1, 0.1, 0.6, 0.7))]
    count = trainer.echogen.scheme.generation_tokens
    tokens = torch.randint(0, janus.config.vq_config.num_embeddings, (1, count), generator=torch.Generator())
    inputs = trainer.next_inputs() if stage == "djo" else None
    graded, pictures = [], []
    for seed in (1, 2):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in vqmodel.decoder_map.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))
            pictures.append(generation.decode_image(janus, tokens, [layout]))
            with torch.random.fork_rng():
                torch.manual_seed(0)
                if stage == "djo":
                    assert inputs["uncond"] is not None  # guided
                    graded.append(trainer.objective.imagine(inputs["l2i"], inputs["uncond"], inputs["tau"])[0])
                else:
                    graded.append(trainer.stage.ground_back(tokens, [layout]))
    assert not torch.equal(pictures[0], pictures[1])  # the maps differ where a layout reaches them
    assert graded[0] == graded[1] if stage == "cycle_rl" else torch.equal(graded[0], graded[1])


@pytest.mark.parametrize(
    ("override", "message"), [("djo.mode=sometimes", "djo.mode"), ("djo.guidance=-1", "djo.guidance")]
)
def test_djo_refuses_unknown_modes_and_negative_guidance(tiny_config, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config("djo", override)
