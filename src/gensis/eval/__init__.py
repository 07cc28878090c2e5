"""Evaluation of frozen encoders: features, weighted kNN (DINO), linear probe."""

from gensis.eval.features import extract_features
from gensis.eval.knn import knn_accuracy, knn_predict
from gensis.eval.linear import linear_probe

__all__ = ["extract_features", "knn_accuracy", "knn_predict", "linear_probe"]
