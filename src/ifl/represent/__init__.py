"""ifl.represent."""
