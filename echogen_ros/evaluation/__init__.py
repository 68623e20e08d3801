"""Evaluation on tabletop-world data: grounding (Ref-L4 protocol), layout-to-image fidelity with an
independent classical detector and pycocotools, cycle consistency."""
