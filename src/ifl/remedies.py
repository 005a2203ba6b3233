"""The remedies of the follow-up papers as variants of one base VLM, and their evaluation.

Variants (names are Snakemake wildcards; see :func:`variants`):

* ``base``: the base VLM of the design grid as trained (no remedy);
* ``text-<pct>`` (``-final``): multilingual textual regularisation (Pikabea et al. 2025), a
  share ``pct`` % of text-only multilingual dialogues in stage 2, throughout or in a final phase;
* ``merge-<pct>``: the base's language model interpolated ``pct`` % towards its original LLM
  (Pikabea et al. 2025's model merging);
* ``tasks-<set>-<pct>``: LRM-LLaVA's task instructions (Li et al. 2025) of ``set`` with
  non-English rows amounting to ``pct`` % of the English visual instructions.

Sweeps skip their zero point (ratio, alpha or share 0 is the base itself).

Evaluation follows the main paper: fidelity from language ID debiased by DSL with a stratified
gold sample (on the organism annotated by the oracle, which also knows the truth of every
reply), next to the naive proxy estimate and the oracle. Metrics per variant, over the
evaluation subset of tasks: ``ifl`` (fidelity(image) - fidelity(text), non-English queries),
``lf`` (Pikabea et al.'s language fidelity: fidelity of image replies to non-English queries),
``lf_plus`` (right language *and* an acceptable, i.e. correct, answer), ``fidelity_text``,
``accuracy`` (image replies, all languages), ``accuracy_en`` and ``accuracy_non_en`` (as
LRM-LLaVA's English / non-English MMBench columns).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ifl.config import vlm_name

log = logging.getLogger(__name__)

AXES = ("base", "text", "merge", "tasks")
METHODS = ("dsl", "naive_proxy", "oracle")
# metric -> (languages: "non_en" | "en" | "all", conditions, outcome stem, image effect?)
METRICS: dict[str, tuple[str, tuple[str, ...], str, bool]] = {
    "ifl": ("non_en", ("image", "text"), "fidelity", True),
    "lf": ("non_en", ("image",), "fidelity", False),
    "lf_plus": ("non_en", ("image",), "lf_plus", False),
    "fidelity_text": ("non_en", ("text",), "fidelity", False),
    "accuracy": ("all", ("image",), "accuracy", False),
    "accuracy_en": ("en", ("image",), "accuracy", False),
    "accuracy_non_en": ("non_en", ("image",), "accuracy", False),
}
TABLE_COLUMNS = [
    "variant",
    "axis",
    "setting",
    "set",
    "metric",
    "method",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "n",
    "base_model",
]


# ---- variants -----------------------------------------------------------------------------


def pct(x: float) -> str:
    """A share as the percentage used in variant names: 0.05 -> ``5``, 0.125 -> ``12.5``."""
    return f"{round(float(x) * 100, 4):g}"


def base_entry(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The base VLM's grid entry (``remedies.base``; null = the grid's first entry).

    The base must be in the grid: its stage-2 model and its replies come from the main DAG.
    """
    name = cfg["remedies"]["base"]
    names = [vlm_name(e) for e in cfg["grid"]]
    if name is None:
        name = names[0]
    if name not in names:
        raise ValueError(f"remedies.base {name!r} is not a VLM of the grid ({', '.join(names)})")
    entry = dict(cfg["grid"][names.index(name)])
    return {"llm": entry["llm"], "vision": entry["vision"], "data": entry["data"], "name": name}


def remedy_languages(cfg: Mapping[str, Any]) -> list[str]:
    """Non-English languages of the multilingual training data (null = the run's languages)."""
    langs = cfg["remedies"]["languages"]
    langs = [lang for lang in (cfg["languages"] if langs is None else langs) if lang != "en"]
    return list(dict.fromkeys(langs))


