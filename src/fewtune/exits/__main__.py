"""``python -m fewtune.exits``: early exit's trade-off, measured (exits/measure.py)."""

from fewtune.exits.measure import main

if __name__ == "__main__":
    main()
