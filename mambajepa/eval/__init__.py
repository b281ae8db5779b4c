"""Evaluation of trained runs: registered evaluations above the methods, and their building blocks.

:func:`~mambajepa.eval.runs.load_run` rebuilds any method's run from its checkpoint. Evaluations
register by name (:func:`mambajepa.registry.register_evaluation`, :class:`Evaluation`) and say
which methods offer them; ``mambajepa eval NAME --checkpoint RUN`` (:mod:`mambajepa.eval.commands`)
runs one. ``probe`` (:mod:`mambajepa.eval.probe`) fits linear, kNN and attentive probes and
collapse statistics on the features of every method that implements ``encode``, against its
random initialisation, and writes ``probe.json``. Method-specific evaluations: ``vljepa``
(:mod:`mambajepa.eval.vljepa`), ``recon`` (NF-JEPA reconstructions beside interpolation,
:mod:`mambajepa.eval.recon`), ``hybrid`` (perplexity beside an n-gram, image -> program,
:mod:`mambajepa.eval.hybrid`) and ``plan`` (latent MPC in Two Rooms beside random, greedy and
oracle policies, :mod:`mambajepa.eval.plan`).
"""

from mambajepa.eval.attentive_probe import AttentiveProbe, attentive_probe_accuracy, fit_attentive_probe
from mambajepa.eval.base import Evaluation
from mambajepa.eval.collapse import effective_rank, feature_std, is_collapsed
from mambajepa.eval.features import FeatureSet, extract_features
from mambajepa.eval.knn import knn_accuracy, knn_predict
from mambajepa.eval.linear_probe import LinearProbe, fit_linear_probe, linear_probe_accuracy
from mambajepa.eval.runs import Run, load_run

__all__ = [
    "AttentiveProbe",
    "Evaluation",
    "FeatureSet",
    "LinearProbe",
    "Run",
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
    "load_run",
]
