# Stage-2 visual instructions in another language: the toy translator (the NLLB stand-in).


rule translate:
    input:
        f"{RUN}/data/corpus",
    output:
        f"{RUN}/data/instruct-{{lang}}.parquet",
    params:
        **params_of("seed", "organism.translation_error_rate"),
    log:
        f"{LOGS}/translate-{{lang}}.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} translate --corpus {input} --lang {wildcards.lang} --out {output} > {log} 2>&1"


rule instruct_en:
    # English instructions are written with the corpus; expose them under the common name.
    input:
        f"{RUN}/data/corpus",
    output:
        f"{RUN}/data/instruct-en.parquet",
    log:
        f"{LOGS}/instruct-en.log",
    conda:
        "../../environment.yml"
    shell:
        "cp {input}/instruct-en.parquet {output} 2> {log}"


ruleorder: instruct_en > translate
