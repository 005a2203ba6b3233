"""The steering remedy of the paper's section 5, evaluated.

For every query language a vector ``a_lang = LLM_l(x_lang) - LLM_l(x_en)`` is taken from the
model (``x_en`` = "Describe this image in detail.", ``x_lang`` its translation in the organism's
lexicon). Each generated row is steered with the vector of its language, chosen either from the
query language (``oracle`` selection, as the paper) or from the language a LID model detects in
the question (``auto``); English rows get no vector. Replies are measured as the main run's (LID
proxy, reference judge, and on the organism the oracle truth) and compared with the main run's
unsteered replies of the same tasks.

- :mod:`~ifl.steering.vectors`: language vectors from a model's states and the hook that adds
  them during generation;
- :mod:`~ifl.steering.plan`: variants, models, layers and the runs of a model;
- :mod:`~ifl.steering.run`: steered replies, one vector per row;
- :mod:`~ifl.steering.measure`: the replies measured like the main run's;
- :mod:`~ifl.steering.tables`: Table 5, Tables 6-9, the sweep and the checks.
"""
