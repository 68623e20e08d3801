"""Matching boxes to a layout's objects: `distinct` (drop boxes overlapping a better one) and `assign_boxes`
(the one-to-one matching of largest total IoU), on hand-made boxes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from echogen_ros.model.layout import EXACT_MATCH, Detection, assign_boxes, box_iou, distinct, label_groups

LEFT, RIGHT, FAR = (0.0, 0.0, 10.0, 10.0), (20.0, 0.0, 30.0, 10.0), (100.0, 100.0, 110.0, 110.0)


def test_two_alike_objects_are_matched_whatever_the_order() -> None:
    assert assign_boxes([LEFT, RIGHT], [RIGHT, LEFT]) == [1, 0]
    assert assign_boxes([LEFT, RIGHT], [LEFT, RIGHT]) == [0, 1]
    shifted = (21.0, 0.0, 31.0, 10.0)  # a near miss still goes to the object it overlaps
    assert assign_boxes([LEFT, RIGHT], [shifted, LEFT]) == [1, 0]


def test_the_largest_total_iou_wins_over_the_greedy_choice() -> None:
    a, b = (0.0, 0.0, 10.0, 10.0), (5.0, 0.0, 15.0, 10.0)
    found = [(2.0, 0.0, 12.0, 10.0), (0.0, 0.0, 10.0, 10.0)]  # found 0 overlaps a most, but found 1 is a
    assert assign_boxes([a, b], found) == [1, 0]


def test_fewer_found_boxes_leave_targets_unmatched() -> None:
    assert assign_boxes([LEFT, RIGHT, FAR], [RIGHT]) == [None, 0, None]
    assert assign_boxes([LEFT], []) == [None]
    assert assign_boxes([], [LEFT]) == []


def test_the_matching_is_exact_against_every_permutation() -> None:
    rng = np.random.default_rng(0)
    for targets, found in [(3, 3), (4, 2), (2, 4), (6, 5)]:
        corners = rng.uniform(0, 50, size=(targets + found, 2))
        boxes = [(float(x), float(y), float(x) + 20, float(y) + 20) for x, y in corners]
        wanted, got = boxes[:targets], boxes[targets:]
        match = assign_boxes(wanted, got)
        assert sum(j is not None for j in match) == min(targets, found)
        assert len({j for j in match if j is not None}) == min(targets, found)  # one to one
        total = sum(box_iou(wanted[t], got[j]) for t, j in enumerate(match) if j is not None)
        best = (
            max(
                sum(box_iou(wanted[t], got[j]) for j, t in enumerate(order))
                for order in itertools.permutations(range(targets), min(targets, found))
            )
            if found <= targets
            else max(
                sum(box_iou(wanted[t], got[j]) for t, j in enumerate(order))
                for order in itertools.permutations(range(found), targets)
            )
        )
        assert total == pytest.approx(best)


def test_many_boxes_are_matched_greedily() -> None:
    row = [(float(20 * i), 0.0, float(20 * i + 10), 10.0) for i in range(EXACT_MATCH + 2)]
    assert assign_boxes(row, row[::-1]) == list(range(len(row)))[::-1]


def test_distinct_keeps_the_best_of_overlapping_boxes() -> None:
    found = [
        Detection(LEFT, 0.9, "cup"),
        Detection((1.0, 0.0, 11.0, 10.0), 0.8, "cup"),  # the same cup read one bin off: dropped
        Detection(RIGHT, 0.5, "cup"),
        Detection(FAR, 0.1, "cup"),
    ]
    assert [d.box for d in distinct(found)] == [LEFT, RIGHT, FAR]
    assert distinct([]) == []


def test_label_groups_keep_first_seen_order() -> None:
    groups = label_groups(["red cup", "plate", "red cup", "ball", "plate"])
    assert groups == {"red cup": [0, 2], "plate": [1, 4], "ball": [3]}
    assert list(groups) == ["red cup", "plate", "ball"]
    assert label_groups([]) == {}
