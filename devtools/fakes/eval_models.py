"""A scripted writer and judge behind the fake Ollama, for `draftloop eval` on fakes.

The writer routes by a table of request texts (anything else gets junk, so the keyword rules
route it), drafts a well-formed piece whose every attempt
says which take it is, and scores attempts from a script. The judge scores a draft by its take
(take 1 → all 3s, later takes → all 4s), prefers the later take in a blind comparison, and finds
a scripted share of claims supported. So every figure in the report can be computed by hand.

`python -m devtools.fakes.eval_models --port N` serves it on its own (what `make eval-fakes` runs).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from devtools.fakes.ollama import FakeOllama, OllamaReply
from devtools.fakes.writer import ScriptedWriter

_TAKE = re.compile(r"This is take (\d+)\.")
FIRST_TAKE_SCORE = 3
LATER_TAKE_SCORE = 4
CLAIM_VERDICTS = ("supported", "supported", "supported", "unsupported")
JUDGE_MODEL = "judge-model"


def take_of(text: str) -> int:
    match = _TAKE.search(text)
    return int(match.group(1)) if match else 1


@dataclass
class ScriptedEvalModels:
    """Answers writer calls (intent, draft, critique) and judge calls (rubric, pairwise, claims)."""

    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    takes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    writer: ScriptedWriter = field(default_factory=ScriptedWriter)
    calls: list[str] = field(default_factory=list)

    def __call__(self, body: dict[str, Any]) -> OllamaReply:
        fmt = body.get("format")
        title = fmt.get("title") if isinstance(fmt, dict) else None
        messages = body.get("messages") or []
        prompt = str(messages[-1].get("content", "")) if messages else ""
        self.calls.append(str(title or "text"))
        if title == "IntentChoice":
            intent = self._intent(prompt)
            # Unscripted requests get junk, so the keyword rules route them.
            return OllamaReply(content=intent) if intent else OllamaReply(fault="junk")
        if title == "RubricVerdict":
            score = FIRST_TAKE_SCORE if take_of(prompt) == 1 else LATER_TAKE_SCORE
            names = [n for n in (fmt or {}).get("properties", {}) if n != "reasoning"]
            return OllamaReply(content={"reasoning": f"take {take_of(prompt)} judged", **{n: score for n in names}})
        if title == "PairwiseVerdict":
            a, _, b = prompt.partition("Draft B:")
            return OllamaReply(content={"reasoning": "the later take is better",
                                        "winner": "A" if take_of(a) > take_of(b) else "B"})
        if title == "ClaimCheck":
            return OllamaReply(content={"claims": [{"claim": f"claim {i}", "verdict": v, "source": 1}
                                                   for i, v in enumerate(CLAIM_VERDICTS)]})
        # Everything else is the writer's: its critique scores come from `writer.scores`, in order.
        reply = self.writer(body)
        if title is None and isinstance(reply.content, str) and "Question:" not in prompt:
            about = re.search(r"about: (.+)", prompt)
            topic = about.group(1) if about else "the topic"
            self.takes[topic] += 1
            reply.content = reply.content.rstrip() + f"\n\nThis is take {self.takes[topic]}.\n"
        return reply

    def _intent(self, text: str) -> dict[str, Any] | None:
        for key, intent in self.intents.items():
            if key in text:
                return {"confidence": 90, "reason": "scripted", **intent}
        return None


async def serve(port: int) -> None:
    server = FakeOllama(models=["llama3.2:latest", f"{JUDGE_MODEL}:latest"])
    server.responder = ScriptedEvalModels()
    await server.start(port)
    print(f"scripted writer and judge on {server.base_url}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
