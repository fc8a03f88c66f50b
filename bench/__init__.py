"""``make bench``: throughput scenarios measured as ratios in one process run (DESIGN §11)."""
