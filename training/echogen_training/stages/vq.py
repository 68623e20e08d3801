"""The VQ stage: the image tokenizer (VQ-VAE, and a decoder map where the model has one) trained to
reconstruct letterboxed frames, with optional detail/edge weighting, dead-code restarts and a PatchGAN critic."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import generation, vq
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.letterbox import Letterbox
from echogen_training import evaluate
from echogen_training.config import VQConfig
from echogen_training.data.batches import to_pixels
from echogen_training.data.device import pixels_to
from echogen_training.stages.base import Metrics, Stage, parameter_ids


class PatchDiscriminator(nn.Module):
    """A small PatchGAN critic for the optional adversarial VQ loss (hinge)."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels * 2, 4, 2, 1), nn.GroupNorm(8, channels * 2), nn.LeakyReLU(0.2),
            nn.Conv2d(channels * 2, 1, 3, 1, 1),
        )  # fmt: skip

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels)


def detail_weights(pixels: torch.Tensor, strength: float) -> torch.Tensor:
    """1 + strength · local contrast (distance to the 9×9 local mean), normalised to mean 1 per image.

    On tabletop frames most pixels are table; without this, a small VQ learns the table and drops objects.
    """
    if strength <= 0:
        return torch.ones_like(pixels[:, :1])
    contrast = (
        (pixels - F.avg_pool2d(pixels, 9, stride=1, padding=4, count_include_pad=False)).abs().sum(1, keepdim=True)
    )
    weights = 1 + strength * contrast
    return weights / weights.mean(dim=(2, 3), keepdim=True)


