# Training: tokenizer, the induction checkpoint and the base LM, LLM backbones, vision encoders,
# LLaVA stage 1 (per LLM x encoder pair, computed once) and stage 2 (one job per VLM of the grid).


rule tokenizer:
    input:
        f"{RUN}/data/corpus",
    output:
        directory(f"{RUN}/models/tokenizer"),
    params:
        **params_of("seed", "languages", "organism.tokenizer_vocab"),
    log:
        f"{LOGS}/tokenizer.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} tokenizer --corpus {input} --out {output} > {log} 2>&1"


rule induction:
    # The copy task that gives the LM an induction head: the start of every backbone.
    input:
        f"{RUN}/models/tokenizer",
    output:
        directory(f"{RUN}/models/induction"),
    params:
        **params_of("seed", "organism.llm", "organism.induction"),
    log:
        f"{LOGS}/induction.log",
    benchmark:
        f"{BENCH}/induction.tsv"
    resources:
        gpu=RES["gpu_train"],
        mem_mb=RES["mem_mb_train"],
        runtime=RES["runtime_train"],
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} induction --tokenizer {input} --out {output} > {log} 2>&1"


rule base_llm:
    # The base LM (English dialogues, as Llama-2) that every backbone continues from.
    input:
        corpus=f"{RUN}/data/corpus",
        init=f"{RUN}/models/induction",
    output:
        directory(f"{RUN}/models/base_llm"),
    params:
        **params_of("seed", "organism.base_llm", "organism.pretrain_llm", "organism.induction"),
    log:
        f"{LOGS}/base_llm.log",
    benchmark:
        f"{BENCH}/base_llm.tsv"
    resources:
        gpu=RES["gpu_train"],
        mem_mb=RES["mem_mb_train"],
        runtime=RES["runtime_train"],
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} base-llm --init {input.init} --corpus {input.corpus}"
        " --out {output} > {log} 2>&1"


rule pretrain_llm:
    # One backbone: the base LM continued on dialogues in the backbone's language mix.
    input:
        corpus=f"{RUN}/data/corpus",
        init=f"{RUN}/models/base_llm",
    output:
        directory(f"{RUN}/models/llm/{{llm}}"),
    params:
        backbone=lambda w: config["backbones"][w.llm],
        **params_of("seed", "organism.pretrain_llm", "organism.induction"),
    log:
        f"{LOGS}/pretrain_llm-{{llm}}.log",
    benchmark:
        f"{BENCH}/pretrain_llm-{{llm}}.tsv"
    resources:
        gpu=RES["gpu_train"],
        mem_mb=RES["mem_mb_train"],
        runtime=RES["runtime_train"],
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} pretrain-llm --name {wildcards.llm} --corpus {input.corpus}"
        " --init {input.init} --out {output} > {log} 2>&1"


rule pretrain_vision:
    input:
        corpus=f"{RUN}/data/corpus",
        tokenizer=f"{RUN}/models/tokenizer",
    output:
        directory(f"{RUN}/models/vision/{{vision}}"),
    params:
        objective=lambda w: config["vision_encoders"][w.vision]["objective"],
        **params_of("seed", "organism.vision", "organism.pretrain_vision", "organism.patch_size"),
    log:
        f"{LOGS}/pretrain_vision-{{vision}}.log",
    benchmark:
        f"{BENCH}/pretrain_vision-{{vision}}.tsv"
    resources:
        gpu=RES["gpu_train"],
        mem_mb=RES["mem_mb_train"],
        runtime=RES["runtime_train"],
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} pretrain-vision --name {wildcards.vision} --corpus {input.corpus}"
        " --tokenizer {input.tokenizer} --out {output} > {log} 2>&1"


rule stage1:
    input:
        corpus=f"{RUN}/data/corpus",
        llm=f"{RUN}/models/llm/{{llm}}",
        vision=f"{RUN}/models/vision/{{vision}}",
    output:
        directory(f"{RUN}/models/stage1/{{llm}}-{{vision}}"),
    params:
        **params_of("seed", "organism.stage1"),
    log:
        f"{LOGS}/stage1-{{llm}}-{{vision}}.log",
    benchmark:
        f"{BENCH}/stage1-{{llm}}-{{vision}}.tsv"
    resources:
        gpu=RES["gpu_train"],
        mem_mb=RES["mem_mb_train"],
        runtime=RES["runtime_train"],
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} stage1 --llm {input.llm} --vision {input.vision} --corpus {input.corpus}"
        " --out {output} > {log} 2>&1"


rule stage2:
    input:
        corpus=f"{RUN}/data/corpus",
        stage1=f"{RUN}/models/stage1/{{llm}}-{{vision}}",
        instructions=f"{RUN}/data/instruct-{{lang}}.parquet",
    output:
        directory(f"{RUN}/models/vlm/{{llm}}-{{vision}}-{{lang}}"),
    params:
        **params_of("seed", "organism.stage2", "organism.text_only_share"),
    log:
        f"{LOGS}/stage2-{{llm}}-{{vision}}-{{lang}}.log",
    benchmark:
        f"{BENCH}/stage2-{{llm}}-{{vision}}-{{lang}}.tsv"
    resources:
        gpu=RES["gpu_train"],
        mem_mb=RES["mem_mb_train"],
        runtime=RES["runtime_train"],
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} stage2 --stage1 {input.stage1} --instructions {input.instructions}"
        " --corpus {input.corpus} --out {output} > {log} 2>&1"
