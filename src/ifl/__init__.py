"""ifl: image-induced fidelity loss in LLaVA models, a reproducible replication."""

__version__ = "0.1.0"

# ISO 639-1 codes of the paper's 14 languages, in the order of its Table 2.
LANGUAGES: tuple[str, ...] = (
    "zh",
    "hi",
    "en",
    "he",
    "th",
    "ar",
    "bn",
    "ja",
    "es",
    "de",
    "fr",
    "ro",
    "ru",
    "ur",
)