def variants(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every remedy variant of the config, base first; each a dict with ``name``, ``axis``,
    ``setting`` (ratio, alpha or share), ``set``, ``tasks``, ``text_ratio``, ``text_phase``,
    ``final_fraction``, ``non_english_share``, ``alpha`` and ``kind`` (``grid`` | ``trained`` |
    ``merged``). A variant carries only its own settings, so that changing another remedy's
    settings reruns nothing of it."""
    rem = cfg["remedies"]
    blank = {
        "set": "",
        "tasks": [],
        "text_ratio": 0.0,
        "text_phase": "throughout",
        "final_fraction": 0.0,
        "non_english_share": 0.0,
        "alpha": 0.0,
    }
    out = [{**blank, "name": "base", "axis": "base", "setting": 0.0, "kind": "grid"}]
    final = rem["text_phase"] == "final"
    suffix, fraction = ("-final", rem["final_fraction"]) if final else ("", 0.0)
    for r in rem["text_ratios"]:
        if r > 0:
            out.append(
                {
                    **blank,
                    "name": f"text-{pct(r)}{suffix}",
                    "axis": "text",
                    "setting": float(r),
                    "text_ratio": float(r),
                    "text_phase": rem["text_phase"],
                    "final_fraction": float(fraction),
                    "kind": "trained",
                }
            )
    for a in rem["merge_alphas"]:
        if a > 0:
            out.append(
                {
                    **blank,
                    "name": f"merge-{pct(a)}",
                    "axis": "merge",
                    "setting": float(a),
                    "alpha": float(a),
                    "kind": "merged",
                }
            )
    sets = rem["task_sets"]
    pairs = [(s, rem["non_english_share"]) for s in sets]
    sweep = rem["share_sweep_set"]
    if rem["non_english_shares"]:
        if sweep not in sets:
            raise ValueError(
                f"remedies.share_sweep_set {sweep!r} is not a task set ({', '.join(sets)})"
            )
        pairs += [(sweep, s) for s in rem["non_english_shares"]]
    for set_name, share in pairs:
        if share > 0 and sets[set_name]:
            out.append(
                {
                    **blank,
                    "name": f"tasks-{set_name}-{pct(share)}",
                    "axis": "tasks",
                    "setting": float(share),
                    "set": set_name,
                    "tasks": list(sets[set_name]),
                    "non_english_share": float(share),
                    "kind": "trained",
                }
            )
    unique = list({v["name"]: v for v in out}.values())
    gap = [g for g in rem["gap"]["variants"] if g not in {v["name"] for v in unique}]
    if gap:
        raise ValueError(
            f"remedies.gap.variants: {gap[0]!r} is not a variant ({', '.join(v['name'] for v in unique)})"
        )
    return unique


def variant(cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One variant of :func:`variants` by name."""
    for v in variants(cfg):
        if v["name"] == name:
            return v
    raise ValueError(f"unknown remedy variant {name!r}")


def trained_variant(cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A variant that is trained (on a stage-2 mix) by name; a one-line error otherwise."""
    spec = variant(cfg, name)
    if spec["kind"] != "trained":
        raise ValueError(f"remedy variant {name!r} is not trained (it is {spec['kind']})")
    return spec


def variant_dir(run: str, spec: Mapping[str, Any], base_name: str) -> str:
    """Checkpoint directory of a variant under ``run`` (the base's is the grid model's)."""
    if spec["kind"] == "grid":
        return f"{run}/models/vlm/{base_name}"
    return f"{run}/remedies/{'vlm' if spec['kind'] == 'trained' else 'merged'}/{spec['name']}"


def spec_key(spec: Mapping[str, Any]) -> str:
    """A variant's settings as one string (a Snakemake param: a change reruns its jobs only)."""
    return " ".join(f"{k}={spec[k]}" for k in sorted(spec))


def eval_tasks(tasks: pd.DataFrame, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """The evaluation subset: ``remedies.eval`` benchmarks x languages (null = the run's)."""
    ev = cfg["remedies"]["eval"]
    langs = cfg["languages"] if ev["languages"] is None else ev["languages"]
    keep = tasks["benchmark"].isin(ev["benchmarks"]) & tasks["language"].isin(langs)
    if not keep.any():
        raise ValueError(
            f"remedies.eval selects no task (benchmarks {ev['benchmarks']}, languages {langs})"
        )
    return tasks[keep].reset_index(drop=True)


# ---- labels -------------------------------------------------------------------------------


def with_lf_plus(df: pd.DataFrame) -> pd.DataFrame:
    """Add LF+ (right language and a correct answer) for the gold, proxy and oracle columns."""
    out = df.copy()
    for kind in ("gold", "proxy", "oracle"):
        fid, acc = f"fidelity_{kind}", f"accuracy_{kind}"
        if fid in out.columns and acc in out.columns:
            out[f"lf_plus_{kind}"] = out[fid].astype(float) * out[acc].astype(float)
    return out


def labelled_table(
    measured: pd.DataFrame,
    tasks: pd.DataFrame,
    judge: Callable[[list, list, list], list],
    *,
    gold_size: int,
    multipliers: Mapping[str, float],
    seed: int,
    oracle: bool,
    sheet: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every reply with ``pi``, gold labels, the judge's ``accuracy_proxy``, the oracle truth
    (``oracle``) and LF+ columns.

    The gold labels come from ``sheet`` when given (the annotated sheet of the remedies' gold
    sample, :func:`gold_sample_of`: people annotate it in the paper preset), else from the
    oracle-annotated gold sample (``oracle``); with neither, only proxy estimates can be
    computed.
    """
    from ifl.annotate import SHEET_COLUMNS, fill_sheet, to_sheet
    from ifl.labels import assemble, gold_sample, oracle_annotator, oracle_truth

    size = min(int(gold_size), len(measured))
    if sheet is None and oracle:
        sample = gold_sample(measured, tasks, size=size, seed=seed, multipliers=multipliers)
        sheet = fill_sheet(to_sheet(sample), oracle_annotator(tasks))
    elif sheet is None:
        sheet = pd.DataFrame({c: pd.Series(dtype=object) for c in SHEET_COLUMNS})
    df = assemble(
        measured, tasks, sheet, size=size, multipliers=multipliers
    )  # adds question, reference
    verdicts = judge(
        df["question"].tolist(), df["reference"].tolist(), df["reply"].fillna("").tolist()
    )
    df["accuracy_proxy"] = [np.nan if v is None else float(v) for v in verdicts]
    if oracle:
        df = oracle_truth(df, tasks)
    return with_lf_plus(df)


def gold_sample_of(
    generations: pd.DataFrame,
    tasks: pd.DataFrame,
    *,
    gold_size: int,
    multipliers: Mapping[str, float],
    seed: int,
) -> pd.DataFrame:
    """The remedies' gold sample (appendix B's design over every variant's replies), the one
    :func:`labelled_table` draws for the oracle: the same ``seed`` and ``min(gold_size, n)``."""
    from ifl.labels import gold_sample

    size = min(int(gold_size), len(generations))
    return gold_sample(generations, tasks, size=size, seed=seed, multipliers=multipliers)


# ---- estimates ----------------------------------------------------------------------------


def _cell_frame(df: pd.DataFrame, image_effect: bool) -> tuple[pd.DataFrame, list[str], str]:
    keys = sorted(df["variant"].unique())
    code = df["variant"].map({k: i for i, k in enumerate(keys)}).to_numpy()
    image = (df["condition"] == "image").to_numpy(dtype=float)
    cols = {}
    for k in range(len(keys)):
        cols[f"c{k}"] = (code == k).astype(float)
        if image_effect:
            cols[f"i{k}"] = cols[f"c{k}"] * image
    design = pd.concat([df.reset_index(drop=True), pd.DataFrame(cols)], axis=1)
    return design, keys, " + ".join(["0", *cols])


def cell_estimates(
    df: pd.DataFrame,
    *,
    outcome: str,
    image_effect: bool,
    folds: int = 5,
    splits: int = 1,
    learner: str = "logistic",
    seed: int = 0,
) -> pd.DataFrame:
    """Per variant: the mean of ``outcome`` (or, with ``image_effect``, image minus text) by DSL
    on ``<outcome>_gold``, the naive proxy (``<outcome>_proxy``) and the oracle when present.

    DSL is skipped (with a log line) when it cannot be fitted, e.g. without gold labels.
    """
    from ifl.stats.dsl import dsl, naive_proxy

    design, keys, rhs = _cell_frame(df, image_effect)
    prefix = "i" if image_effect else "c"
    formula = f"{outcome}_gold ~ {rhs}"
    results = []
    try:
        results.append(
            dsl(
                design,
                formula,
                surrogate=f"{outcome}_proxy",
                n_folds=folds,
                n_splits=splits,
                learner=learner,
                seed=seed,
            )
        )
    except ValueError as err:
        log.warning("DSL skipped for %s: %s", outcome, err)
    results.append(naive_proxy(design, formula, surrogate=f"{outcome}_proxy"))
    if f"{outcome}_oracle" in design.columns:
        results.append(naive_proxy(design, formula, surrogate=f"{outcome}_oracle"))
        results[-1].method = "oracle"
    counts = df.groupby("variant")["task_id"].nunique()
    rows = []
    for res in results:
        table = res.table.set_index("term")
        for k, key in enumerate(keys):
            r = table.loc[f"{prefix}{k}"]
            rows.append(
                {
                    "variant": key,
                    "method": res.method,
                    "estimate": r["estimate"],
                    "se": r["se"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "n": int(counts[key]),
                }
            )
    return pd.DataFrame(rows)


def remedy_table(
    labelled: pd.DataFrame,
    specs: Sequence[Mapping[str, Any]],
    *,
    base_model: str,
    folds: int = 5,
    splits: int = 1,
    learner: str = "logistic",
    seed: int = 0,
) -> pd.DataFrame:
    """The long table of every :data:`METRICS` entry x variant x method (``TABLE_COLUMNS``).

    ``labelled`` has one row per reply with ``model`` = variant name (see
    :func:`labelled_table`); ``specs`` are the variants of :func:`variants`.
    """
    by_name = {s["name"]: s for s in specs}
    unknown = sorted(set(labelled["model"]) - set(by_name))
    if unknown:
        raise ValueError(f"replies of {unknown[0]!r}, which is not a remedy variant")
    df = with_lf_plus(labelled).rename(columns={"model": "variant"})
    english = df["language"] == "en"
    parts = []
    for metric, (langs, conditions, outcome, effect) in METRICS.items():
        rows = df["condition"].isin(conditions)
        rows &= {"all": True, "en": english, "non_en": ~english}[langs]
        sub = df[rows]
        if sub.empty or (effect and sub["condition"].nunique() < 2):
            continue
        est = cell_estimates(
            sub,
            outcome=outcome,
            image_effect=effect,
            folds=folds,
            splits=splits,
            learner=learner,
            seed=seed,
        )
        parts.append(est.assign(metric=metric))
    if not parts:
        raise ValueError("no metric could be computed from the labelled replies")
    out = pd.concat(parts, ignore_index=True)
    for col in ("axis", "setting", "set"):
        out[col] = out["variant"].map(lambda v, c=col: by_name[v][c])
    out["base_model"] = base_model
    order = {s["name"]: i for i, s in enumerate(specs)}
    out = out.assign(_o=out["variant"].map(order)).sort_values(
        ["_o", "metric", "method"], kind="stable"
    )
    return out[TABLE_COLUMNS].reset_index(drop=True)


# ---- views for the notebook and the summary -----------------------------------------------


def frontier(
    table: pd.DataFrame, *, method: str = "dsl", fidelity: str = "ifl", accuracy: str = "accuracy"
) -> pd.DataFrame:
    """One row per variant: ``x`` = accuracy and ``y`` = fidelity metric with their CIs.

    Falls back to the naive proxy for variants without a ``method`` row.
    """
    rows = []
    for name, group in table.groupby("variant", sort=False):
        point = {"variant": name, **group.iloc[0][["axis", "setting", "set"]].to_dict()}
        for axis, metric in (("x", accuracy), ("y", fidelity)):
            m = group[group["metric"] == metric]
            pick = m[m["method"] == method]
            pick = pick if len(pick) else m[m["method"] == "naive_proxy"]
            if pick.empty:
                break
            r = pick.iloc[0]
            point |= {
                axis: r["estimate"],
                f"{axis}_low": r["ci_low"],
                f"{axis}_high": r["ci_high"],
                f"{axis}_method": r["method"],
            }
        else:
            rows.append(point)
    return pd.DataFrame(rows)


def sweep(
    table: pd.DataFrame, axis: str, *, metric: str, method: str = "dsl", set_name: str | None = None
) -> pd.DataFrame:
    """One remedy's sweep (``text``, ``merge`` or ``tasks`` of ``set_name``) of ``metric``,
    with the base as its zero point, ordered by setting."""
    if axis not in AXES[1:]:
        raise ValueError(f"axis must be one of {AXES[1:]}, got {axis!r}")
    t = table[(table["metric"] == metric) & (table["method"] == method)]
    keep = (t["axis"] == axis) & ((t["set"] == set_name) if set_name is not None else True)
    part = pd.concat([t[t["axis"] == "base"], t[keep]], ignore_index=True)
    return part.sort_values("setting", kind="stable").reset_index(drop=True)


def default_share(table: pd.DataFrame) -> float | None:
    """The non-English share at which the task sets were compared: the one most sets share
    (ties: the one nearest 100 %). None without task-instruction variants."""
    tasks = table[table["axis"] == "tasks"]
    if tasks.empty:
        return None
    sets = tasks.groupby("setting")["set"].nunique()
    best = sets[sets == sets.max()].index
    return float(min(best, key=lambda s: (abs(s - 1.0), s)))


def lrm_tables(table: pd.DataFrame, *, method: str = "dsl") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The organism's analogues of LRM-LLaVA's Table 3 (the full mix, the base and each
    leave-one-out set: accuracy on non-English and English queries, and the difference to the
    full mix) and Table 4 (without / with all task instructions)."""
    share = default_share(table)
    acc = table[
        (table["method"] == method) & table["metric"].isin(["accuracy_en", "accuracy_non_en"])
    ]
    rows = acc[(acc["axis"] == "base") | ((acc["axis"] == "tasks") & (acc["setting"] == share))]
    wide = rows.pivot_table(
        index=["variant", "set"], columns="metric", values="estimate"
    ).reset_index()

    def label(r) -> str:
        if r["variant"] == "base":
            return "without all task instructions"
        if r["set"] == "all":
            return "all task instructions"
        if r["set"].startswith("no_"):
            return "without " + r["set"][3:].upper().replace("EPVQA", "EP-VQA")
        return str(r["set"])

    wide.insert(0, "variant_label", wide.apply(label, axis=1) if len(wide) else [])
    full = wide[wide["set"] == "all"]
    if len(full) and "accuracy_non_en" in wide.columns:
        wide["diff_non_en_vs_all"] = wide["accuracy_non_en"] - full["accuracy_non_en"].iloc[0]
    table4 = wide[(wide["variant"] == "base") | (wide["set"] == "all")].copy()
    table4["method"] = np.where(
        table4["variant"] == "base", "without task instructions", "with all task instructions"
    )
    cols4 = ["method"] + [c for c in ("accuracy_en", "accuracy_non_en") if c in table4.columns]
    return wide.drop(columns="set").reset_index(drop=True), table4[cols4].reset_index(drop=True)


def steering_point(
    steering: pd.DataFrame, model: str, *, level: float = 0.95
) -> dict[str, float] | None:
    """The steering remedy of ``model`` from the steering table (columns ``model``, ``ifl``,
    ``ifl_remedy`` and, when given, CIs ``ifl_remedy_ci_low`` / ``ifl_remedy_ci_high`` or an
    ``ifl_remedy_se``). Rows with several datasets are averaged. None when the model is absent.
    """
    from scipy import stats

    need = [c for c in ("model", "ifl", "ifl_remedy") if c not in steering.columns]
    if need:
        raise ValueError(f"steering table lacks column {need[0]!r}")
    rows = steering[steering["model"] == model]
    if rows.empty:
        return None
    out = {"ifl": float(rows["ifl"].mean()), "ifl_remedy": float(rows["ifl_remedy"].mean())}
    if {"ifl_remedy_ci_low", "ifl_remedy_ci_high"} <= set(rows.columns):
        out |= {
            "low": float(rows["ifl_remedy_ci_low"].mean()),
            "high": float(rows["ifl_remedy_ci_high"].mean()),
        }
    elif "ifl_remedy_se" in rows.columns:
        z = float(stats.norm.ppf(0.5 + level / 2))
        se = float(np.sqrt((rows["ifl_remedy_se"] ** 2).sum()) / len(rows))
        out |= {"low": out["ifl_remedy"] - z * se, "high": out["ifl_remedy"] + z * se}
    for col in ("accuracy_remedy", "accuracy"):
        if col in rows.columns:
            out[col] = float(rows[col].mean())
    return out


def remedies_summary(table: pd.DataFrame, method: str = "dsl") -> dict[str, dict[str, float]]:
    """Front-page figures: per variant its IFL, LF+ and accuracy (``method``, else naive)."""
    out: dict[str, dict[str, float]] = {}
    for name, group in table.groupby("variant", sort=False):
        figures = {}
        for metric in ("ifl", "lf_plus", "accuracy"):
            m = group[group["metric"] == metric]
            pick = m[m["method"] == method]
            pick = pick if len(pick) else m[m["method"] == "naive_proxy"]
            if len(pick):
                figures[metric] = round(float(pick["estimate"].iloc[0]), 4)
        out[str(name)] = figures
    return out


# ---- modality gap (LRM-LLaVA's figure) ----------------------------------------------------


def gap_features(
    model: Any,
    processor: Any,
    prompts: Sequence[str],
    questions: Sequence[str],
    images: Sequence[Any],
    *,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: the mean projector output over its image tokens and the mean input embedding
    of its question's tokens (no special tokens), both in the LLM's input space."""
    import torch

    from ifl.represent.hidden import input_embeddings

    if not (len(prompts) == len(questions) == len(images)) or not prompts:
        raise ValueError(
            f"need as many prompts, questions and images (got {len(prompts)}, {len(questions)}, {len(images)})"
        )
    tok = processor.tokenizer
    embed = model.get_input_embeddings()
    img, txt = [], []
    for s in range(0, len(prompts), batch_size):
        e, mask = input_embeddings(
            model, processor, list(prompts[s : s + batch_size]), list(images[s : s + batch_size])
        )
        img += [e[i][mask[i]].mean(0).numpy() for i in range(len(e))]
    with torch.no_grad():
        for q in questions:
            ids = tok(q, add_special_tokens=False, return_tensors="pt")["input_ids"].to(
                embed.weight.device
            )
            txt.append(embed(ids)[0].float().mean(0).cpu().numpy())
    return np.asarray(img, dtype=np.float64), np.asarray(txt, dtype=np.float64)


def gap_points(
    image_feats: np.ndarray,
    text_feats: np.ndarray,
    *,
    variant: str,
    seed: int = 0,
    method: str = "tsne",
) -> pd.DataFrame:
    """Joint 2-D embedding of the image and text points of one variant, with the modality gap
    (distance of the means in the original space, and in the 2-D embedding)."""
    from ifl.represent.projections import embed_2d, modality_gap

    xy = embed_2d(np.vstack([image_feats, text_feats]), method, seed=seed)
    n = len(image_feats)
    df = pd.DataFrame(
        {
            "variant": variant,
            "modality": ["image"] * n + ["text"] * len(text_feats),
            "x": xy[:, 0],
            "y": xy[:, 1],
        }
    )
    return df.assign(gap=modality_gap(image_feats, text_feats), gap_2d=modality_gap(xy[:n], xy[n:]))


def findings(table: pd.DataFrame, *, method: str = "dsl", z: float = 1.96) -> pd.DataFrame:
    """Each variant's change against the base, in IFL and in accuracy, with a verdict.

    The difference's standard error treats the two estimates as independent (different models
    on the same tasks; the pairing would only narrow it), recovered from each 95% CI as
    ``(high - low) / (2 z)``. ``verdict`` says whether the CI of a difference excludes 0:
    ``less IFL`` / ``more IFL`` for the fidelity axis, ``more accurate`` / ``less accurate``.
    """
    front = frontier(table, method=method).set_index("variant")
    if "base" not in front.index:
        raise ValueError("the remedies table has no 'base' variant to compare against")
    base = front.loc["base"]
    rows = []
    for name, r in front.drop(index="base").iterrows():
        row: dict[str, Any] = {"variant": name, "axis": r["axis"]}
        for key, metric, up, down in (
            ("y", "ifl", "less IFL", "more IFL"),
            ("x", "accuracy", "more accurate", "less accurate"),
        ):
            se = np.hypot(
                (r[f"{key}_high"] - r[f"{key}_low"]) / (2 * z),
                (base[f"{key}_high"] - base[f"{key}_low"]) / (2 * z),
            )
            diff = float(r[key] - base[key])
            low, high = diff - z * se, diff + z * se
            verdict = up if low > 0 else down if high < 0 else "no resolvable change"
            row |= {
                f"{metric}_base": float(base[key]),
                f"{metric}": float(r[key]),
                f"{metric}_diff": diff,
                f"{metric}_diff_low": low,
                f"{metric}_diff_high": high,
                f"{metric}_verdict": verdict,
            }
        rows.append(row)
    return pd.DataFrame(rows)
