"""Evaluation of frozen encoders: linear, kNN and attentive probes, collapse statistics.

``mambajepa eval probe --checkpoint RUN`` (:mod:`mambajepa.eval.commands`) runs them on a JEPA
run and on its random initialisation and writes ``probe.json`` (:mod:`mambajepa.eval.probe`).
"""

from mambajepa.eval.attentive_probe import AttentiveProbe, attentive_probe_accuracy, fit_attentive_probe
from mambajepa.eval.collapse import effective_rank, feature_std, is_collapsed
from mambajepa.eval.features import FeatureSet, extract_features
from mambajepa.eval.knn import knn_accuracy, knn_predict
from mambajepa.eval.linear_probe import LinearProbe, fit_linear_probe, linear_probe_accuracy

__all__ = [
    "AttentiveProbe",
    "FeatureSet",
    "LinearProbe",
    "attentive_probe_accuracy",
    "effective_rank",
    "extract_features",
    "feature_std",
    "fit_attentive_probe",
    "fit_linear_probe",
    "is_collapsed",
    "knn_accuracy",
    "knn_predict",
    "linear_probe_accuracy",
]
