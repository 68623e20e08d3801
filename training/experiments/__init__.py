"""Experiments: scripts that each answered one question about the model, kept to rerun the measurement. Their
findings are in docs/benchmarks.md; a finding the product keeps is a named constant there (e.g.
planning.grounders.AMBIGUITY_RATIO from alike_objects). They are not part of the installed packages: run them
from the repository root with this directory's parent on the path,

    PYTHONPATH=training .venv/bin/python -m experiments.NAME ...

- ablation_table: the ablation table (markdown) from runs/ablation/<row>/ (training/scripts/ablation_eval.sh);
- alike_objects: how the grounder tells alike objects apart, and how often the ambiguity flag is raised;
- calibration_variants: other inputs for the calibration, and gates on the no-target probability (second_look's rows);
- calibration_sizes: the calibration fitted on new compositions at any object size too (second_look's rows and more);
- answer_checks: trust figures of the same answers with the answer checks added one at a time, and none;
- detector_controls: what the classical detector gives world renders and flat shapes painted into their boxes;
- depth_3d: how far grounded referents' 3D centres (and goal poses) land from the truth, from depth and K;
- domain_check: how the domain check separates world renders (by split, size, JPEG) from photos and non-scenes;
- pixel_ceiling: how well a small classifier tells objects' categories from the pixels a model reads, by scale band;
- plan_share: how many of the world's instructions plan (truth listing, no listing, the model), refusals checked;
- l2i_nll: teacher-forced layout→image token cross-entropy on held-out scenes (right, shuffled or no layout);
- refine_sweep: grounding accuracy by sub-bin refinement window;
- sample_grids: the grounding and imagined-scene sample grids of docs/img;
- second_look: small best boxes read again in a crop around them, each way with its own calibration;
- sampling_sweep: imagined-scene metrics by classifier-free guidance and temperature;
- vision_probe: linear probes of the vision features on seen and held-out colour × category pairs (any object size);
- vq_ceiling: what the image path allows, real frames sent through it without the generator.

Those that read an `echogen world` export read it through world_export.read_scenes.
"""
