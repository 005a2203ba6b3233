# Shared set-up: validate the config (one-line errors, before any job starts), resolve paths,
# and name the pieces of the design grid.
import os
import re
import shlex
import sys
from pathlib import Path

import yaml

from ifl.models.audited import audit_models, model_resources
from ifl.config import ConfigError, validate, vlm_name

try:
    _validated = validate(config)
except ConfigError as _err:
    sys.stderr.write(f"{_err}\n")
    sys.exit(1)
config.clear()
config.update(_validated)

RUN = f"results/{config['run_name']}"
LOGS = f"logs/{config['run_name']}"
BENCH = f"{RUN}/benchmarks"
BOOK_INDEX = f"book/_build/{config['run_name']}/html/index.html"  # one book per run
# The resolved config every job reads; rewritten only when its content changes.
CFG = f"{RUN}/config.yaml"
_text = yaml.safe_dump(config, sort_keys=True, allow_unicode=True)
if not Path(CFG).exists() or Path(CFG).read_text(encoding="utf-8") != _text:
    Path(CFG).parent.mkdir(parents=True, exist_ok=True)
    _tmp = Path(f"{CFG}.tmp")
    _tmp.write_text(_text, encoding="utf-8")
    _tmp.replace(CFG)
# Jobs run the package with the interpreter that runs Snakemake (the project's venv or conda
# env); an environment variable rather than a param, so that moving the env reruns nothing.
os.environ["IFL_PYTHON"] = sys.executable


envvars:
    "IFL_PYTHON",


# organism: the synthetic world, trained from scratch; paper: hub checkpoints and benchmarks;
# audit: any list of hub or local VLMs, nothing trained. The Snakefile includes the matching
# upstream rules; everything from `measure` on is shared.
PRESET = config["preset"]
# The audit preset has no design grid (the organism's, merged in from config.yaml, is unused).
GRID = {vlm_name(e): e for e in config["grid"]} if PRESET != "audit" else {}
# Audited checkpoints by name (ifl.models.audited): hub ids staged by the download rules, or local folders.
AUDIT = {m.name: m for m in audit_models(config)} if PRESET == "audit" else {}
# Released VLMs evaluated as they are (paper preset) answer the same tasks as the grid's.
PRETRAINED = list(config["models"]) if PRESET == "paper" else list(AUDIT)
MODELS = list(GRID) + PRETRAINED
STAGE1_PAIRS = sorted({(e["llm"], e["vision"]) for e in config["grid"]})
LLMS = sorted({e["llm"] for e in config["grid"]})  # backbones the grid uses
VISIONS = sorted({e["vision"] for e in config["grid"]})
DATA_LANGS = sorted({e["data"] for e in config["grid"]})
SHARDS_N = config["generate"]["shards"]
SHARDS = list(range(SHARDS_N))
RES = config["resources"]


def vlm_input(wildcards):
    """What a job that loads VLM ``wildcards.model`` depends on: a grid VLM's trained folder,
    an audited local folder's config.json, or the staged marker of a hub checkpoint."""
    if wildcards.model in GRID:
        return f"{RUN}/models/vlm/{wildcards.model}"
    if wildcards.model in AUDIT and AUDIT[wildcards.model].local:
        return f"{AUDIT[wildcards.model].path(RES_DIR)}/config.json"
    return staged(f"model:{wildcards.model}")


def vlm_path(wildcards):
    """Where a job loads VLM ``wildcards.model`` from: the grid VLM's or the audited checkpoint's
    folder, or (a released VLM of the paper preset) its registry name."""
    if wildcards.model in GRID:
        return f"{RUN}/models/vlm/{wildcards.model}"
    if wildcards.model in AUDIT:
        return str(AUDIT[wildcards.model].path(RES_DIR))
    return config["models"][wildcards.model]["registry"]


def gpu_resources(key):
    """Resource ``key`` (gpu, mem_mb, runtime) of a job loading VLM ``wildcards.model``: an
    audited model's own (ifl.models.audited), else the config's generation resources."""
    return lambda wildcards: model_resources(AUDIT.get(wildcards.model), RES)[key]


def params_of(*keys):
    """The config values a rule depends on, as params (a change reruns the rule), and the
    path of the resolved config that the job reads."""
    out = {"cfg": CFG}
    for key in keys:
        node = config
        for part in key.split("."):
            node = node[part]
        out[key.replace(".", "_")] = node
    return out
