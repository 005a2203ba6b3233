"""The model organism: a synthetic multilingual world of scenes, lexicon and tasks."""
