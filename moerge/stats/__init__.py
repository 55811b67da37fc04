"""Routing statistics: what a contributor computes from its data for routing.

Each kind has a name, the tensors it holds and their required shapes. New kinds
are added here and need no database migration: the registry stores any kind
as (kind, blob, small JSON).
"""

from moerge.stats.kinds import KINDS, StatsKind, StatsShapeError, validate_stats
from moerge.stats.moments import Moments, compute_moments

__all__ = ["KINDS", "Moments", "StatsKind", "StatsShapeError", "compute_moments", "validate_stats"]
