"""Routing methods: global gating functions over experts, fit from their statistics.

Each method is one module that registers one Router class by name; this package imports
every method module explicitly so that importing it fills the registry.
"""

from moerge.routing import centroid, gaussian, learned_gate
from moerge.routing.abstain import AbstainRule, ExpertGaussians
from moerge.routing.base import (
    ExpertProfile,
    Router,
    RouterConfig,
    Routing,
    RoutingQuery,
    label_match,
    synthetic_metrics,
)
from moerge.routing.centroid import CentroidConfig, CentroidRouter
from moerge.routing.gaussian import GaussianConfig, GaussianRouter
from moerge.routing.learned_gate import LearnedGateConfig, LearnedGateRouter
from moerge.routing.registry import ROUTERS, UnknownRouterError, create, get, register
from moerge.routing.serialize import RouterFormatError, dumps, loads

METHOD_MODULES = (centroid, gaussian, learned_gate)

__all__ = [
    "ROUTERS",
    "METHOD_MODULES",
    "AbstainRule",
    "CentroidConfig",
    "CentroidRouter",
    "ExpertGaussians",
    "ExpertProfile",
    "GaussianConfig",
    "GaussianRouter",
    "LearnedGateConfig",
    "LearnedGateRouter",
    "Router",
    "RouterConfig",
    "RouterFormatError",
    "Routing",
    "RoutingQuery",
    "UnknownRouterError",
    "create",
    "dumps",
    "get",
    "label_match",
    "loads",
    "register",
    "synthetic_metrics",
]
