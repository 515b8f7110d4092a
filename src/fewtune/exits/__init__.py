"""Early exit: a classifier at inner layers, and rules that stop a test example there.

- modules.py: the exit heads added to a prompt or classifier module (``exit=`` in the config);
- rules.py: the exit rules (PABEE's patience, DeeBERT's entropy) and their settings, and the
  replay of a rule from every exit's logits;
- layerwise.py: running a backbone layer by layer, so that an example can leave early;
- measure.py: ``python -m fewtune.exits``, the metric against the measured speed-up;
- plots.py: its figure (exits.png).
"""
