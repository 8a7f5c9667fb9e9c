"""One LLM client for every OpenAI-compatible model vlir talks to: the teacher (corpus
annotation), the benchmark judge, and the served rollout engine.

Each concept has one owner here:

* :mod:`vlir.llm.keys`: the API key, read from the environment variable a config names, never
  written anywhere (configs refuse key-shaped values: :mod:`vlir.secrets`);
* :mod:`vlir.llm.retry`: which failures are transport failures (retried), the backoff (honouring
  ``Retry-After``, with jitter) and a synchronous tenacity loop;
* :mod:`vlir.llm.breaker`: a circuit breaker per endpoint (benched after N failures in a row,
  then probed one request at a time);
* :mod:`vlir.llm.cache`: the SQLite answer cache;
* :mod:`vlir.llm.client`: the official ``openai`` clients built once, with the SDK's own retries
  off (the policy above is the only one), and :class:`~vlir.llm.client.ChatCaller`, a cached,
  retried, breaker-guarded synchronous chat call (the judge; what the served engine can use).

Light: ``openai`` and ``tenacity`` are imported inside functions; nothing here imports
``vlir.annotate``, ``vlir.eval`` or ``vlir.serving`` (they import this).
"""