# Every trained checkpoint (their loss curves go into the organism chapter).
BASE_LMS = [f"{RUN}/models/induction", f"{RUN}/models/base_llm"]
CHECKPOINTS = (
    BASE_LMS
    + [f"{RUN}/models/llm/{b}" for b in LLMS]
    + [f"{RUN}/models/vision/{v}" for v in VISIONS]
    + [f"{RUN}/models/stage1/{llm}-{vision}" for llm, vision in STAGE1_PAIRS]
    + [f"{RUN}/models/vlm/{m}" for m in GRID]
)
PAPER = "book/data/paper"  # the papers' tables, copied into the project
SPEED = "benchmarks/records"  # what the benchmark scripts printed (`make bench`)
LOOKUP_RECORD = f"{SPEED}/bench_lookup.txt"  # shown in the organism chapter
RECIPE_RECORD = f"{SPEED}/recipe_search.csv"  # `make recipe`; the organism chapter draws it
# Notebooks: the tables each one reads (path parameters) and its parameters from the config.
NOTEBOOK_TABLES = {
    "00_organism": {
        "tasks_parquet": f"{RUN}/data/tasks.parquet",
        "lid_csv": f"{RUN}/tables/organism_lid.csv",
        "llm_text_csv": f"{RUN}/tables/organism_llm_text.csv",
        "llm_keys_csv": f"{RUN}/tables/organism_llm_keys.csv",
        "llm_lookup_csv": f"{RUN}/tables/organism_llm_lookup.csv",
        "vlm_fidelity_csv": f"{RUN}/tables/organism_vlm_fidelity.csv",
        "accuracy_csv": f"{RUN}/tables/organism_accuracy.csv",
        "accuracy_kind_csv": f"{RUN}/tables/organism_accuracy_kind.csv",
        "accuracy_language_csv": f"{RUN}/tables/organism_accuracy_language.csv",
        "reply_language_csv": f"{RUN}/tables/organism_reply_language.csv",
        "probe_csv": f"{RUN}/tables/organism_probe.csv",
        "loss_csv": f"{RUN}/tables/organism_loss.csv",
    },
    "01_fidelity": {"fidelity_csv": f"{RUN}/tables/fidelity.csv"},
    "02_prevalence": {
        "ifl_csv": f"{RUN}/tables/ifl.csv",
        "by_condition_csv": f"{RUN}/tables/fidelity_by_condition.csv",
        "by_language_csv": f"{RUN}/tables/ifl_by_language.csv",
        "tasks_parquet": f"{RUN}/data/tasks.parquet",
        "paper_dir": PAPER,
    },
    "03_design_effects": {"design_csv": f"{RUN}/tables/design_effects.csv", "paper_dir": PAPER},
    "04_inside": {
        **{
            f"{name}_csv": f"{RUN}/tables/steering_{name}.csv"
            for name in ("table5", "by_language", "sweep", "text", "selection", "question_lid")
        },
        "cka_csv": f"{RUN}/tables/cka.csv",
        "projection_csv": f"{RUN}/tables/projection.csv",
        "gap_csv": f"{RUN}/tables/modality_gap.csv",
        "paper_dir": PAPER,
    },
    "05_remedies": {
        "remedies_csv": f"{RUN}/tables/remedies.csv",
        "gap_csv": f"{RUN}/tables/remedies_gap.csv",
        "steering_csv": f"{RUN}/tables/steering_table5.csv",
        "paper_dir": PAPER,
    },
    "06_beyond_llava": {
        "audit_csv": f"{RUN}/tables/audit.csv",
        "languages_csv": f"{RUN}/tables/audit_languages.csv",
        "cka_csv": f"{RUN}/tables/cka.csv",
        "projection_csv": f"{RUN}/tables/projection.csv",
        "gap_csv": f"{RUN}/tables/modality_gap.csv",
        "by_language_csv": f"{RUN}/tables/steering_by_language.csv",
        "paper_dir": PAPER,
    },
    "99_how_built": {
        "rulegraph_dot": f"{RUN}/dag/rulegraph.dot",
        "dry_run_txt": f"{RUN}/dag/dry-run.txt",
        "summary_json": f"{RUN}/summary.json",
    },
}
NOTEBOOK_PARAMS = {
    "01_fidelity": config["notebooks"]["fidelity"],
    "02_prevalence": config["notebooks"]["prevalence"],
    # Read after summary.json exists, i.e. after every benchmarked job (not a declared input:
    # the folder only appears once the first job has run).
    "04_inside": {
        **{
            f"{name}_csv": f"{RUN}/tables/steering_{name}.csv"
            for name in ("table5", "by_language", "sweep", "text", "selection", "question_lid")
        },
        "cka_csv": f"{RUN}/tables/cka.csv",
        "projection_csv": f"{RUN}/tables/projection.csv",
        "gap_csv": f"{RUN}/tables/modality_gap.csv",
        "paper_dir": PAPER,
    },
    "05_remedies": {
        "remedies_csv": f"{RUN}/tables/remedies.csv",
        "gap_csv": f"{RUN}/tables/remedies_gap.csv",
        "steering_csv": f"{RUN}/tables/steering_table5.csv",
        "paper_dir": PAPER,
    },
    "99_how_built": {"benchmark_dir": BENCH, "speed_dir": SPEED, "rules_dir": "workflow/rules"},
    "00_organism": {"lookup_record": LOOKUP_RECORD, "recipe_csv": RECIPE_RECORD, "config_yaml": CFG},
}
# `make bench` writes SPEED outside the DAG: an input of the pages that show its records when
# it exists (new records rerun them), a plain parameter otherwise.
if Path(SPEED).is_dir():
    NOTEBOOK_TABLES["99_how_built"]["speed_dir"] = SPEED
