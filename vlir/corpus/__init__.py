"""The corpus: build tasks, shards, rejects, manifest, validate, merge, card, browser page.

Executors (how tasks run: a local pool or Ray) live apart in :mod:`vlir.corpus.executors`.
"""
