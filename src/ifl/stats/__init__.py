"""Statistics: the DSL estimator and effect estimates."""
