"""A scripted judge for the benchmark tests: a fake ``openai`` client that records every
``chat.completions.create`` call exactly as vlir makes it (model, messages, sampling parameters)
and answers from a script, so tests compare what goes on the wire with the official scripts'."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from vlir.eval.benchmarks.judge import Judge


class RecordingClient:
    """``chat.completions.create(**kwargs)``: ``kwargs`` appended to :attr:`sent`; the reply is
    ``reply`` (a string, or a function of the kwargs)."""

    def __init__(self, reply: str | Callable[[dict[str, Any]], str]):
        self.reply, self.sent = reply, []
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    @property
    def prompts(self) -> list[str]:
        """The last message's text of each call."""
        out = []
        for kw in self.sent:
            content = kw["messages"][-1]["content"]
            out.append(content if isinstance(content, str) else content[-1]["text"])
        return out

    def create(self, **kwargs: Any):
        self.sent.append(kwargs)
        content = self.reply(kwargs) if callable(self.reply) else self.reply
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=content))], usage=None)


def scripted_judge(tmp_path: Path, reply, model: str = "judge-m") -> tuple[Judge, RecordingClient]:
    client = RecordingClient(reply)
    return Judge(model, Path(tmp_path) / "judge_cache.sqlite", client=client), client
