"""One module per experiment of the book. Each offers ``configs(profile)``, ``DEFAULT_SEEDS`` and
``run(profile, seeds, device, force)``, which returns the records of every run (loading stored
ones, training missing ones)."""
