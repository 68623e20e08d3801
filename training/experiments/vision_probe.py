"""Linear probes of a model's vision features: does the encoder tell categories apart on held-out
colour × category pairs, or only in the colours it saw them in?

For every object of `--train-scenes` train-split world scenes, the aligned vision feature of the patch
holding its box centre (what grounding reads) is paired with its category and its colour; a linear
classifier per attribute is fitted on them (features standardised, Adam, full batch), then scored on the
objects of `--test-scenes` held-out scenes, split into objects whose colour × category pair training saw
and objects of a held-out pair. A probe that scores well on seen pairs and near chance on held-out pairs
means the features bind shape to colour: no grounding head on top of them can find "the cup" when the
cup is blue.

    python -m experiments.vision_probe [MODEL] [--train-scenes 400] [--test-scenes 200] [--seed 7]
        [--train-scale 0.5 1.6] [--test-scale 0.5 0.7] [--train-split heldout]

`--train-scale` / `--test-scale` draw every object's size from that range (world.scene.SceneConfig.scale_range;
default × 1): the probe then asks whether the encoder still tells categories apart on small objects.
`--train-split heldout` fits the probes on held-out split scenes of seed 101 (every pair, seen and held out)
instead of train's: the probe is then not taught that a colour means a category, and asks only how much of an
object's category the feature holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from echogen_training.data.batches import centre_patch

from echogen_ros.model import generation
from echogen_ros.model.echogen import EchoGen
from echogen_ros.world import catalog
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import SceneConfig
from experiments import pixel_ceiling

ATTRIBUTES = {"category": catalog.CATEGORIES, "colour": tuple(catalog.COLOURS)}


@torch.no_grad()
def features(
    model: EchoGen, split: str, scenes: int, seed: int, scale: tuple[float, float] = (1.0, 1.0)
) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """(objects, D) centre-patch features, attribute → (objects,) class ids, (objects,) held-out pair; every
    object's size × a draw from `scale`."""
    config = SceneConfig(scale_range=scale)
    grid = round(model.scheme.image_tokens**0.5)
    rows, labels, heldout = [], {name: [] for name in ATTRIBUTES}, []
    for index in range(scenes):
        sample = world_sample(seed, index, split, config)
        pixels, letterbox = model.pixels(sample.image())
        patch_features = generation.image_features(model.model, pixels)[0].float()
        for obj, box in zip(sample.scene.objects, sample.boxes()):
            rows.append(patch_features[centre_patch(letterbox.normalised(box), grid)])
            for name, classes in ATTRIBUTES.items():  # SceneObject.category / .colour
                labels[name].append(classes.index(getattr(obj, name)))
            heldout.append(catalog.is_heldout_pair(obj.colour, obj.category))
    return torch.stack(rows), {k: torch.tensor(v) for k, v in labels.items()}, torch.tensor(heldout)


def fit_probe(x: torch.Tensor, y: torch.Tensor, classes: int, steps: int = 500, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    probe = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(probe(x), y).backward()
        optimizer.step()
    return probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?", help="model directory (default: the embedded model)")
    parser.add_argument("--train-scenes", type=int, default=400)
    parser.add_argument("--test-scenes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7, help="seed of the held-out scenes (train scenes use 0)")
    parser.add_argument(
        "--train-split",
        choices=("train", "heldout"),
        default="train",
        help="fit the probes on train scenes (seed 0) or on held-out split scenes of seed 101",
    )
    for name in ("train", "test"):
        parser.add_argument(
            f"--{name}-scale",
            type=float,
            nargs=2,
            default=(1.0, 1.0),
            metavar=("LO", "HI"),
            help=f"the {name} scenes' objects at × a draw from [LO, HI] of their size (default 1 1)",
        )
    args = parser.parse_args(argv)
    if args.train_scenes < 1 or args.test_scenes < 1:
        parser.error("--train-scenes and --test-scenes must be >= 1")
    try:
        scales = [SceneConfig(scale_range=scale).scale_range for scale in (args.train_scale, args.test_scale)]
    except ValueError as error:
        parser.error(str(error))
    model = EchoGen.load(args.model)
    train_seed = 0 if args.train_split == "train" else pixel_ceiling.TRAIN_SEED
    x_train, y_train, _ = features(model, args.train_split, args.train_scenes, train_seed, scales[0])
    x_test, y_test, heldout = features(model, "heldout", args.test_scenes, args.seed, scales[1])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    report = {"model": str(args.model or "embedded"), "objects": {"train": len(x_train), "test": len(x_test),
              "test_heldout_pairs": int(heldout.sum())},
              "scale": {"train": list(scales[0]), "test": list(scales[1])},
              "train_scenes": {"split": args.train_split, "seed": train_seed}}  # fmt: skip
    for name, classes in ATTRIBUTES.items():
        probe = fit_probe(x_train, y_train[name], len(classes))
        with torch.no_grad():
            train_hit = (probe(x_train).argmax(-1) == y_train[name]).float().mean()
            hit = (probe(x_test).argmax(-1) == y_test[name]).float()
        report[name] = {"train": round(float(train_hit), 4), "all": round(float(hit.mean()), 4),
                        "seen_pairs": round(float(hit[~heldout].mean()), 4),
                        "heldout_pairs": round(float(hit[heldout].mean()), 4)}  # fmt: skip
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
