"""The benchmark: fewtune against a plain transformers loop, measured in one run.

    python -m fewtune.bench            (make bench)

Each measurement runs in its own process (so peak memory and start-up are its own); the
orchestrator in ``__main__`` prints the table of figures and fewtune/baseline ratios and
writes them to benchmarks/latest.json.
"""
