"""The audit preset's analyses: any list of VLMs (:mod:`ifl.models.audited`) looked inside and
reported beside the paper's LLaVA-1.5.

``inside`` runs the representation analyses of every model, ``report`` builds the chapter
"Beyond LLaVA".
"""
