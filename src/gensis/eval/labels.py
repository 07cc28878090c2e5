"""Train and test labels matched by class name, not by index.

Two datasets number their classes independently (sorted folder names, or an .npz's own
labels), so index 3 of a test set missing one class is another class than index 3 of the
train set. Test labels are mapped onto train labels through the class names; test classes
the train set lacks are left out (nothing could predict them), with a warning, and sets with
no class in common are refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from gensis.data import ImageData
from gensis.errors import DataError

log = logging.getLogger("gensis.eval")


@dataclass
class AlignedLabels:
    train: torch.Tensor  # (N_train,) train class indices
    test: torch.Tensor  # (kept,) test labels in the train's numbering
    keep: torch.Tensor  # (N_test,) bool: test images whose class the train set has
    num_classes: int


def _names(data: ImageData) -> list[str]:
    assert data.labels is not None
    if data.class_names is not None:
        return list(data.class_names)
    return [str(i) for i in range(int(data.labels.max()) + 1)]


def _some(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def align_labels(train: ImageData, test: ImageData) -> AlignedLabels:
    """Map ``test``'s labels onto ``train``'s by class name (one-line DataError when disjoint)."""
    if train.labels is None or test.labels is None:
        raise DataError("evaluation needs labelled train and test images")
    train_names, test_names = _names(train), _names(test)
    index = {name: i for i, name in enumerate(train_names)}
    present = sorted({test_names[i] for i in test.labels.unique().tolist()})
    common = [n for n in present if n in index]
    if not common:
        raise DataError(
            f"{test.source}: no class in common with {train.source} "
            f"(test: {_some(present)}; train: {_some(train_names)})"
        )
    absent_train = [n for n in present if n not in index]
    if absent_train:
        log.warning("test classes absent from %s are left out of the scores: %s", train.source, _some(absent_train))
    used = {train_names[i] for i in train.labels.unique().tolist()}
    absent_test = sorted(used - set(present))
    if absent_test:
        log.warning("train classes absent from %s (scored on the others): %s", test.source, _some(absent_test))
    lookup = torch.tensor([index.get(n, -1) for n in test_names], dtype=torch.long)
    mapped = lookup[test.labels]
    keep = mapped >= 0
    return AlignedLabels(train.labels, mapped[keep], keep, len(train_names))
