"""ifl.models."""
