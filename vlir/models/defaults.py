"""The default model family and the facts of it that layers below the model layer take as their
defaults: written once, here.

:mod:`vlir.geometry` (below the model layer: it cannot import a family) gives
:class:`~vlir.geometry.PixelBudget` this grid and its functions this budget when a caller names
none; the Qwen2.5-VL family (:mod:`vlir.models.qwen2_5_vl`) is built from these numbers; every
other default (a config's ``model_family``, a budget left unset) asks the family
(:func:`vlir.models.family.default_family`). This module imports nothing, so reading it never
loads the model layer.
"""

from __future__ import annotations

#: the family a config, a processor of unknown class or a budget without a family means
DEFAULT_FAMILY = "qwen2_5_vl"

#: Qwen2.5-VL's grid: 14-pixel patches merged 2x2, so image sides are multiples of 28 pixels
PATCH_SIZE = 14
MERGE_SIZE = 2
FACTOR = PATCH_SIZE * MERGE_SIZE

#: the released VLM-R3 agent's budgets on that grid (``r3_vllm.py``; its 7B SFT run
#: ``sft_7b.sh`` used the same image budget), vlir's defaults: the image's view ...
MIN_PIXELS = 4 * FACTOR * FACTOR
MAX_PIXELS = 2048 * FACTOR * FACTOR
#: ... and a rendered crop's
CROP_MIN_PIXELS = 4 * FACTOR * FACTOR
CROP_MAX_PIXELS = 1024 * FACTOR * FACTOR

#: the VLM-R³ authors' crop-tool instruction appended to the user turn (ChatConfig's default; the
#: tiny tokenizers are trained on it too, so its words are few tokens)
VLM_R3_INSTRUCTION = (
    "\nYou need to first think about the reasoning process in your mind, and then provide the answer. "
    "When thinking, you should call the \"crop\" tool (format: {\"bbox_2d\": [x1, y1, x2, y2]}) to focus on "
    "the key areas in the image. The reasoning process and the answer are included in the <think> </think> "
    "and <answer> </answer> tags respectively."
)
