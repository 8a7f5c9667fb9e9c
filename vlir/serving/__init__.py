"""vlir against a served model: an OpenAI-compatible server (vLLM, or any that can continue an
assistant turn holding images) as the engine of ``vlir infer``/``vlir eval`` and as the teacher.

* :mod:`vlir.serving.engine` - the crop-and-zoom loop over chat completions (``ServedRollout``).
* :mod:`vlir.serving.vllm_env` - the separate vLLM environment (``.venv-vllm``) and its server.
* :mod:`vlir.serving.tiny` - the tiny Qwen2.5-VL in sizes vLLM's CPU kernels take.
* :mod:`vlir.serving.weights` - pushing new policy weights into a running vLLM server.

Nothing here imports vLLM: vlir talks to it over HTTP; the one file the vLLM environment runs
(:mod:`vlir.serving.vllm_processor`) imports nothing of vlir.
"""
