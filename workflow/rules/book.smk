# The Jupyter Book: stage sources + executed notebooks + summary, then build the HTML.


rule rulegraph:
    input:
        "Snakefile",
        CFG,
    output:
        dot=f"{RUN}/dag/rulegraph.dot",
        png=f"{RUN}/dag/rulegraph.png",
    log:
        f"{LOGS}/rulegraph.log",
    conda:
        "../../environment.yml"
    shell:
        "{sys.executable} -m snakemake --rulegraph --nolock --quiet all --configfile {CFG} > {output.dot} 2> {log}"
        " && {IFL} rulegraph --dot {output.dot} --out {output.png} >> {log} 2>&1"


rule book:
    input:
        sources=BOOK_SOURCES,
        notebooks=NOTEBOOKS,
        summary=f"{RUN}/summary.json",
        rulegraph=f"{RUN}/dag/rulegraph.png",
    output:
        BOOK_INDEX,
    log:
        f"{LOGS}/book.log",
    conda:
        "../../environment.yml"
    shell:
        "{IFL} book --src book --run-dir {RUN} --notebooks {input.notebooks} --out book/_build > {log} 2>&1"
