"""The eval's external judge: rubric scores, blind pairwise preference, and a claim check.

Always temperature 0. Output that does not fit its schema is asked for once more; a second
failure leaves that judgement out (and the report counts how many were left out) rather than
inventing a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from app.evaluation import prompts
from graph import rubric
from graph.configuration import GraphSettings
from graph.model_calls import invoke_structured_retrying
from graph.sources import numbered
from graph.state import UsageRecord
from tools.llm.provider import ModelProvider

MAX_CLAIMS = 6
JUDGE_TRIES = 2


@dataclass(frozen=True)
class JudgeInput:
    """What the judge is told about the request a draft answers."""

    request: str
    content_type: str
    platform: str | None
    audience: str
    tone: str
    style: str
    target_words: int
    sources: list[dict[str, Any]]

    def fields(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "content_type": self.content_type.replace("_", " "),
            "platform": f" for {self.platform}" if self.platform else "",
            "audience": self.audience or "a general audience",
            "tone": self.tone or "professional",
            "style": self.style or "educational",
            "target_words": self.target_words,
            "sources": numbered(self.sources),
        }


@dataclass(frozen=True)
class RubricScore:
    scores: dict[str, int]
    reasoning: str

    @property
    def mean(self) -> float:
        return round(sum(self.scores.values()) / len(self.scores), 3)


class PairwiseVerdict(BaseModel):
    reasoning: str = Field(max_length=1200)
    winner: Literal["A", "B", "tie"]


class Claim(BaseModel):
    claim: str = Field(max_length=240)
    verdict: Literal["supported", "unsupported", "contradicted"]
    source: int | None = Field(default=None, ge=1, le=99)


class ClaimCheck(BaseModel):
    claims: list[Claim] = Field(default_factory=list, max_length=MAX_CLAIMS)


@dataclass
class Judge:
    models: ModelProvider
    settings: GraphSettings
    today: date
    usage: list[UsageRecord] = field(default_factory=list)
    unusable: int = 0

    async def _ask(self, schema: type[BaseModel], system: str, human: str, node: str) -> BaseModel | None:
        chat = await self.models.chat_model()
        info = await self.models.describe()
        parsed, usage, _problem = await invoke_structured_retrying(
            chat, schema, [SystemMessage(system), HumanMessage(human)], tries=JUDGE_TRIES, node=node,
            provider=info.provider, model=info.model, settings=self.settings, turn=0)
        self.usage.extend(usage)
        if parsed is None:
            self.unusable += 1
        return parsed

    async def rubric(self, case: JudgeInput, draft: str) -> RubricScore | None:
        schema = rubric.verdict_model(case.content_type, "RubricVerdict", feedback=False)
        human = prompts.JUDGE_TEMPLATE.format(**case.fields(), rubric=rubric.rubric_text(case.content_type),
                                              draft=draft)
        parsed = await self._ask(schema, prompts.JUDGE_SYSTEM.format(today=self.today.isoformat()), human,
                                 "eval_judge")
        if parsed is None:
            return None
        values = parsed.model_dump()
        return RubricScore(scores={d: int(values[d]) for d in rubric.dimensions_for(case.content_type)},
                           reasoning=str(values.get("reasoning") or ""))

    async def prefer(self, case: JudgeInput, a: str, b: str) -> str | None:
        """"A", "B" or "tie" for two drafts shown under neutral names."""
        human = prompts.PAIRWISE_TEMPLATE.format(**case.fields(), a=a, b=b)
        parsed = await self._ask(PairwiseVerdict, prompts.PAIRWISE_SYSTEM.format(today=self.today.isoformat()),
                                 human, "eval_pairwise")
        return parsed.winner if isinstance(parsed, PairwiseVerdict) else None

    async def claims(self, case: JudgeInput, draft: str) -> list[dict[str, Any]] | None:
        human = prompts.CLAIMS_TEMPLATE.format(sources=numbered(case.sources), draft=draft)
        parsed = await self._ask(ClaimCheck, prompts.CLAIMS_SYSTEM.format(limit=MAX_CLAIMS), human, "eval_claims")
        if not isinstance(parsed, ClaimCheck):
            return None
        return [c.model_dump() for c in parsed.claims]
