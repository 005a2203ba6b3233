# Tables computed by the ifl package, then notebooks executed by papermill that read and draw them.


rule fidelity_table:
    input:
        f"{RUN}/measured.parquet",
    output:
        f"{RUN}/tables/fidelity.csv",
    log:
        f"{LOGS}/fidelity_table.log",
    conda:
        "../../environment.yml"
    shell:
        "{IFL} fidelity --measured {input} --out {output} > {log} 2>&1"


rule notebook_fidelity:
    input:
        notebook="notebooks/01_fidelity.ipynb",
        fidelity=f"{RUN}/tables/fidelity.csv",
    output:
        f"{RUN}/notebooks/01_fidelity.ipynb",
    params:
        **params_of("notebooks.fidelity"),
        palette=config["notebooks"]["fidelity"]["palette"],
        ci_level=config["notebooks"]["fidelity"]["ci_level"],
    log:
        f"{LOGS}/notebook_fidelity.log",
    conda:
        "../../environment.yml"
    shell:
        "{PAPERMILL} {input.notebook} {output} -p fidelity_csv {input.fidelity}"
        " -p palette {params.palette} -p ci_level {params.ci_level} > {log} 2>&1"


rule summary:
    input:
        fidelity=f"{RUN}/tables/fidelity.csv",
    output:
        f"{RUN}/summary.json",
    log:
        f"{LOGS}/summary.log",
    conda:
        "../../environment.yml"
    shell:
        "{IFL} summary --fidelity {input.fidelity} --out {output} > {log} 2>&1"
