"""ifl.train."""
