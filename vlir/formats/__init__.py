"""Other people's data formats, both ways.

Each format is one module that owns its field names and layout; the record, the chat rendering,
the crop rule and the shard writers stay vlir's own (this package calls them, never copies them).

* :mod:`vlir.formats.vlmr3` -- the VLM-R3 authors' SFT records (``justgogorunrun/VLM-R3``,
  ``qwen_vl_finetune/qwenvl/data/data_qwen.py``): export a vlir corpus so it trains in their code;
* :mod:`vlir.formats.vlmr3_import` -- read such records back into validated vlir shards;
* :mod:`vlir.formats.hf` -- a Hub-ready copy of a corpus (images embedded, card, configs);
* :mod:`vlir.formats.sharegpt` -- LLaMA-Factory's multimodal sharegpt dataset (export only).
"""

FORMATS = ("vlmr3",)  # both ways: export and import
EXPORT_FORMATS = ("vlmr3", "hf", "sharegpt")
