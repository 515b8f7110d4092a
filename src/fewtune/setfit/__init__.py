"""SetFit (Tunstall et al., 2022) as a fewtune method: ``method=setfit`` / ``method=setfit-diff``.

1. Contrastive fine-tuning of a sentence encoder on pairs of the K-shot training examples (same
   label: target cosine similarity 1, different labels: 0), a Lightning fit of its own
   (contrastive.py, pairs.py);
2. a classification head on the embeddings: scikit-learn's logistic regression, as the paper,
   or a linear layer trained with cross-entropy (heads.py).

The model (model.py) is the backbone's body with the pooling its sentence-transformers folder
declares (models/pooling.py), and a linear head; the logistic regression's coefficients become
that head's weights, so that dev, test and ``python -m fewtune.evaluate`` run one module.
``train.train`` hands the job to run.py through ``method.runner``; ``train.build`` builds the
module through ``method.builder`` (build.py). Settings: settings.py; docs/setfit.md.
"""
