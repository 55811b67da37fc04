import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from moerge.stats import Moments, StatsShapeError, compute_moments, validate_stats
from moerge.stats.moments import load_moments, save_moments

D = 16


def unit_rows(n: int, d: int = D, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)) + 0.5
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return unit_rows(200)


def test_full_moments_match_numpy(x: np.ndarray) -> None:
    m = compute_moments(x)
    assert m.form == "full" and m.count == 200
    np.testing.assert_allclose(m.sum, x.sum(0), rtol=1e-5, atol=1e-5)
    assert m.outer is not None
    np.testing.assert_allclose(m.outer, x.T @ x, rtol=1e-5, atol=1e-5)
    for array in (m.sum, m.outer):
        assert array.dtype == np.float32


def test_mean_and_covariance_match_numpy(x: np.ndarray) -> None:
    m = compute_moments(x)
    np.testing.assert_allclose(m.mean(), x.mean(0), atol=1e-6)
    np.testing.assert_allclose(m.covariance(), np.cov(x, rowvar=False, bias=True), atol=1e-6)
    np.testing.assert_allclose(m.second_moment(), x.T @ x / len(x), atol=1e-6)


def test_covariance_is_symmetric_and_positive_semidefinite() -> None:
    m = compute_moments(unit_rows(3), form="diag")  # diag(E[xx]) - mu mu^T is indefinite
    cov = m.covariance()
    np.testing.assert_array_equal(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > -1e-9


def test_diag_form_keeps_the_diagonal_exactly(x: np.ndarray) -> None:
    m = compute_moments(x, form="diag")
    assert m.outer is None and m.factors is None and m.diag is not None
    np.testing.assert_allclose(m.second_moment(), np.diag((x**2).mean(0)), atol=1e-6)


@pytest.mark.parametrize("rank", [1, 4, 8, D])
def test_lowrank_form_reconstructs_within_the_eckart_young_bound(x: np.ndarray, rank: int) -> None:
    m = compute_moments(x, form="lowrank", rank=rank)
    assert m.factors is not None and m.factors.shape == (D, rank)
    exact = x.T @ x
    approx = m.second_moment() * len(x)
    np.testing.assert_allclose(np.diag(approx), np.diag(exact), rtol=1e-5, atol=1e-4)
    tail = np.sort(np.linalg.eigvalsh(exact))[: D - rank]  # the discarded eigenvalues
    bound = float(np.sqrt((tail**2).sum()))  # ||M - M_k||_F bounds the off-diagonal error
    assert np.linalg.norm(approx - exact) <= bound + 1e-3


def test_auto_form_is_full_up_to_1024_dims_then_lowrank() -> None:
    assert compute_moments(unit_rows(4, 32)).form == "full"
    big = compute_moments(unit_rows(4, 1025), rank=3)
    assert big.form == "lowrank" and big.factors is not None and big.factors.shape == (1025, 3)


@pytest.mark.parametrize("form", ["full", "diag", "lowrank"])
def test_tensors_pass_the_kind_check_and_round_trip(x: np.ndarray, form: str) -> None:
    m = compute_moments(x, form=form, rank=4)
    tensors, meta = m.to_tensors()
    assert meta == {"form": form, "noise_multiplier": 0.0, "version": 1}
    validate_stats("embedding_moments", {k: v.shape for k, v in tensors.items()}, meta, D)
    back = Moments.from_tensors(tensors, meta)
    np.testing.assert_array_equal(back.second_moment(), m.second_moment())
    assert back.count == m.count and back.form == form


@pytest.mark.parametrize("form", ["full", "lowrank"])
def test_save_and_load_round_trip(x: np.ndarray, tmp_path: Path, form: str) -> None:
    path = tmp_path / "embedding_moments.safetensors"
    m = compute_moments(x, form=form, rank=4, noise_multiplier=0.5, seed=3)
    save_moments(m, path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    with safe_open(str(path), framework="np") as handle:
        header = handle.metadata()
    assert json.loads(header["form"]) == form and json.loads(header["version"]) == 1
    back = load_moments(path)
    assert back.noise_multiplier == 0.5 and back.count == pytest.approx(m.count)
    np.testing.assert_array_equal(back.sum, m.sum)
    np.testing.assert_array_equal(back.second_moment(), m.second_moment())


def test_load_refuses_a_file_that_is_not_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ValueError, match="safetensors"):
        load_moments(path)


def test_from_tensors_refuses_wrong_shapes(x: np.ndarray) -> None:
    tensors, meta = compute_moments(x).to_tensors()
    tensors["outer"] = tensors["outer"][:, :-1]
    with pytest.raises(StatsShapeError, match="outer"):
        Moments.from_tensors(tensors, meta)


def test_dp_noise_has_the_requested_scale_and_is_seeded() -> None:
    x, sigma = unit_rows(100, 64), 2.0
    clean = compute_moments(x)
    noisy = compute_moments(x, noise_multiplier=sigma, seed=7)
    assert noisy.outer is not None and clean.outer is not None
    delta = noisy.outer.astype(np.float64) - clean.outer
    np.testing.assert_allclose(delta, delta.T, atol=1e-4)  # the noise is symmetric
    upper = delta[np.triu_indices(64)]  # 2080 independent draws
    assert upper.std() == pytest.approx(sigma, rel=0.06)
    assert abs(upper.mean()) < 0.2
    sum_noise = noisy.sum.astype(np.float64) - clean.sum
    assert sum_noise.std() == pytest.approx(sigma, rel=0.3)
    assert noisy.count != 100 and noisy.noise_multiplier == sigma
    again = compute_moments(x, noise_multiplier=sigma, seed=7)
    np.testing.assert_array_equal(again.outer, noisy.outer)
    assert again.count == noisy.count
    other = compute_moments(x, noise_multiplier=sigma, seed=8)
    assert not np.array_equal(other.second_moment(), noisy.second_moment())


@pytest.mark.parametrize(
    ("embeddings", "kwargs", "message"),
    [
        (np.zeros((0, D)), {}, "empty"),
        (np.ones(D), {}, "2-D"),
        (np.full((2, D), np.nan), {}, "NaN"),
        (2 * unit_rows(5), {"noise_multiplier": 1.0}, "unit-norm"),
        (unit_rows(5), {"noise_multiplier": -1.0}, "noise_multiplier"),
        (unit_rows(5), {"form": "cube"}, "unknown moments form"),
        (unit_rows(5), {"form": "lowrank", "rank": 0}, "rank"),
    ],
)
def test_bad_inputs_raise_clear_errors(embeddings: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_moments(embeddings, **kwargs)


def test_a_non_positive_count_cannot_be_normalised() -> None:
    m = Moments(count=0.0, sum=np.zeros(D, np.float32), form="diag", diag=np.ones(D, np.float32))
    with pytest.raises(ValueError, match="non-positive count"):
        m.mean()
