"""Applications that run on Spark (launched by Dagster Pipes), not in the code location."""
