"""Instruction parsing: "put the red cup left of the blue plate" → (action, target, relation, anchors).

Phrases keep their attributes and relations ("the cup left of the plate" stays one target phrase).
When a command contains several relation words, the last one that leaves two well-formed phrases is
the command's relation: "put the cup left of the plate next to the bowl" moves "the cup left of the
plate" next to "the bowl". Image-space conventions: "behind" = above, "in front of" = below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class PlanningError(ValueError):
    """An instruction or scene the planner cannot handle, with what is supported."""


SUPPORTED = (
    "supported: 'put|place|move|set X left of|right of|above|below|next to|on Y', "
    "'put X between Y and Z', 'pick up X', 'find X'"
)
PUT_VERBS = ("put", "place", "move", "set", "bring", "push")
PICK_PATTERN = re.compile(r"^(?:pick up|pick|grab|take|lift)\s+(?P<np>.+?)(?:\s+up)?$")
FIND_PATTERN = re.compile(r"^(?:find|locate|where is|show me|point to|look for|point at)\s+(?P<np>.+)$")
SYNONYMS = (  # longer phrases first
    (r"\bto the left of\b", "left of"),
    (r"\bon the left of\b", "left of"),
    (r"\bto the right of\b", "right of"),
    (r"\bon the right of\b", "right of"),
    (r"\bon top of\b", "on"),
    (r"\bonto\b", "on"),
    (r"\bin front of\b", "below"),
    (r"\bbehind\b", "above"),
    (r"\bbeside\b", "next to"),
    (r"\bclose to\b", "next to"),
    (r"\bnear\b", "next to"),
    (r"\bunder\b", "below"),
    (r"\bbeneath\b", "below"),
    (r"\bover\b", "above"),
)
BINARY_RELATIONS = ("left of", "right of", "above", "below", "next to", "on")
PHRASE_LEAD = re.compile(r"^(the|a|an|that|this|my|your)\b")


@dataclass(frozen=True)
class Command:
    action: str  # "put" | "pick" | "find"
    target: str  # referring phrase, e.g. "the red cup"
    relation: str | None = None
    anchors: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        if self.action == "put":
            anchors = " and ".join(self.anchors)
            return f"put {self.target} {self.relation} {anchors}"
        return f"{'pick up' if self.action == 'pick' else 'find'} {self.target}"


def normalise(text: str) -> str:
    text = text.lower().strip()
    text = re.sub(r"[^\w\s]", " ", text)
    text = re.sub(r"\b(please|can you|could you|now|carefully)\b", " ", text)
    for pattern, replacement in SYNONYMS:
        text = re.sub(pattern, replacement, text)
    return re.sub(r"\s+", " ", text).strip()


def _phrase(text: str) -> str | None:
    text = text.strip()
    if not text or not PHRASE_LEAD.match(text) and len(text.split()) > 4:
        return None
    return text if PHRASE_LEAD.match(text) else f"the {text}"


def parse_command(instruction: str) -> Command:
    """Parse an instruction; raise PlanningError saying what is supported when it does not fit."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise PlanningError(f"empty instruction; {SUPPORTED}")
    text = normalise(instruction)
    if (m := FIND_PATTERN.match(text)) and (target := _phrase(m["np"])):
        return Command("find", target)
    if (m := PICK_PATTERN.match(text)) and (target := _phrase(m["np"])):
        return Command("pick", target)
    verb, _, rest = text.partition(" ")
    if verb in PUT_VERBS and rest:
        command = _parse_put(rest)
        if command is not None:
            return command
    raise PlanningError(f"cannot parse {instruction!r}; {SUPPORTED}")


def _parse_put(rest: str) -> Command | None:
    words = rest.split()
    # "between Y and Z" binds two anchors; try the last "between" first
    for i in reversed([k for k, w in enumerate(words) if w == "between"]):
        target, tail = " ".join(words[:i]), words[i + 1 :]
        for j in reversed([k for k, w in enumerate(tail) if w == "and"]):
            a, b = _phrase(" ".join(tail[:j])), _phrase(" ".join(tail[j + 1 :]))
            if _phrase(target) and a and b:
                return Command("put", _phrase(target), "between", (a, b))
    spans = []
    for relation in BINARY_RELATIONS:
        spans += [(m.start(), m.end(), relation) for m in re.finditer(rf"\b{relation}\b", rest)]
    for start, end, relation in sorted(spans, reverse=True):
        target, anchor = _phrase(rest[:start]), _phrase(rest[end:])
        if target and anchor:
            return Command("put", target, relation, (anchor,))
    return None
