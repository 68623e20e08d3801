"""Text about scenes: referring expressions (one referent each), expressions with no referent, captions and
instructions.

Every expression is emitted only when it is *clearly* true of its target and clearly false of every
other candidate (see `relations`): ambiguity is never emitted, borderline geometry never either. An
expression with no referent (gRefCOCO's no-target expressions) is emitted only when it is clearly false
of every object. Geometry is judged in reference pixels, so the texts are the same at every render resolution.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from echogen_ros.domain.relations import Truth, relation_truth
from echogen_ros.world import catalog
from echogen_ros.world.scene import Scene, SceneObject

SCALE = float(catalog.REF_HEIGHT)
SIZE_RATIO = 1.6  # "larger": area at least this many times every other candidate's
ORDER_GAP = 0.04 * SCALE  # "leftmost": centre at least this far from the next candidate's
RELATIONS_PER_TARGET = 2


@dataclass(frozen=True)
class Expression:
    target: int | None  # index into scene.objects; None: no object is meant (a no-target expression)
    text: str
    kind: str  # one of catalog.EXPRESSION_TYPES
    relation: str | None = None
    anchors: tuple[int, ...] = ()


@dataclass(frozen=True)
class Instruction:
    text: str
    action: str  # "put" (move target so the relation holds) or "pick"
    target: int
    relation: str | None
    anchors: tuple[int, ...]


def simple_phrase(objects: tuple[SceneObject, ...], i: int) -> str | None:
    """The shortest unambiguous name of object i by category or colour + category, or None."""
    obj = objects[i]
    if sum(o.category == obj.category for o in objects) == 1:
        return f"the {obj.category}"
    if sum((o.colour, o.category) == (obj.colour, obj.category) for o in objects) == 1:
        return f"the {obj.label}"
    return None


def referring_expressions(scene: Scene, rng: np.random.Generator, heldout: bool = False) -> list[Expression]:
    """All unambiguous expressions of the scene (relations sampled), filtered for the split."""
    objs = scene.objects
    found: list[Expression] = []
    for i in range(len(objs)):
        found += _category_and_attribute(objs, i) + _size(objs, i) + _ordinal(objs, i)
        relational = _relational(objs, i)
        if len(relational) > RELATIONS_PER_TARGET:
            picks = rng.choice(len(relational), size=RELATIONS_PER_TARGET, replace=False)
            relational = [relational[k] for k in sorted(picks)]
        found += relational
    return [e for e in found if _in_split(objs, e.target, e.relation, e.anchors, heldout)]


def _in_split(
    objs: tuple[SceneObject, ...], target: int, relation: str | None, anchors: tuple[int, ...], heldout: bool
) -> bool:
    """Train/val/test never use a held-out composition; the held-out split always does."""
    relation_heldout = (relation, objs[target].category) in catalog.HELDOUT_RELATIONS
    pair_heldout = any(catalog.is_heldout_pair(objs[j].colour, objs[j].category) for j in (target, *anchors))
    return (relation_heldout or pair_heldout) if heldout else not relation_heldout


def _category_and_attribute(objs: tuple[SceneObject, ...], i: int) -> list[Expression]:
    obj = objs[i]
    out = []
    if sum(o.category == obj.category for o in objs) == 1:
        out.append(Expression(i, f"the {obj.category}", "category"))
    if sum((o.colour, o.category) == (obj.colour, obj.category) for o in objs) == 1:
        out.append(Expression(i, f"the {obj.label}", "attribute"))
    return out


def _others(objs: tuple[SceneObject, ...], i: int) -> list[SceneObject]:
    return [o for j, o in enumerate(objs) if j != i and o.category == objs[i].category]


def _size(objs: tuple[SceneObject, ...], i: int) -> list[Expression]:
    others = _others(objs, i)
    if not others or any(o.extent is not None for o in (objs[i], *others)):
        return []  # nothing to compare, or an object the border cuts: what is seen of it is not its size
    obj, two = objs[i], len(others) == 1
    if all(obj.area >= SIZE_RATIO * o.area for o in others):
        return [Expression(i, f"the {'larger' if two else 'largest'} {obj.category}", "size")]
    if all(o.area >= SIZE_RATIO * obj.area for o in others):
        return [Expression(i, f"the {'smaller' if two else 'smallest'} {obj.category}", "size")]
    return []


def _ordinal(objs: tuple[SceneObject, ...], i: int) -> list[Expression]:
    """leftmost / rightmost / topmost / bottommost, and "the second cup from the left"."""
    group = [objs[i]] + _others(objs, i)
    if len(group) < 2:
        return []
    out, cat = [], objs[i].category
    for axis, (first, last), sides in (
        (0, ("leftmost", "rightmost"), ("left", "right")),
        (1, ("topmost", "bottommost"), None),
    ):
        coords = sorted(o.center[axis] for o in group)
        rank, end = coords.index(objs[i].center[axis]), len(coords) - 1
        clear = np.diff(coords) >= ORDER_GAP  # clear[k]: objects k and k + 1 are clearly apart
        from_first, from_last = bool(clear[: rank + 1].all()), bool(clear[max(rank - 1, 0) :].all())
        if rank == 0 and from_first:
            out.append(Expression(i, f"the {first} {cat}", "ordinal"))
        if rank == end and from_last:
            out.append(Expression(i, f"the {last} {cat}", "ordinal"))
        if sides is None or len(group) < 3:
            continue
        for position, side, ok in ((rank, sides[0], from_first), (end - rank, sides[1], from_last)):
            if 1 <= position < len(catalog.ORDINAL_WORDS) and ok:
                out.append(Expression(i, f"the {catalog.ORDINAL_WORDS[position]} {cat} from the {side}", "ordinal"))
    return out


def _relational(objs: tuple[SceneObject, ...], i: int) -> list[Expression]:
    target = objs[i]
    distractors = [o.box for o in _others(objs, i)]
    names = {j: simple_phrase(objs, j) for j in range(len(objs)) if j != i}
    anchors = [j for j, name in names.items() if name is not None]
    out = []

    def unique(relation: str, boxes: list) -> bool:
        if relation_truth(relation, target.box, boxes, SCALE) is not Truth.TRUE:
            return False
        return all(relation_truth(relation, d, boxes, SCALE) is Truth.FALSE for d in distractors)

    for j in anchors:
        for relation in ("left of", "right of", "above", "below", "next to"):
            if unique(relation, [objs[j].box]):
                out.append(Expression(i, f"the {target.category} {relation} {names[j]}", "relation", relation, (j,)))
    for j, k in combinations(anchors, 2):
        if unique("between", [objs[j].box, objs[k].box]):
            text = f"the {target.category} between {names[j]} and {names[k]}"
            out.append(Expression(i, text, "relation", "between", (j, k)))
    return out


ABSENT_KINDS: tuple[str, ...] = ("category", "attribute", "ordinal", "relation")


def absent_expressions(scene: Scene, rng: np.random.Generator, heldout: bool = False) -> list[Expression]:
    """Expressions that name no object of the scene, at most one of each kind in ABSENT_KINDS, drawn by `rng`:
    a category the scene lacks ("the ball"), a colour its category lacks ("the blue cup" among red cups), an
    ordinal beyond the count ("the third cup from the left" of two cups), and a relation no object of the
    category satisfies ("the cup left of the plate" when every cup is clearly right of it). Splits other
    than held-out never name a held-out colour × category pair or (relation, category): the model must not
    learn that those compositions are never there."""
    objs = scene.objects
    present = {o.category for o in objs}
    pairs = {(o.colour, o.category) for o in objs}
    allowed = lambda colour, category: heldout or not catalog.is_heldout_pair(colour, category)  # noqa: E731
    options: dict[str, list[Expression]] = {kind: [] for kind in ABSENT_KINDS}
    for category in catalog.CATEGORIES:
        if category not in present:
            options["category"].append(Expression(None, f"the {category}", "category"))
            continue
        options["attribute"] += [Expression(None, f"the {colour} {category}", "attribute") for colour in catalog.COLOURS
                                 if (colour, category) not in pairs and allowed(colour, category)]  # fmt: skip
        count = sum(o.category == category for o in objs)
        beyond = [f"{catalog.ORDINAL_WORDS[k]} {category} from the {side}" for side in ("left", "right")
                  for k in range(max(count, 1), len(catalog.ORDINAL_WORDS))]  # fmt: skip
        options["ordinal"] += [Expression(None, f"the {text}", "ordinal") for text in beyond]
    names = {j: simple_phrase(objs, j) for j in range(len(objs))}
    for j, name in names.items():
        for category in sorted(present - {objs[j].category}):
            candidates = [o.box for o in objs if o.category == category]
            for relation in ("left of", "right of", "above", "below", "next to"):
                if name is None or not (heldout or (relation, category) not in catalog.HELDOUT_RELATIONS):
                    continue
                if all(relation_truth(relation, box, [objs[j].box], SCALE) is Truth.FALSE for box in candidates):
                    options["relation"].append(Expression(None, f"the {category} {relation} {name}", "relation",
                                                          relation, (j,)))  # fmt: skip
    if not heldout:  # an anchor named by a held-out pair is a held-out composition too
        options["relation"] = [e for e in options["relation"] if allowed(objs[e.anchors[0]].colour,
                                                                         objs[e.anchors[0]].category)]  # fmt: skip
    return [found[int(rng.integers(len(found)))] for found in options.values() if found]


def asked_category(text: str) -> str:
    """The category an expression asks for: its first category word ("the cup left of the plate" → cup)."""
    found = next((word for word in text.split() if word in catalog.CATEGORIES), None)
    if found is None:
        raise ValueError(f"{text!r} names no category")
    return found


def caption(scene: Scene) -> str:
    """ "a wooden table with a red cup, two blue balls and a white plate." (objects left to right)."""
    ordered = sorted(scene.objects, key=lambda o: o.center[0])
    groups = Counter((o.colour, o.category) for o in ordered)
    phrases = []
    for colour, category in dict.fromkeys((o.colour, o.category) for o in ordered):
        n = groups[(colour, category)]
        noun = category if n == 1 else catalog.PLURALS[category]
        count = catalog.NUMBER_WORDS[n - 1]
        if count == "a" and colour[0] in "aeiou":
            count = "an"
        phrases.append(f"{count} {colour} {noun}")
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"a {scene.style.table} table with {listed}."


def instructions(scene: Scene, rng: np.random.Generator, heldout: bool = False, count: int = 3) -> list[Instruction]:
    """Commands for the planner: "put the red cup left of the plate", "pick up the ball"."""
    objs = scene.objects
    names = {j: simple_phrase(objs, j) for j in range(len(objs))}
    named = [j for j, n in names.items() if n is not None]
    out: list[Instruction] = []
    for _ in range(count * 6):
        if len(out) == count or not named:
            break
        made = _one_instruction(objs, names, named, rng)
        if made is not None and made not in out and _in_split(objs, made.target, made.relation, made.anchors, heldout):
            out.append(made)
    return out


def _one_instruction(objs, names, named, rng: np.random.Generator) -> Instruction | None:
    target = named[int(rng.integers(len(named)))]
    candidates = [j for j in named if j != target]
    relation = catalog.INSTRUCTION_RELATIONS[int(rng.integers(len(catalog.INSTRUCTION_RELATIONS)))]
    if rng.random() < 0.12 or not candidates:
        return Instruction(f"pick up {names[target]}", "pick", target, None, ())
    verb = catalog.INSTRUCTION_VERBS[int(rng.integers(len(catalog.INSTRUCTION_VERBS)))]
    if relation == "between":
        if len(candidates) < 2:
            return None
        a, b = sorted(int(v) for v in rng.choice(candidates, size=2, replace=False))
        anchors, tail = (a, b), f"between {names[a]} and {names[b]}"
    else:
        if relation == "on":
            candidates = [
                j
                for j in candidates
                if objs[j].category in catalog.SUPPORT_CATEGORIES
                and objs[target].category not in catalog.SUPPORT_CATEGORIES
            ]
            if not candidates:
                return None
        a = candidates[int(rng.integers(len(candidates)))]
        anchors, tail = (a,), f"{relation} {names[a]}"
    boxes = [objs[j].box for j in anchors]
    if relation_truth(relation, objs[target].box, boxes, SCALE) is not Truth.FALSE:
        return None  # holds already, or nearly: not a clear command
    return Instruction(f"{verb} {names[target]} {tail}", "put", target, relation, anchors)
