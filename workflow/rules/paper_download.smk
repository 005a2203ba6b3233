# Downloads: every hub repository the config names is staged under `resources_dir` by a rule
# that runs on the login node (localrules), so that compute nodes without internet read only
# staged copies (`snakemake download --configfile config/paper.yaml` stages them all).


localrules:
    download,
    stage,


rule download:
    # Everything the config needs, staged (run it on the login node before the GPU jobs).
    input:
        list(STAGED.values()),


rule stage:
    # One hub repository into <resources_dir>/<models|datasets>/<owner>/<name>.
    output:
        f"{RES_DIR}/{{repo_type}}s/{{repo_id}}/{MARKER}",
    wildcard_constraints:
        repo_type="model|dataset",
        repo_id=r"[^/]+/[^/]+",
    params:
        **params_of(),
    log:
        f"{LOGS}/stage/{{repo_type}}s/{{repo_id}}.log",
    resources:
        mem_mb=RES["mem_mb_download"],
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-stage --repo-type {wildcards.repo_type}"
        " --repo-id {wildcards.repo_id} > {log} 2>&1 || (tail -n 1 {log} >&2; exit 1)"
