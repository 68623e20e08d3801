"""Every referring expression names exactly one object, checked by an independent evaluator.

The evaluator below parses the text with its own grammar and judges it on the exported pixel boxes with
plain definitions (strict for the target, loose for the others), sharing no code with the generator.
"""

from __future__ import annotations

import math
import re

import pytest

from echogen_ros.world import catalog
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import SceneConfig

CAT = "|".join(catalog.CATEGORIES)
COL = "|".join(catalog.COLOURS)
NP = rf"the (?:(?:{COL}) )?(?:{CAT})"
TOL = 2.0  # pixels of slack given to distractors (rounding of exported boxes)
CONFIGS = {  # the sizes trained on; smaller; larger; any size, cut by the border, up to 12 objects
    "default": SceneConfig(),
    "x0.5-0.7": SceneConfig(scale_range=(0.5, 0.7)),
    "x1.3-1.6": SceneConfig(scale_range=(1.3, 1.6)),
    "x0.5-1.6-cut-12": SceneConfig(scale_range=(0.5, 1.6), border_cut=0.4, max_objects=12),
}


def _objects(sample):
    return [
        {"category": o.category, "colour": o.colour, "box": box} for o, box in zip(sample.scene.objects, sample.boxes())
    ]


def _noun_phrase(text: str, objects: list[dict]) -> list[int]:
    words = text.split()[1:]
    colour, category = words if len(words) == 2 else (None, words[0])
    return [i for i, o in enumerate(objects) if o["category"] == category and colour in (None, o["colour"])]


def _cx(b):
    return (b[0] + b[2]) / 2


def _cy(b):
    return (b[1] + b[3]) / 2


def _area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def _left(a, b, slack):  # a left of b: entirely left, overlapping rows
    return a[2] < b[0] + slack and min(a[3], b[3]) - max(a[1], b[1]) > -slack


def _above(a, b, slack):
    return a[3] < b[1] + slack and min(a[2], b[2]) - max(a[0], b[0]) > -slack


def _gap(a, b):
    dx = max(b[0] - a[2], a[0] - b[2], 0)
    dy = max(b[1] - a[3], a[1] - b[3], 0)
    return math.hypot(dx, dy)


def _between(a, b, c, loose):
    (px, py), (bx, by), (qx, qy) = (_cx(a), _cy(a)), (_cx(b), _cy(b)), (_cx(c), _cy(c))
    dx, dy = qx - bx, qy - by
    length2 = dx * dx + dy * dy
    t = ((px - bx) * dx + (py - by) * dy) / length2
    dist = abs((px - bx) * dy - (py - by) * dx) / math.sqrt(length2)
    if loose:
        return 0.0 < t < 1.0 and dist < 0.6 * math.sqrt(length2)
    return 0.15 <= t <= 0.85 and dist <= 0.35 * math.sqrt(length2)


def _relation(name, a, anchors, loose):
    slack = TOL if loose else -TOL
    h = 480.0
    if name == "left of":
        return _left(a, anchors[0], slack)
    if name == "right of":
        return _left(anchors[0], a, slack)
    if name == "above":
        return _above(a, anchors[0], slack)
    if name == "below":
        return _above(anchors[0], a, slack)
    if name == "next to":
        return _gap(a, anchors[0]) < (0.2 * h if loose else 0.13 * h)
    if name == "between":
        return _between(a, anchors[0], anchors[1], loose)
    raise AssertionError(name)


def referents(text: str, objects: list[dict]) -> tuple[list[int], list[int]]:
    """(objects the text clearly names, objects it could loosely name)."""
    if m := re.fullmatch(rf"({NP})", text):
        found = _noun_phrase(m[1], objects)
        return found, found
    if m := re.fullmatch(rf"the (larger|smaller|largest|smallest) ({CAT})", text):
        group = [i for i, o in enumerate(objects) if o["category"] == m[2]]
        sign = 1 if m[1] in ("larger", "largest") else -1
        best = [
            i
            for i in group
            if all(sign * (_area(objects[i]["box"]) - _area(objects[j]["box"])) > 0 for j in group if j != i)
        ]
        assert (len(group) == 2) == (m[1] in ("larger", "smaller")), "comparative vs superlative"
        return best, best
    if m := re.fullmatch(rf"the (leftmost|rightmost|topmost|bottommost) ({CAT})", text):
        group = [i for i, o in enumerate(objects) if o["category"] == m[2]]
        key = {
            "leftmost": lambda i: _cx(objects[i]["box"]),
            "rightmost": lambda i: -_cx(objects[i]["box"]),
            "topmost": lambda i: _cy(objects[i]["box"]),
            "bottommost": lambda i: -_cy(objects[i]["box"]),
        }[m[1]]
        best = [i for i in group if all(key(i) < key(j) for j in group if j != i)]
        return best, best
    if m := re.fullmatch(rf"the (second|third|fourth) ({CAT}) from the (left|right)", text):
        rank = catalog.ORDINAL_WORDS.index(m[1])
        group = [i for i, o in enumerate(objects) if o["category"] == m[2]]
        sign = 1 if m[3] == "left" else -1
        found = [
            i
            for i in group
            if sum(sign * _cx(objects[j]["box"]) < sign * _cx(objects[i]["box"]) for j in group) == rank
        ]
        return found, found
    if m := re.fullmatch(rf"the ({CAT}) (left of|right of|above|below|next to) ({NP})", text):
        (anchor,) = _noun_phrase(m[3], objects)
        return _relational(objects, m[1], m[2], [anchor])
    if m := re.fullmatch(rf"the ({CAT}) between ({NP}) and ({NP})", text):
        (a,), (b,) = _noun_phrase(m[2], objects), _noun_phrase(m[3], objects)
        return _relational(objects, m[1], "between", [a, b])
    raise AssertionError(f"unparseable expression {text!r}")


