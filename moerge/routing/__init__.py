"""Routing methods: global gating functions over experts, fit from their statistics.

Each method is one module that registers one class by name, per input (`Router`), per
token (`TokenRouter`) or per task (LoraHub); this package imports every method module
explicitly so that importing it fills the registry.
"""

from moerge.routing import arrow, centroid, gaussian, learned_gate, lorahub, phatgoose, retrieval
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
from moerge.routing.lorahub import LoraHub, LoraHubConfig
from moerge.routing.registry import (
    ROUTERS,
    TASK_ROUTERS,
    TOKEN_ROUTERS,
    UnknownRouterError,
    all_methods,
    create,
    get,
    register,
)
from moerge.routing.retrieval import RetrievalConfig, RetrievalRouter
from moerge.routing.serialize import RouterFormatError, dumps, loads
from moerge.routing.token import TokenRouter, TokenRouterConfig

METHOD_MODULES = (centroid, gaussian, learned_gate, retrieval, arrow, phatgoose, lorahub)

__all__ = [
    "ROUTERS",
    "TASK_ROUTERS",
    "TOKEN_ROUTERS",
    "LoraHub",
    "LoraHubConfig",
    "RetrievalConfig",
    "RetrievalRouter",
    "TokenRouter",
    "TokenRouterConfig",
    "all_methods",
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
