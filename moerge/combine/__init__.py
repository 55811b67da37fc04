"""Combinations: how the experts a router chose act together on an input."""

from moerge.combine import output_ensemble, parameter_merge, token_mixture, top1
from moerge.combine.base import Combination, Prediction, mix_outputs
from moerge.combine.registry import COMBINATIONS, get, register

__all__ = [
    "COMBINATIONS",
    "Combination",
    "Prediction",
    "get",
    "mix_outputs",
    "output_ensemble",
    "parameter_merge",
    "token_mixture",
    "register",
    "top1",
]
