"""Tests of the DSL estimator against closed forms, statsmodels and a simulation with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import special, stats

from ifl.stats.dsl import (
    DSLResult,
    _combine_splits,
    _fit_logistic,
    design_matrix,
    dsl,
    gold_only,
    naive_proxy,
)

TRUE_SLOPE = -0.2  # effect of the binary regressor on P(gold = 1)


def _simulate(rng: np.random.Generator, n: int = 2000, n_lab: float = 300.0) -> pd.DataFrame:
    """Gold outcome from a linear probability model; proxy misses more on short texts.

    Short texts (``short``) are more common with ``image = 1``, so the proxy's error is
    correlated with the regressor and the naive regression on the proxy is biased.
    Labels are drawn by Bernoulli sampling with known unequal probabilities ``pi``.
    """
    image = rng.integers(0, 2, n)
    short = rng.binomial(1, np.where(image == 1, 0.7, 0.2))
    gold = rng.binomial(1, 0.7 + TRUE_SLOPE * image)
    miss = rng.random(n) < 0.05 + 0.5 * short  # a correct reply read as unfaithful
    proxy = np.where(miss & (gold == 1), 0, gold)
    weight = 1.0 + 2.0 * short
    pi = n_lab * weight / weight.sum()
    labelled = rng.random(n) < pi
    return pd.DataFrame(
        {
            "fidelity": np.where(labelled, gold, np.nan),
            "image": image,
            "short": short,
            "proxy": proxy,
            "pi": pi,
        }
    )


def _frame(seed: int = 3, n: int = 600) -> pd.DataFrame:
    """Small data set with a float regressor, clusters and a precomputed prediction."""
    rng = np.random.default_rng(seed)
    df = _simulate(rng, n=n, n_lab=150)
    df["x"] = rng.normal(size=n)
    df["cl"] = rng.integers(0, 40, n)
    df["yhat"] = np.clip(0.2 + 0.6 * df["proxy"] + 0.1 * rng.normal(size=n), 0, 1)
    return df


def _direct(df: pd.DataFrame, cluster: str | None) -> tuple[np.ndarray, np.ndarray]:
    """DSL written out by hand: rescaled pi, pseudo-outcome, OLS, HC0 / CR0 sandwich."""
    n = len(df)
    X = np.column_stack([np.ones(n), df["image"], df["x"], df["image"] * df["x"]])
    r = df["fidelity"].notna().to_numpy()
    y = df["fidelity"].fillna(0).to_numpy()
    pi = df["pi"].to_numpy() * (r.sum() / n) / df["pi"].mean()
    yhat = df["yhat"].to_numpy()
    ytilde = yhat + r / pi * (y - yhat)
    beta = np.linalg.solve(X.T @ X, X.T @ ytilde)
    resid = ytilde - X @ beta
    meat = np.zeros((4, 4))
    if cluster is None:
        for i in range(n):
            meat += resid[i] ** 2 * np.outer(X[i], X[i])
    else:
        for g in np.unique(df[cluster]):
            rows = (df[cluster] == g).to_numpy()
            score = X[rows].T @ resid[rows]
            meat += np.outer(score, score)
    bread = np.linalg.inv(X.T @ X)
    return beta, np.sqrt(np.diag(bread @ meat @ bread))


FORMULA = "fidelity ~ image + x + image:x"


@pytest.mark.parametrize("cluster", [None, "cl"])
def test_dsl_with_prediction_equals_direct_computation(cluster: str | None) -> None:
    df = _frame()
    res = dsl(df, FORMULA, prediction="yhat", cluster=cluster)
    beta, se = _direct(df, cluster)
    assert list(res.table["term"]) == ["(Intercept)", "image", "x", "image:x"]
    np.testing.assert_allclose(res.table["estimate"], beta, rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.table["se"], se, rtol=0, atol=1e-8)
    z = beta / se
    np.testing.assert_allclose(res.table["p_value"], 2 * stats.norm.sf(np.abs(z)), atol=1e-10)
    np.testing.assert_allclose(
        res.table["ci_high"] - res.table["ci_low"], 2 * 1.959964 * se, atol=1e-6
    )
    assert (res.n, res.n_labelled, res.method) == (len(df), df["fidelity"].notna().sum(), "dsl")


def test_zero_prediction_learner_gives_horvitz_thompson() -> None:
    """With Yhat = 0 the pseudo-outcome is R/pi * Y, whatever the folds."""
    df = _frame()
    df["zero"] = 0.0
    res = dsl(df, FORMULA, surrogate="proxy", learner=lambda a, b, c: np.zeros(len(c)))
    ref = dsl(df, FORMULA, prediction="zero")
    pd.testing.assert_frame_equal(res.table, ref.table)


def test_cross_fitting_keeps_clusters_out_of_their_training_fold() -> None:
    df = _frame()
    seen: list[tuple[set[float], set[float]]] = []

    def spy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        seen.append((set(x_train[:, 1]), set(x_test[:, 1])))
        assert not np.isnan(y_train).any()
        return np.full(len(x_test), y_train.mean())

    dsl(df, FORMULA, surrogate="proxy", covariates=["cl"], cluster="cl", learner=spy, n_folds=4)
    assert len(seen) == 4
    assert all(not (train & test) for train, test in seen)
    assert set().union(*(test for _, test in seen)) == set(df["cl"].astype(float))


def test_learners_run_and_agree_roughly() -> None:
    df = _frame(n=800)
    estimates = [
        dsl(df, "fidelity ~ image", surrogate="proxy", covariates=["short"], learner=name)
        .table["estimate"]
        .iloc[1]
        for name in ("logistic", "linear", "forest")
    ]
    assert np.ptp(estimates) < 0.1


def test_logistic_learner_matches_sklearn() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    X = np.column_stack([rng.integers(0, 2, 300), rng.normal(size=300), np.ones(300)])
    y = (rng.random(300) < special.expit(-0.5 + 1.5 * X[:, 0] + X[:, 1])).astype(float)
    X_new = rng.normal(size=(50, 3))
    ref = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=10_000))
    expected = ref.fit(X, y).predict_proba(X_new)[:, 1]
    np.testing.assert_allclose(_fit_logistic(X, y, X_new), expected, atol=1e-6)
    np.testing.assert_array_equal(_fit_logistic(X, np.ones(300), X_new), np.ones(50))


def test_coverage_and_bias_in_simulation_with_known_truth() -> None:
    rng = np.random.default_rng(20240702)
    n_sims = 2000
    est = np.empty(n_sims)
    covered = np.empty(n_sims, dtype=bool)
    naive_covered = np.empty(n_sims, dtype=bool)
    for s in range(n_sims):
        df = _simulate(rng)
        row = dsl(df, "fidelity ~ image", surrogate="proxy", covariates=["short"], seed=s).table
        est[s] = row["estimate"].iloc[1]
        covered[s] = row["ci_low"].iloc[1] <= TRUE_SLOPE <= row["ci_high"].iloc[1]
        naive = naive_proxy(df, "fidelity ~ image", surrogate="proxy").table
        naive_covered[s] = naive["ci_low"].iloc[1] <= TRUE_SLOPE <= naive["ci_high"].iloc[1]
    mc_se = est.std(ddof=1) / np.sqrt(n_sims)
    assert abs(est.mean() - TRUE_SLOPE) < 3 * mc_se
    assert 0.93 <= covered.mean() <= 0.97
    assert naive_covered.mean() < 0.8


def test_several_sample_splits_are_finite() -> None:
    df = _frame()
    res = dsl(df, FORMULA, surrogate="proxy", covariates=["short"], n_splits=5, seed=1)
    assert np.isfinite(res.table[["estimate", "se", "p_value"]].to_numpy()).all()
    assert res.table["se"].gt(0).all()


def test_combine_splits_closed_form() -> None:
    betas = np.array([[1.0, 0.0], [2.0, 0.5], [4.0, 1.0]])
    ses = np.array([[0.1, 0.2], [0.3, 0.2], [0.2, 0.2]])
    beta, se = _combine_splits(betas, ses)
    np.testing.assert_allclose(beta, [2.0, 0.5])
    # column 0: se^2 + dev^2 = 1.01, 0.09, 4.04 -> median 1.01
    np.testing.assert_allclose(se, [np.sqrt(1.01), np.sqrt(0.04 + 0.25)])


def test_gold_only_matches_statsmodels_wls() -> None:
    df = _frame()
    lab = df.dropna(subset=["fidelity"])
    X = sm.add_constant(np.column_stack([lab["image"], lab["x"], lab["image"] * lab["x"]]))
    fit = sm.WLS(lab["fidelity"], X, weights=1 / lab["pi"]).fit(cov_type="HC0")
    res = gold_only(df, FORMULA)
    np.testing.assert_allclose(res.table["estimate"], fit.params, atol=1e-10)
    np.testing.assert_allclose(res.table["se"], fit.bse, atol=1e-10)
    assert res.n == res.n_labelled == len(lab)


def test_naive_proxy_matches_statsmodels_ols() -> None:
    df = _frame()
    X = sm.add_constant(np.column_stack([df["image"], df["x"], df["image"] * df["x"]]))
    fit = sm.OLS(df["proxy"], X).fit(cov_type="HC0")
    res = naive_proxy(df, FORMULA, surrogate="proxy")
    np.testing.assert_allclose(res.table["estimate"], fit.params, atol=1e-10)
    np.testing.assert_allclose(res.table["se"], fit.bse, atol=1e-10)
    clustered = naive_proxy(df, FORMULA, surrogate="proxy", cluster="cl")
    np.testing.assert_allclose(clustered.table["estimate"], fit.params, atol=1e-10)
    assert isinstance(res, DSLResult) and res.method == "naive_proxy"


def test_design_matrix_terms_and_categoricals() -> None:
    df = pd.DataFrame(
        {"y": [1.0, np.nan, 0.0, 1.0], "a": [0, 1, 1, 0], "lang": ["zh", "de", "en", "de"]}
    )
    y, X, names = design_matrix(df, "y ~ a + a:C(lang, Treatment('en'))")
    assert names == ["(Intercept)", "a", "a:langde", "a:langzh"]
    np.testing.assert_array_equal(X[:, 2], [0, 1, 0, 0])
    assert np.isnan(y[1])
    _, X, names = design_matrix(df, "y ~ a*lang - 1")
    assert names == ["a", "langen", "langzh", "a:langen", "a:langzh"]
    assert X.shape == (4, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"formula": "fidelity ~ image + nope"}, "nope"),
        ({"formula": "ghost ~ image"}, "ghost"),
        ({"formula": "fidelity image"}, "fidelity image"),
        ({"surrogate": "missing_proxy"}, "missing_proxy"),
        ({"pi": "bad_pi"}, "bad_pi"),
        ({"pi": "zero_pi"}, "zero_pi"),
        ({"learner": "boosting"}, "boosting"),
    ],
)
def test_bad_input_raises_value_error_naming_it(kwargs: dict, message: str) -> None:
    df = _frame()
    df["bad_pi"] = df["pi"] + 1.0
    df["zero_pi"] = df["pi"].where(df.index != 5, 0.0)
    args = {"formula": "fidelity ~ image", "surrogate": "proxy", **kwargs}
    with pytest.raises(ValueError, match=message):
        dsl(df, args.pop("formula"), **args)


def test_gold_only_rejects_pi_outside_unit_interval() -> None:
    df = _frame()
    df["pi"] = df["pi"] * 10
    with pytest.raises(ValueError, match="'pi'"):
        gold_only(df, FORMULA)
