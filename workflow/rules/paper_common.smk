# The paper preset's set-up (included instead of the organism's data, translate, train and
# generate rules; the audit preset includes it too): the hub assets the config names, where they
# are staged, and the helpers of workflow/rules/paper_*.smk. A staged repository is a directory plus a marker file written
# last (ifl.download); the marker is what the rules depend on.
from ifl import paper as _paper
from ifl.download import MARKER

try:
    ASSETS = _paper.assets(config)
    _paper.check_names(config)
except ValueError as _err:
    sys.stderr.write(f"config error: {_err}\n")
    sys.exit(1)
RES_DIR = config["resources_dir"]
STAGED = {key: _paper.marker(config, key) for key in ASSETS}
TRAIN_CFG = config.get("training", {})  # the audit preset trains nothing


def staged(key):
    """The marker of asset ``key`` (``model:<name>``, ``dataset:<key>``, ``lid``) as an input."""
    if key not in STAGED:
        raise ValueError(f"config error: no asset {key!r}; known: {', '.join(sorted(STAGED))}")
    return STAGED[key]


def launcher():
    """How a training job starts the CLI: plainly on one device, through `accelerate launch`
    with one process per GPU on a multi-GPU node (DeepSpeed is set up by the trainer itself)."""
    n = RES["gpu_train"]
    if n <= 1:
        return "-m ifl.cli"
    precision = "bf16" if TRAIN_CFG["bf16"] else "no"
    return (
        f"-m accelerate.commands.launch --num_processes {n} --num_machines 1"
        f" --mixed_precision {precision} --dynamo_backend no --module ifl.cli"
    )


# --- data (paper_data.smk) ---
VISIT_LANGS = _paper.visit_languages(config)
TR_SHARDS = list(range(config["translation"]["shards"]))
HAS_VISIT = "VisIT" in config["datasets"]


def translation_shards(corpus, lang):
    return expand(f"{RUN}/translate/{corpus}/{lang}/shard-{{shard}}.parquet", shard=TR_SHARDS)


def task_inputs(wildcards):
    """Staged benchmarks, English VisIT and its translations, and the LID model: the task table
    is the root of every evaluation rule, so nothing is measured before the LID model is staged."""
    out = {
        "datasets": [staged(f"dataset:{_paper.BENCHMARK_ASSETS[b]}") for b in config["datasets"]],
        "visit_shards": [p for lang in VISIT_LANGS for p in translation_shards("visit", lang)],
    }
    if HAS_VISIT:
        out["visit"] = f"{RUN}/data/visit-en.parquet"
    if "lid" in STAGED:
        out["lid"] = staged("lid")
    return out


# --- training (paper_train.smk) ---
def instructions(wildcards):
    """English is mix665k as staged; other languages its NLLB translation."""
    if wildcards.lang == "en":
        return staged("dataset:llava-instruct")
    return f"{RUN}/data/instruct-{wildcards.lang}.json"