def _relational(objects, category, relation, anchor_ids):
    anchors = [objects[j]["box"] for j in anchor_ids]
    group = [i for i, o in enumerate(objects) if o["category"] == category and i not in anchor_ids]
    strict = [i for i in group if _relation(relation, objects[i]["box"], anchors, loose=False)]
    loose = [i for i in group if _relation(relation, objects[i]["box"], anchors, loose=True)]
    return strict, loose


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_every_expression_has_exactly_one_referent(split: str, config: str) -> None:
    kinds = set()
    for index in range(150):
        sample = world_sample(3, index, split, CONFIGS[config])
        objects = _objects(sample)
        for expr in sample.expressions:
            strict, loose = referents(expr.text, objects)
            assert strict == [expr.target], (index, expr.text, strict)
            assert loose == [expr.target], f"{expr.text!r} could also name {loose} (scene {index})"
            kinds.add(expr.kind)
    assert kinds == set(catalog.EXPRESSION_TYPES)


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_no_target_expressions_name_no_object(split: str, config: str) -> None:
    """gRefCOCO's no-target expressions: the same evaluator finds no object, not even loosely; outside the
    held-out split none names a held-out composition."""
    kinds = set()
    for index in range(150):
        sample = world_sample(3, index, split, CONFIGS[config])
        objects = _objects(sample)
        for expr in sample.absent:
            assert expr.target is None
            strict, loose = referents(expr.text, objects)
            assert strict == loose == [], f"{expr.text!r} names {loose} (scene {index})"
            kinds.add(expr.kind)
            pairs = {(c, k) for c in catalog.COLOURS for k in catalog.CATEGORIES if f"{c} {k}" in expr.text}
            relation_held = (expr.relation, expr.text.split()[1]) in catalog.HELDOUT_RELATIONS
            if split != "heldout":
                assert not relation_held and not pairs & catalog.HELDOUT_PAIRS, expr.text
    assert kinds == {"category", "attribute", "ordinal", "relation"}


def test_no_target_expressions_leave_the_rest_of_a_sample_as_it_was() -> None:
    """They are drawn after everything else: a scene's objects, expressions and instructions do not change."""
    sample = world_sample(3, 7, "val")
    assert [e.text for e in sample.expressions][:3] == ["the cup", "the red cup", "the cup right of the box"]


def test_instructions_name_unique_objects_and_need_a_move() -> None:
    relations = set()
    for index in range(150):
        sample = world_sample(5, index, "train")
        objects = _objects(sample)
        for ins in sample.instructions:
            target_phrase = re.match(rf"(?:(?:put|place|move) |pick up )({NP})", ins.text)[1]
            assert _noun_phrase(target_phrase, objects) == [ins.target], ins.text
            assert ins.target not in ins.anchors
            if ins.relation in (None, "on"):
                continue
            relations.add(ins.relation)
            anchors = [objects[j]["box"] for j in ins.anchors]
            assert not _relation(ins.relation, objects[ins.target]["box"], anchors, loose=False), ins.text
    assert relations == {"left of", "right of", "above", "below", "next to", "between"}


def test_evaluator_rejects_a_wrong_referent() -> None:
    """The evaluator can fail: a relation naming a different anchor does not resolve to the target."""
    sample = next(
        s for s in (world_sample(3, i) for i in range(50)) if any(e.relation == "left of" for e in s.expressions)
    )
    expr = next(e for e in sample.expressions if e.relation == "left of")
    flipped = expr.text.replace(" left of ", " right of ")
    strict, _ = referents(flipped, _objects(sample))
    assert expr.target not in strict
