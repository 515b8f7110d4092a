"""The label words' probabilities at the slot outside a Trainer, and what is built on them.

- probs.py: label-word probabilities of examples or of rendered inputs (zero-shot analysis);
- calibration.py: contextual calibration (Zhao et al., 2021), with or without demonstrations;
- playground.py: one task and one backbone for trying templates by hand (notebooks/prompts.ipynb).
"""
