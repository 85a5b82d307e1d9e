"""Small helpers shared across edgesr."""
