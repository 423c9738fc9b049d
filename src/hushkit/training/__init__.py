"""One training loop for every registered architecture."""
