"""Design-based supervised learning (DSL, Egami et al. 2023) for linear regression.

Mirrors the linear-model path of the R package ``dsl`` (naoki-egami/dsl):

* a row is *labelled* when its gold outcome (the formula's left-hand side) is present;
* sampling probabilities are rescaled as ``pi * (n_labelled / N) / mean(pi)``;
* the outcome model is fitted on labelled rows only (unweighted) with K-fold cross-fitting
  (folds drawn over rows, or over clusters when ``cluster`` is given): each fold is predicted
  by a model trained on the labelled rows of the other folds; its features are the
  surrogate(s), the covariates and, by default (``x_features=True``), the regressors X. R uses
  exactly its ``prediction`` + ``feature`` columns, so the default equals an R call that also
  lists the regressors in ``feature``;
* pseudo-outcome ``Ytilde = Yhat + R / pi * (Y - Yhat)``; the estimate is least squares of
  ``Ytilde`` on X, the variance the sandwich with HC0 meat (CR0 when clustered), no
  small-sample factor;
* with several sample splits: median of the estimates and
  ``se = sqrt(median(se_s^2 + (b_s - median)^2))``.

Differences from R, on purpose: p-values are two-sided (R's summary prints one-sided ones);
the default number of sample splits is 1 (R: 10); the default learner is a logistic
regression (R: a grf random forest; ``learner="forest"`` is the closest substitute). Any
learner keeps DSL unbiased, only the efficiency changes. Rows with a missing value in a
regressor, feature, ``pi`` or cluster are dropped, as in R.

Formulas: ``y ~ a + b + a:b`` with an intercept unless ``- 1`` or ``+ 0``; ``a*b`` expands to
``a + b + a:b``; terms are ordered by degree as R does. Numeric (or boolean) columns enter as
they are; string / categorical columns, or any column wrapped as ``C(col)`` or
``C(col, Treatment('ref'))``, enter as treatment dummies (reference: the given level, else the
first category / sorted level) named R-style, ``col`` + level. Interactions are products of
the factors' columns. Categorical factors always drop their reference level: unlike R, they are
not re-coded to full dummies when a main effect or the intercept is absent, so keep main
effects and the intercept in formulas with categorical columns.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

__all__ = ["DSLResult", "design_matrix", "dsl", "gold_only", "naive_proxy"]

Learner = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

INTERCEPT = "(Intercept)"
_Z975 = float(stats.norm.ppf(0.975))
_C_RE = re.compile(
    r"^C\(\s*(?P<col>[^,()]+?)\s*"
    r"(?:,\s*Treatment\(\s*(?:reference\s*=\s*)?(?P<q>['\"])(?P<ref>.*?)(?P=q)\s*\)\s*)?\)$"
)


@dataclass
class DSLResult:
    """Regression table of a DSL (or baseline) fit.

    ``table`` has one row per term with columns term, estimate, se, p_value (two-sided
    normal), ci_low, ci_high (95% normal interval).
    """

    table: pd.DataFrame
    n: int
    n_labelled: int
    method: str


# ---------------------------------------------------------------------------------------------
# formula parsing
# ---------------------------------------------------------------------------------------------


def _split_top(text: str, seps: str) -> list[tuple[str, str]]:
    """Split ``text`` at separators outside parentheses and quotes; return (sep, piece) pairs."""
    out: list[tuple[str, str]] = []
    depth, quote, start, sep = 0, "", 0, "+"
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch in seps:
            out.append((sep, text[start:i].strip()))
            sep, start = ch, i + 1
    out.append((sep, text[start:].strip()))
    return out


def _parse_formula(formula: str) -> tuple[str, list[tuple[str, ...]], bool]:
    """Return (outcome column, terms as tuples of factor specs, has_intercept)."""
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise ValueError(f"formula must contain exactly one '~': {formula!r}")
    lhs, rhs = (part.strip() for part in formula.split("~"))
    if not lhs or not rhs:
        raise ValueError(f"formula needs an outcome and regressors: {formula!r}")
    intercept = True
    terms: list[tuple[str, ...]] = []
    for sign, piece in _split_top(rhs, "+-"):
        if piece in ("0", "1"):
            intercept = (piece == "1") == (sign == "+")
            continue
        if not piece or sign == "-":
            raise ValueError(f"unsupported term {sign}{piece!r} in formula {formula!r}")
        parts = _split_top(piece, ":*")
        factors = [p for _, p in parts]
        if any(not f for f in factors):
            raise ValueError(f"malformed term {piece!r} in formula {formula!r}")
        if any(s == "*" for s, _ in parts[1:]):
            # a*b*c -> every non-empty subset, as R expands it
            subsets = (
                c for r in range(1, len(factors) + 1) for c in itertools.combinations(factors, r)
            )
            terms.extend(subsets)
        else:
            terms.append(tuple(factors))
    unique = list(dict.fromkeys(terms))
    unique.sort(key=len)  # stable: R orders terms by degree, then as written
    if not unique and not intercept:
        raise ValueError(f"formula has no regressors: {formula!r}")
    return lhs, unique, intercept


def _check_columns(data: pd.DataFrame, columns: list[str], what: str) -> None:
    for col in columns:
        if col not in data.columns:
            raise ValueError(f"unknown column {col!r} ({what})")


def _numeric(data: pd.DataFrame, col: str, what: str) -> np.ndarray:
    _check_columns(data, [col], what)
    series = data[col]
    if not pd.api.types.is_numeric_dtype(series):
        raise ValueError(f"column {col!r} ({what}) must be numeric, got dtype {series.dtype}")
    return series.to_numpy(dtype=float, na_value=np.nan)


def _factor_columns(data: pd.DataFrame, spec: str) -> tuple[list[np.ndarray], list[str]]:
    """Columns (and names) of one factor: numeric as is, categorical as treatment dummies."""
    match = _C_RE.match(spec)
    col = match.group("col") if match else spec
    _check_columns(data, [col], "formula")
    series = data[col]
    if match is None and pd.api.types.is_numeric_dtype(series):
        return [series.to_numpy(dtype=float, na_value=np.nan)], [col]
    if isinstance(series.dtype, pd.CategoricalDtype):
        levels = [str(v) for v in series.cat.categories]
    else:
        levels = sorted({str(v) for v in series.dropna().unique()})
    ref = match.group("ref") if match and match.group("ref") is not None else None
    if ref is not None and ref not in levels:
        raise ValueError(f"reference level {ref!r} not found in column {col!r}")
    ref = levels[0] if ref is None else ref
    missing = series.isna().to_numpy()
    text = series.astype(str).to_numpy()
    cols, names = [], []
    for level in levels:
        if level == ref:
            continue
        dummy = (text == level).astype(float)
        dummy[missing] = np.nan
        cols.append(dummy)
        names.append(f"{col}{level}")
    return cols, names


def design_matrix(data: pd.DataFrame, formula: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Build (y, X, term names) from ``formula``; y keeps NaN for unlabelled rows.

    Missing regressor values stay NaN in X (callers drop those rows). See the module
    docstring for the supported formula syntax.
    """
    lhs, terms, intercept = _parse_formula(formula)
    y = _numeric(data, lhs, "outcome")
    cache: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    columns: list[np.ndarray] = [np.ones(len(data))] if intercept else []
    names: list[str] = [INTERCEPT] if intercept else []
    for term in terms:
        parts = [cache.setdefault(f, _factor_columns(data, f)) for f in term]
        for combo in itertools.product(*(range(len(cols)) for cols, _ in parts)):
            value = np.ones(len(data))
            for (cols, _), j in zip(parts, combo, strict=True):
                value = value * cols[j]
            columns.append(value)
            names.append(
                ":".join(part_names[j] for (_, part_names), j in zip(parts, combo, strict=True))
            )
    if not columns:
        raise ValueError(f"formula yields no columns: {formula!r}")
    return y, np.column_stack(columns), names


