"""Built-in benchmarks: ``phantom8``, the embedded procedurally generated benchmark."""
