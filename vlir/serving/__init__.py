"""vlir against a served model: an OpenAI-compatible server (vLLM, or any that can continue an
assistant turn holding images) as the engine of ``vlir infer``/``vlir eval``/R-GRPO and as the
teacher. The loop over it is the rollout's served backend (:mod:`vlir.rollout.served`); this
package holds the server side.

* :mod:`vlir.serving.vllm_env` - the separate vLLM environment (``.venv-vllm``) and its server.
* :mod:`vlir.serving.tiny` - the tiny Qwen2.5-VL in sizes vLLM's CPU kernels take.
* :mod:`vlir.serving.weights` - pushing new policy weights into a running vLLM server.

Nothing here imports vLLM: vlir talks to it over HTTP; the one file the vLLM environment runs
(:mod:`vlir.serving.vllm_processor`) imports nothing of vlir.
"""