def edge_error(recon: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Mean |∂recon − ∂pixels| over horizontal and vertical neighbour differences (a gradient-difference loss).

    Per-pixel L1 pays little for a softened edge: a rounded block corner moves a handful of pixels. This pays
    for every edge pixel whose step is not as sharp as the frame's; flat table costs nothing on either side.
    """
    dx = (recon[..., :, 1:] - recon[..., :, :-1]) - (pixels[..., :, 1:] - pixels[..., :, :-1])
    dy = (recon[..., 1:, :] - recon[..., :-1, :]) - (pixels[..., 1:, :] - pixels[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


class CodeUsage(nn.Module):
    """Dead-code restarts: codes no batch picked during a window of `every` steps are re-seeded with
    encoder latents of the current batch, so the codebook does not collapse onto the table's few colours.
    The hit counts are a buffer, saved with the trainer's checkpoint (resume stays exact)."""

    def __init__(self, codes: int, every: int) -> None:
        super().__init__()
        self.every = every
        self.register_buffer("hits", torch.zeros(codes, dtype=torch.long))
        self.latents: torch.Tensor | None = None

    def observe(self, tokens: torch.Tensor, latent: torch.Tensor) -> None:
        self.hits += torch.bincount(tokens.flatten(), minlength=self.hits.numel())
        self.latents = latent.detach().permute(0, 2, 3, 1).reshape(-1, latent.shape[1]).float()

    @torch.no_grad()
    def restart(self, codebook: torch.Tensor, step: int) -> int:
        """After the optimizer step `step` (0-based): re-seed dead codes at the window's end; returns how many."""
        if self.every <= 0 or (step + 1) % self.every or self.latents is None:
            return 0
        hits = self.hits.clone()
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(hits)
        dead = (hits == 0).nonzero().flatten()
        if dead.numel():
            generator = torch.Generator().manual_seed(step)
            pick = torch.randint(self.latents.shape[0], (dead.numel(),), generator=generator)
            fresh = self.latents[pick].to(codebook.device)
            fresh = fresh + 0.01 * torch.randn(fresh.shape, generator=generator).to(fresh.device)
            if torch.distributed.is_initialized():  # every rank takes rank 0's latents
                torch.distributed.broadcast(fresh, src=0)
            codebook[dead] = fresh.to(codebook.dtype)
        self.hits.zero_()
        return int(dead.numel())


class VQObjective(nn.Module):
    def __init__(self, model: JanusForConditionalGeneration, config: VQConfig) -> None:
        super().__init__()
        self.vq, self.config = model.model.vqmodel, config
        self.discriminator = PatchDiscriminator() if config.adversarial_weight > 0 else None
        self.usage = CodeUsage(self.vq.quantize.embedding.num_embeddings, config.restart_every)

    def after_step(self, step: int) -> Metrics:
        restarted = self.usage.restart(self.vq.quantize.embedding.weight, step)
        return {"codes_restarted": float(restarted)} if restarted else {}

    def forward(
        self, pixels: torch.Tensor, step: int, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Metrics]:
        """`labels`, `boxes`: the frames' layouts (`generation.label_boxes`), for a VQ with a decoder map."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.decoder_only):
            raw = vq.encode_latent(self.vq, pixels)
            tokens, latent, codebook_loss = vq.quantize_latent(self.vq, raw)
        if self.training:
            self.usage.observe(tokens, raw)
        recon = vq.decode_latent(self.vq, latent, labels, boxes)
        error = (recon - pixels).abs() if self.config.reconstruction == "l1" else (recon - pixels).pow(2)
        rec_loss = (detail_weights(pixels, self.config.detail_weight) * error).mean()
        loss = rec_loss + self.config.codebook_weight * codebook_loss
        metrics = {"recon": rec_loss.item(), "codebook": codebook_loss.item(),
                   "codes_used": float(tokens.unique().numel())}  # fmt: skip
        if self.config.edge_weight > 0:
            edge = edge_error(recon, pixels)
            loss = loss + self.config.edge_weight * edge
            metrics["edge"] = edge.item()
        if self.discriminator is not None and step >= self.config.adversarial_start:
            d_loss = (
                F.relu(1 - self.discriminator(pixels)).mean() + F.relu(1 + self.discriminator(recon.detach())).mean()
            )
            frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
            g_loss = -torch.func.functional_call(self.discriminator, frozen, (recon,)).mean()
            loss = loss + self.config.adversarial_weight * g_loss + d_loss
            metrics.update(d_loss=d_loss.item(), g_adv=g_loss.item())
        return loss, metrics


class VQStage(Stage):
    name = "vq"
    uses_generation = False

    def sharding_problem(self) -> str | None:
        if self.config.vq.restart_every > 0:
            return "vq.restart_every edits the sharded codebook: run the VQ stage with ddp"
        return None

    def set_trainable(self) -> None:
        vqmodel = self.model.model.vqmodel
        in_vq = parameter_ids(vqmodel)
        for p in self.model.parameters():
            p.requires_grad_(id(p) in in_vq)
        if self.config.vq.decoder_only:
            decoder = parameter_ids(vqmodel.post_quant_conv, vqmodel.decoder, getattr(vqmodel, "decoder_map", None))
            for p in vqmodel.parameters():
                p.requires_grad_(id(p) in decoder)

    def objective(self) -> nn.Module:
        return VQObjective(self.model, self.config.vq)

    def extra_modules(self, objective: nn.Module) -> dict[str, nn.Module]:
        modules = {"discriminator": objective.discriminator}
        if self.config.vq.restart_every > 0:
            modules["code_usage"] = objective.usage
        return {k: v for k, v in modules.items() if v is not None}

    def shard_units(self) -> list[nn.Module]:
        return []  # the objective holds only the VQ, sharded as one unit (its root)

    def model_state(self, objective_state: dict) -> dict:
        """The objective holds the VQ as `vq.`: the live model's other weights (never sharded here) with the
        VQ's gathered ones. Empty on ranks other than the main one (cpu_offload gathers on rank 0 only)."""
        if not objective_state:
            return {}
        inner = "model.vqmodel."
        whole = {k: v.detach().cpu() for k, v in self.model.state_dict().items() if not k.startswith(inner)}
        whole.update({inner + k[len("vq.") :]: v for k, v in objective_state.items() if k.startswith("vq.")})
        return whole

    def cpu_inputs(self, records, step: int) -> dict:
        size = self.echogen.image_size
        pixels = to_pixels([Letterbox(r.width, r.height, size).apply(r.load_image()) for r in records])
        if getattr(self.model.model.vqmodel, "decoder_map", None) is None:
            return {"pixels": pixels}
        return {"pixels": pixels, "layouts": [self.batcher.layout(r) for r in records]}

    def device_inputs(self, cpu: dict, device: torch.device, step: int) -> dict:
        inputs = {"pixels": pixels_to(cpu["pixels"], device), "step": step}
        if "layouts" in cpu:  # the decoder map reads the frames' layouts (the LM's embeddings: fixed here)
            with torch.no_grad():
                inputs["labels"], inputs["boxes"] = generation.label_boxes(self.model, cpu["layouts"])
        return inputs

    def after_step(self, objective: nn.Module, step: int) -> Metrics:
        return objective.after_step(step)

    def measure(self, echogen: EchoGen, samples: list) -> Metrics:
        return evaluate.reconstruction(echogen, samples)
