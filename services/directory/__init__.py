"""directory: the Pemda's units, positions, employees and acting officials (README.md)."""
