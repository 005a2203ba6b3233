"""ifl.data."""