if PRESET == "organism" and config["dsl_coverage"]["draws"]:
    NOTEBOOK_TABLES["02_prevalence"]["coverage_csv"] = f"{RUN}/tables/dsl_coverage.csv"
for _key, _record in (("lookup_record", LOOKUP_RECORD), ("recipe_csv", RECIPE_RECORD)):
    if Path(_record).is_file():
        NOTEBOOK_TABLES["00_organism"][_key] = _record
# The organism chapter checks the synthetic world: the paper preset has none. The remedies'
# chapter exists in both presets unless `remedies.enabled` is false.
REMEDIES_ON = bool(config["remedies"]["enabled"]) and PRESET != "audit"  # the audit trains nothing
# Chapters per preset: the organism's checks only on the organism, the design grid's effects
# where there is a grid, the audit's chapter "Beyond LLaVA" only in the audit.
LEFT_OUT = {
    "organism": ("06_beyond_llava",),
    "paper": ("00_organism", "06_beyond_llava"),
    "audit": ("00_organism", "03_design_effects"),
}[PRESET] + (() if REMEDIES_ON else ("05_remedies",))
NOTEBOOK_TABLES = {k: v for k, v in NOTEBOOK_TABLES.items() if k not in LEFT_OUT}
if PRESET != "organism":
    # Columns beside the paper's are labelled "organism" by default; here they are real VLMs'.
    for _nb in ("03_design_effects", "04_inside"):
        NOTEBOOK_PARAMS[_nb] = {**NOTEBOOK_PARAMS.get(_nb, {}), "run_label": {"paper": "replication", "audit": "audit"}[PRESET]}
NOTEBOOKS = [f"{RUN}/notebooks/{name}.ipynb" for name in NOTEBOOK_TABLES]
# Chapters are numbered in the order this run's book has them; the appendix is "A".
for _number, _nb in enumerate((n for n in NOTEBOOK_TABLES if n != "99_how_built"), start=1):
    NOTEBOOK_PARAMS[_nb] = {**NOTEBOOK_PARAMS.get(_nb, {}), "chapter": str(_number)}
# Inputs of the summary (analyse.smk); the organism's quality tables and the remedies'
# table only where those chapters exist.
SUMMARY_INPUTS = {
    "fidelity": f"{RUN}/tables/fidelity.csv",
    "ifl": f"{RUN}/tables/ifl.csv",
    "steering": f"{RUN}/tables/steering_table5.csv",
}
if PRESET == "organism":
    SUMMARY_INPUTS["organism"] = f"{RUN}/tables/organism_accuracy.csv"
if REMEDIES_ON:
    SUMMARY_INPUTS["remedies"] = f"{RUN}/tables/remedies.csv"
if PRESET == "audit":
    SUMMARY_INPUTS["audit"] = f"{RUN}/tables/audit.csv"


def summary_options(wildcards, input):
    """The summary's optional chapters: ``--organism-dir``, ``--remedies`` and ``--audit``
    when present."""
    out = []
    if "organism" in input.keys():
        out += ["--organism-dir", os.path.dirname(input.organism)]
    if "remedies" in input.keys():
        out += ["--remedies", input.remedies]
    if "audit" in input.keys():
        out += ["--audit", input.audit]
    return " ".join(shlex.quote(x) for x in out)


def notebook_args(name):
    """papermill-style ``-p name value`` arguments of one notebook."""
    values = {**NOTEBOOK_TABLES[name], **NOTEBOOK_PARAMS.get(name, {})}
    return " ".join(f"-p {k} {shlex.quote(str(v))}" for k, v in values.items())


BOOK_SOURCES = sorted(str(p) for p in Path("book").glob("*") if p.is_file())


wildcard_constraints:
    llm="|".join(config["backbones"]),
    vision="|".join(config["vision_encoders"]),
    lang="[a-z]{2}",
    model="|".join(re.escape(m) for m in MODELS),
    shard=r"\d+",
    notebook="|".join(NOTEBOOK_TABLES),
