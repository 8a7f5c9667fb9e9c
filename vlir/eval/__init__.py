"""Evaluation: ``vlir eval`` over corpus shards/sources (:mod:`.evaluate`) and the published
benchmarks (:mod:`.benchmarks`)."""