# ---------------------------------------------------------------------------------------------
# least squares with sandwich variance
# ---------------------------------------------------------------------------------------------


def _sum_by_group(scores: np.ndarray, codes: np.ndarray) -> np.ndarray:
    n_groups = int(codes.max()) + 1
    return np.column_stack(
        [
            np.bincount(codes, weights=scores[:, j], minlength=n_groups)
            for j in range(scores.shape[1])
        ]
    )


def _ls_fit(
    y: np.ndarray,
    X: np.ndarray,
    names: list[str],
    weights: np.ndarray | None = None,
    clusters: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(Weighted) least squares; HC0 sandwich, or CR0 when ``clusters`` codes are given."""
    Xw = X if weights is None else X * weights[:, None]
    xtx = Xw.T @ X
    if np.linalg.matrix_rank(xtx) < X.shape[1]:
        raise ValueError(f"design matrix is rank deficient; columns: {names}")
    bread = np.linalg.inv(xtx)
    beta = bread @ (Xw.T @ y)
    scores = Xw * (y - X @ beta)[:, None]
    if clusters is not None:
        scores = _sum_by_group(scores, clusters)
    vcov = bread @ (scores.T @ scores) @ bread
    # A zero variance (a cell whose outcome is constant) can come out as -1e-20 in floating point.
    return beta, np.sqrt(np.clip(np.diag(vcov), 0.0, None))


def _table(names: list[str], beta: np.ndarray, se: np.ndarray) -> pd.DataFrame:
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = 2.0 * stats.norm.sf(np.abs(beta / se))
    return pd.DataFrame(
        {
            "term": names,
            "estimate": beta,
            "se": se,
            "p_value": p_value,
            "ci_low": beta - _Z975 * se,
            "ci_high": beta + _Z975 * se,
        }
    )


def _cluster_codes(data: pd.DataFrame, cluster: str | None) -> np.ndarray | None:
    if cluster is None:
        return None
    _check_columns(data, [cluster], "cluster")
    codes, _ = pd.factorize(data[cluster], use_na_sentinel=True)
    return codes


def _raw_pi(data: pd.DataFrame, pi: str) -> np.ndarray:
    values = _numeric(data, pi, "pi")
    bad = ~((values > 0) & (values <= 1))
    if bad.any():
        raise ValueError(f"column {pi!r} (pi) must lie in (0, 1]; found {values[bad][0]!r}")
    return values


# ---------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------


def naive_proxy(
    data: pd.DataFrame, formula: str, *, surrogate: str, cluster: str | None = None
) -> DSLResult:
    """OLS of the surrogate outcome on X over all rows (ignores the gold labels); HC0/CR0."""
    y, X, names = design_matrix(data, formula)
    q = _numeric(data, surrogate, "surrogate")
    codes = _cluster_codes(data, cluster)
    keep = np.isfinite(X).all(axis=1) & np.isfinite(q)
    if codes is not None:
        keep &= codes >= 0
        codes = pd.factorize(codes[keep])[0]
    beta, se = _ls_fit(q[keep], X[keep], names, clusters=codes)
    n_lab = int(np.isfinite(y[keep]).sum())
    return DSLResult(_table(names, beta, se), int(keep.sum()), n_lab, "naive_proxy")


def gold_only(
    data: pd.DataFrame, formula: str, *, pi: str = "pi", cluster: str | None = None
) -> DSLResult:
    """WLS on the labelled rows only with weights 1/pi; HC0/CR0 sandwich."""
    y, X, names = design_matrix(data, formula)
    prob = _raw_pi(data, pi)
    codes = _cluster_codes(data, cluster)
    keep = np.isfinite(X).all(axis=1) & np.isfinite(y)
    if codes is not None:
        keep &= codes >= 0
        codes = pd.factorize(codes[keep])[0]
    if not keep.any():
        raise ValueError(f"no labelled rows: outcome of {formula!r} is missing everywhere")
    beta, se = _ls_fit(y[keep], X[keep], names, weights=1.0 / prob[keep], clusters=codes)
    return DSLResult(_table(names, beta, se), int(keep.sum()), int(keep.sum()), "gold_only")


# ---------------------------------------------------------------------------------------------
# outcome model and cross-fitting
# ---------------------------------------------------------------------------------------------


def _learner(learner: str | Learner, seed: int) -> Learner:
    """Resolve a learner name to ``fit_predict(X_train, y_train, X_test) -> yhat``."""
    if callable(learner):
        return learner
    if learner == "logistic":
        return _fit_logistic
    if learner == "linear":
        return _fit_linear
    if learner == "forest":
        return lambda a, b, c: _fit_forest(a, b, c, seed)
    raise ValueError(
        f"unknown learner {learner!r}; use 'logistic', 'linear', 'forest' or a callable"
    )


def _fit_logistic(X: np.ndarray, y: np.ndarray, X_new: np.ndarray) -> np.ndarray:
    """L2-penalised logistic regression on standardised features, fitted by Newton's method.

    Same objective as sklearn's ``StandardScaler`` + ``LogisticRegression(C=1)`` (unpenalised
    intercept); solved directly because lbfgs takes ~40 ms per fit, which dominates
    simulations with thousands of fits.
    """
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("learner 'logistic' needs a 0/1 gold outcome; use 'linear' or 'forest'")
    if y.min() == y.max():  # one class only: the best calibrated guess is that constant
        return np.full(len(X_new), y[0])
    center, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = np.column_stack([np.ones(len(X)), (X - center) / scale])
    ridge = np.eye(Z.shape[1])
    ridge[0, 0] = 0.0

    def loss(w: np.ndarray) -> float:
        eta = Z @ w
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * w @ ridge @ w)

    w = np.zeros(Z.shape[1])
    current = loss(w)
    for _ in range(100):
        prob = special.expit(Z @ w)
        grad = Z.T @ (prob - y) + ridge @ w
        hess = (Z * (prob * (1.0 - prob))[:, None]).T @ Z + ridge
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while loss(w - t * step) > current + 1e-12 and t > 1e-8:  # backtracking keeps descent
            t /= 2
        w = w - t * step
        new = loss(w)
        if current - new < 1e-12 * (1.0 + abs(new)):
            break
        current = new
    return special.expit(((X_new - center) / scale) @ w[1:] + w[0])


def _fit_linear(X: np.ndarray, y: np.ndarray, X_new: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(X)), X]), y, rcond=None)
    return coef[0] + X_new @ coef[1:]


def _fit_forest(X: np.ndarray, y: np.ndarray, X_new: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.ensemble import RandomForestRegressor

    # grf defaults as far as sklearn allows: half-samples, leaves of >= 5, all features
    model = RandomForestRegressor(
        n_estimators=500, min_samples_leaf=5, max_samples=0.5, random_state=seed, n_jobs=1
    )
    model.fit(X, y)
    return model.predict(X_new)


def _fold_ids(
    groups: np.ndarray, n_groups: int, n_folds: int, rng: np.random.Generator
) -> np.ndarray:
    """Balanced random fold per group (as R's dsl), broadcast to rows."""
    per_group = rng.permutation(np.arange(n_groups) % n_folds)
    return per_group[groups]


def _cross_fit(
    features: np.ndarray,
    y: np.ndarray,
    labelled: np.ndarray,
    folds: np.ndarray,
    n_folds: int,
    fit_predict: Learner,
) -> np.ndarray:
    yhat = np.empty(len(y))
    for k in range(n_folds):
        test = folds == k
        train = labelled & ~test
        if not train.any():
            raise ValueError(f"fold {k} leaves no labelled rows to train on; use fewer folds")
        pred = np.asarray(fit_predict(features[train], y[train], features[test]), dtype=float)
        if pred.shape != (int(test.sum()),) or not np.isfinite(pred).all():
            raise ValueError("learner returned predictions of the wrong shape or non-finite values")
        yhat[test] = pred
    return yhat


def _features(
    data: pd.DataFrame,
    surrogate: list[str],
    covariates: list[str],
    X: np.ndarray,
    names: list[str],
    x_features: bool,
) -> np.ndarray:
    cols: dict[str, np.ndarray] = {}
    for spec in [*surrogate, *covariates]:
        values, labels = _factor_columns(data, spec)
        cols.update(zip(labels, values, strict=True))
    if x_features:
        for j, name in enumerate(names):
            if name != INTERCEPT and name not in cols:
                cols[name] = X[:, j]
    if not cols:
        raise ValueError(
            "no features for the outcome model: give surrogate, covariates or prediction"
        )
    return np.column_stack(list(cols.values()))


# ---------------------------------------------------------------------------------------------
# DSL
# ---------------------------------------------------------------------------------------------


def _combine_splits(betas: np.ndarray, ses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over sample splits (rows); the SE adds the spread of the splits, as R's dsl."""
    beta = np.median(betas, axis=0)
    return beta, np.sqrt(np.median(ses**2 + (betas - beta) ** 2, axis=0))


def dsl(
    data: pd.DataFrame,
    formula: str,
    *,
    surrogate: str | list[str] | None = None,
    pi: str = "pi",
    covariates: list[str] | None = None,
    prediction: str | None = None,
    cluster: str | None = None,
    n_folds: int = 5,
    n_splits: int = 1,
    learner: str | Learner = "logistic",
    seed: int = 0,
    x_features: bool = True,
) -> DSLResult:
    """DSL estimate of the linear regression ``formula`` (see the module docstring).

    Args:
        data: one row per unit; the outcome column is NaN where the row is unlabelled.
        formula: ``gold ~ regressors``.
        surrogate: column(s) of the proxy outcome, used as features of the outcome model.
        pi: column of sampling (inclusion) probabilities in (0, 1], given for every row.
        covariates: further feature columns of the outcome model.
        prediction: column holding an already cross-fitted Yhat; skips the learner.
        cluster: column of cluster ids (cluster-wise folds, CR0 variance).
        n_folds: K of the K-fold cross-fitting.
        n_splits: number of sample splits (random fold draws), combined by the median.
        learner: "logistic" (0/1 outcomes; sklearn's default L2 logistic regression on
            standardised features), "linear" (OLS), "forest" (random forest), or
            ``fit_predict(X_train, y_train, X_test) -> yhat``.
        seed: seed of the fold draws and of the learners.
        x_features: also feed the regressors (X without intercept) to the outcome model, as
            the paper does by listing them in R's ``feature`` argument.
    """
    if n_folds < 2 or n_splits < 1:
        raise ValueError(f"need n_folds >= 2 and n_splits >= 1, got {n_folds} and {n_splits}")
    y, X, names = design_matrix(data, formula)
    surrogates = [surrogate] if isinstance(surrogate, str) else list(surrogate or [])
    covariates = list(covariates or [])
    raw_pi = _numeric(data, pi, "pi")
    codes = _cluster_codes(data, cluster)
    keep = np.isfinite(X).all(axis=1) & np.isfinite(raw_pi)
    if codes is not None:
        keep &= codes >= 0
    if prediction is not None:
        yhat_all = _numeric(data, prediction, "prediction")
        keep &= np.isfinite(yhat_all)
    else:
        features_all = _features(data, surrogates, covariates, X, names, x_features)
        keep &= np.isfinite(features_all).all(axis=1)
    y, X, raw_pi = y[keep], X[keep], raw_pi[keep]
    groups = pd.factorize(codes[keep])[0] if codes is not None else None
    labelled = np.isfinite(y)
    n, n_lab = len(y), int(labelled.sum())
    if n_lab == 0:
        raise ValueError(f"no labelled rows: outcome of {formula!r} is missing everywhere")
    if not ((raw_pi > 0) & (raw_pi <= 1)).all():
        bad = raw_pi[~((raw_pi > 0) & (raw_pi <= 1))][0]
        raise ValueError(f"column {pi!r} (pi) must lie in (0, 1]; found {bad!r}")
    prob = raw_pi * (n_lab / n) / raw_pi.mean()
    # Fully sampled strata rescale to exactly 1 up to rounding: tolerate that, not more.
    if (prob > 1 + 1e-9).any():
        raise ValueError(f"rescaled {pi!r} exceeds 1; pi is inconsistent with {n_lab} labels")
    prob = np.minimum(prob, 1.0)
    y0 = np.where(labelled, y, 0.0)

    def estimate(yhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ytilde = yhat + labelled / prob * (y0 - yhat)
        return _ls_fit(ytilde, X, names, clusters=groups)

    if prediction is not None:
        beta, se = estimate(yhat_all[keep])
        return DSLResult(_table(names, beta, se), n, n_lab, "dsl")

    features = features_all[keep]
    unit = groups if groups is not None else np.arange(n)
    n_units = int(unit.max()) + 1
    if n_units < n_folds:
        raise ValueError(f"n_folds={n_folds} exceeds the number of units/clusters ({n_units})")
    fit_predict = _learner(learner, seed)
    rng = np.random.default_rng(seed)
    betas, ses = [], []
    for _ in range(n_splits):
        folds = _fold_ids(unit, n_units, n_folds, rng)
        beta, se = estimate(_cross_fit(features, y0, labelled, folds, n_folds, fit_predict))
        betas.append(beta)
        ses.append(se)
    beta, se = _combine_splits(np.array(betas), np.array(ses))
    return DSLResult(_table(names, beta, se), n, n_lab, "dsl")
