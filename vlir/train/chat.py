"""Record -> Qwen2.5-VL chat -> tokens (placeholder while model.py lands)."""

VLM_R3_INSTRUCTION = (
    "\nYou need to first think about the reasoning process in your mind, and then provide the answer. "
    "When thinking, you should call the \"crop\" tool (format: {\"bbox_2d\": [x1, y1, x2, y2]}) to focus on "
    "the key areas in the image. The reasoning process and the answer are included in the <think> </think> "
    "and <answer> </answer> tags respectively."
)
