# (filled in by the CLI docs work)
