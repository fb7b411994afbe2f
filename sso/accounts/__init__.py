"""People: academic and invited accounts, their passwords and attributes (no HTTP here)."""
