"""LM-BFF's automatic label-word search (``python -m fewtune.search_words``).

- search.py: the zero-shot search over candidate words and their assignments to classes;
- finetune.py: the N best assignments each fine-tuned, the best on dev kept (search.finetune=N);
- searched.py: where a search's result is written, and ``method=prompt-autowords`` reading it.
"""
