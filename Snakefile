# The ifl replication DAG. Thin on purpose: configuration, validation and helpers live in
# workflow/rules/common.smk, rules in one file per stage, logic in the `ifl` package (src/ifl).
#
#   snakemake --cores all                       # embedded default (config.yaml), CPU, offline
#   snakemake --cores all --profile slurm       # the same DAG on a SLURM cluster
#   snakemake --cores all --configfile config/paper.yaml --profile slurm   # paper preset
#   snakemake --cores all --configfile config/audit.yaml --profile slurm   # audit preset
#
# The config's `preset` picks the upstream rules (data, translation, training, generation):
# the organism's synthetic world, the paper's hub checkpoints and benchmarks, or (audit) the
# paper's benchmarks answered by any list of VLMs, nothing trained. From the generations on
# (measurement, DSL, steering, notebooks, book) all share the same rules; the audit adds its
# hidden-state analyses of every model and its chapter (audit.smk). The remedies share their
# set-up, labels and tables (remedies.smk); each preset builds, trains, merges and runs the
# variants its own way (paper_remedies.smk for the paper preset).

configfile: "config.yaml"


include: "workflow/rules/common.smk"


if PRESET == "organism":

    include: "workflow/rules/data.smk"
    include: "workflow/rules/translate.smk"
    include: "workflow/rules/train.smk"
    include: "workflow/rules/generate.smk"

else:

    include: "workflow/rules/paper_common.smk"
    include: "workflow/rules/paper_download.smk"
    include: "workflow/rules/paper_data.smk"
    include: "workflow/rules/paper_generate.smk"


if PRESET == "paper":

    include: "workflow/rules/paper_train.smk"


include: "workflow/rules/measure.smk"
include: "workflow/rules/analyse.smk"
include: "workflow/rules/inside.smk"


if PRESET == "audit":

    include: "workflow/rules/audit.smk"


if REMEDIES_ON:

    include: "workflow/rules/remedies.smk"


if REMEDIES_ON and PRESET == "paper":

    include: "workflow/rules/paper_remedies.smk"


include: "workflow/rules/book.smk"


rule all:
    input:
        BOOK_INDEX,
        f"{RUN}/summary.json",
    default_target: True
