import pytest

from moerge.stats import KINDS, StatsShapeError, validate_stats


@pytest.mark.parametrize(
    ("shapes", "meta"),
    [
        ({"count": (), "sum": (8,), "outer": (8, 8)}, {}),
        ({"count": (1,), "sum": (8,), "diag": (8,)}, {"form": "diag"}),
        ({"count": (), "sum": (8,), "factors": (8, 3), "diag": (8,)}, {"form": "lowrank"}),
    ],
)
def test_embedding_moments_accepts_each_form(shapes: dict, meta: dict) -> None:
    validate_stats("embedding_moments", shapes, meta, 8)


@pytest.mark.parametrize(
    ("shapes", "meta", "message"),
    [
        ({"sum": (8,), "outer": (8, 8)}, {}, "'count' must be a scalar"),
        ({"count": (), "sum": (7,), "outer": (8, 8)}, {}, "'sum' has shape [7]"),
        ({"count": (), "sum": (8,), "outer": (8, 7)}, {}, "'outer' has shape [8, 7]"),
        ({"count": (), "sum": (8,), "diag": (8,)}, {"form": "cube"}, "unknown form"),
        (
            {"count": (), "sum": (8,), "factors": (9, 2), "diag": (8,)},
            {"form": "lowrank"},
            "factors",
        ),
        ({"count": (), "sum": (8,), "outer": (8, 8), "x": (1,)}, {}, "unexpected tensors"),
    ],
)
def test_embedding_moments_refuses_wrong_shapes(shapes: dict, meta: dict, message: str) -> None:
    with pytest.raises(StatsShapeError) as info:
        validate_stats("embedding_moments", shapes, meta, 8)
    assert message in str(info.value)


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(StatsShapeError, match="embedding_moments"):
        validate_stats("nonsense", {}, {}, 8)
    assert "embedding_moments" in KINDS
