"""Give a model whose VQ decoder was trained with the decoder map (`model.decoder_map`) a decoder that draws
the codes alone, keeping the map's as an option: imagined scenes are then the generator's own work.

A decoder trained with the map draws objects from the layout whatever the codes say (issue 35: an empty
table's codes get half a layout's objects drawn), and without the map it no longer draws at all. PLAIN is a
model with the same codebook whose decoder reads codes only (the same model before its decoder-map runs):
its decoder becomes Janus' (what `imagine` and the cycle check draw with), and MODEL's decoder moves into the
map (`layout_decoder.separate`), drawn with only when asked (`imagine --decoder-map`). Everything else is
MODEL's.

    echogen-train separate-decoder MODEL PLAIN --out DIR

The output is a full model directory, written all at once; the manifest records PLAIN under
`training.decoder_separation` (also written to decoder_separation.json beside it). The domain check and the
calibration are left out, as after every change of weights: run `echogen-train fit-domain` and `echogen-train
calibrate` on DIR (grounding is unchanged, so they refit to the same values). MODEL and PLAIN are not modified;
an --out that is not empty is refused (with --overwrite, one this tool wrote is replaced), and so is an --out
that is MODEL or PLAIN.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from echogen_ros.model import layout_decoder
from echogen_ros.model.echogen import EchoGen
from echogen_training import transplants


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the model whose decoder was trained with its decoder map")
    parser.add_argument("plain", type=Path, help="a model of the same codebook whose decoder reads codes only")
    parser.add_argument("--out", type=Path, required=True, help="the new model directory")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out this tool wrote before")


def run(args: argparse.Namespace) -> int:
    transplants.check_out(args.out, args.overwrite, args.model, args.plain)
    model, plain = EchoGen.load(args.model), EchoGen.load(args.plain)
    if getattr(plain.model.model.vqmodel, "decoder_map", None) is not None:
        raise ValueError(f"{args.plain}'s decoder was trained with a decoder map: give one that reads codes only")
    layout_decoder.separate(model.model, plain.model.model.vqmodel)
    stage = "decoder_separation"
    record = transplants.save(model, args.model, plain, args.plain, args.out, stage, {}, args.overwrite)
    print(json.dumps(record))
    return 0
