"""Sample-tree writers: small, deterministic, format-faithful stand-ins for the official downloads
(``vlir sample``, ``make vlir`` and the tests), kept apart from the adapters that read them.

One module per source (``gqa``, ``vsr``, ``m3cot``, ``textvqa``, ``docvqa``, ``infographicsvqa``)
writes that source's official layout; :mod:`~vlir.sources.samples.synth` draws text and shapes and
returns the exact box of what it drew; :mod:`~vlir.sources.samples.scenes` composes the labelled
photos of the scene-graph sources. An adapter's ``write_sample_tree`` imports its writer lazily.
"""
