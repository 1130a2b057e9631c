"""The anchored 1–5 rubric a judge scores drafts on, per content type.

Every score of every dimension is described, so that a 4 means the same thing from one judge
(or one run) to the next. The in-graph critique and `draftloop eval`'s external judge both
score on this rubric; only who judges differs.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, create_model

ANCHORS: dict[str, dict[int, str]] = {
    "accuracy": {
        1: "States things the sources contradict, or invents facts, numbers or quotes.",
        2: "Several claims are unsupported by the sources or subtly wrong.",
        3: "Mostly supported; one claim is vague, unsupported or overstated.",
        4: "Every factual claim is supported by the sources; minor imprecision only.",
        5: "Every claim is supported and cited where it matters; nothing overstated.",
    },
    "relevance": {
        1: "About something else than the requested topic.",
        2: "Touches the topic but wanders or misses what was asked.",
        3: "On topic, but part of the request (audience, angle, keywords) is ignored.",
        4: "Answers the request for its audience; small digressions.",
        5: "Exactly what was asked, for exactly that audience, nothing extra.",
    },
    "depth": {
        1: "Empty generalities; a reader learns nothing.",
        2: "Mostly generic advice with one concrete point.",
        3: "Some concrete detail, but key questions are left unanswered.",
        4: "Concrete examples, numbers or steps for most points.",
        5: "Specific, expert detail throughout; a practitioner learns something new.",
    },
    "structure": {
        1: "No discernible order; sections missing or jumbled.",
        2: "Sections exist but their order or headings confuse.",
        3: "A sensible order with one weak or misplaced section.",
        4: "Clear order, informative headings, a real close.",
        5: "Each section earns its place and leads to the next; the close lands.",
    },
    "clarity": {
        1: "Hard to follow: muddled sentences, undefined jargon.",
        2: "Often wordy or vague; the reader has to re-read.",
        3: "Clear enough, with some padding or fuzzy sentences.",
        4: "Plain, direct sentences; jargon explained.",
        5: "Every sentence is easy and necessary.",
    },
    "engagement": {
        1: "Dull or off-putting; no reason to keep reading.",
        2: "Flat opening and clichés.",
        3: "Readable but unremarkable.",
        4: "A strong opening and a voice that holds attention.",
        5: "Compelling from the first line; a reader would share it.",
    },
    "tone": {
        1: "The wrong register for the audience and the requested tone.",
        2: "Drifts away from the requested tone often.",
        3: "Mostly the requested tone, with lapses.",
        4: "The requested tone throughout, suited to the audience.",
        5: "The requested tone handled with skill; it sounds like a good human writer.",
    },
    "hook": {
        1: "The first line gives no reason to stop scrolling.",
        2: "A generic opener (\"In today's world...\").",
        3: "A decent opener that takes a while to get to the point.",
        4: "The first line states something specific and interesting.",
        5: "An opener a reader cannot scroll past, true to the content.",
    },
    "platform_fit": {
        1: "Ignores the platform: headings, wrong length, no hashtags or a wall of them.",
        2: "Barely fits the platform's conventions.",
        3: "Fits the platform with one misstep (length, hashtags, line breaks).",
        4: "Native to the platform: length, line breaks and hashtags right.",
        5: "Reads like a top post on that platform.",
    },
    "call_to_action": {
        1: "No call to action, or several that compete.",
        2: "A vague call to action that is easy to miss.",
        3: "One call to action, but weakly motivated.",
        4: "One clear call to action that follows from the email.",
        5: "One clear, specific, well-motivated call to action the reader wants to take.",
    },
    "brevity": {
        1: "Far too long for an email; the point is buried.",
        2: "Padded; the reader skims.",
        3: "Acceptable length with some padding.",
        4: "Short and to the point.",
        5: "Nothing to cut.",
    },
    "curation": {
        1: "Items are irrelevant, duplicated or unlinked.",
        2: "Items are loosely related and barely explained.",
        3: "Relevant items with thin \"why it matters\" notes.",
        4: "Well-chosen items, each with a useful note.",
        5: "An expert's picks, each note telling the reader why to click.",
    },
    "completeness": {
        1: "Misses the central question of the brief.",
        2: "Covers part of the question; major gaps.",
        3: "Covers the question; gaps or open questions are not named.",
        4: "Covers the question and names the main gaps.",
        5: "Complete for a decision-maker: findings, evidence, gaps, implications.",
    },
    "objectivity": {
        1: "One-sided or promotional; conflicting evidence hidden.",
        2: "Leans on one view; caveats missing.",
        3: "Balanced in places; some claims lack caveats.",
        4: "Balanced, with conflicts between sources noted.",
        5: "Even-handed throughout; evidence weighed and uncertainty stated.",
    },
}

DIMENSIONS: dict[str, tuple[str, ...]] = {
    "blog_post": ("accuracy", "relevance", "depth", "structure", "clarity", "engagement", "tone"),
    "social_post": ("accuracy", "relevance", "hook", "clarity", "platform_fit", "tone"),
    "email": ("accuracy", "relevance", "clarity", "call_to_action", "tone", "brevity"),
    "newsletter": ("accuracy", "relevance", "curation", "clarity", "engagement", "tone"),
    "research_brief": ("accuracy", "relevance", "completeness", "structure", "clarity", "objectivity"),
}
# No dimension may fall to or below this, whatever the mean: a well-written piece on the wrong
# topic, or a fluent one that contradicts its sources, does not ship.
FLOOR = 2


def dimensions_for(content_type: str) -> tuple[str, ...]:
    return DIMENSIONS.get(content_type, DIMENSIONS["blog_post"])


def rubric_text(content_type: str) -> str:
    """The rubric as the judge reads it: each dimension with what every score means."""
    lines = []
    for name in dimensions_for(content_type):
        lines.append(f"{name}:")
        lines.extend(f"  {score} = {text}" for score, text in sorted(ANCHORS[name].items()))
    return "\n".join(lines)


def to_percent(mean: float) -> float:
    """A 1–5 mean on the 0–100 scale the quality threshold uses (1 → 0, 5 → 100)."""
    return round((mean - 1) * 25, 1)


# Bounded so that a schema-constrained small model ends its lists and strings instead of
# looping inside them until its token budget runs out.
REASONING_CHARS = 1500
FEEDBACK_ITEMS = 5
FEEDBACK_CHARS = 200
_VERDICT_MODELS: dict[tuple[str, str, bool], type[BaseModel]] = {}


def verdict_model(content_type: str, title: str, *, feedback: bool) -> type[BaseModel]:
    """A judge's answer: `reasoning` first, then one 1–5 integer per dimension (so a model
    constrained to the schema reasons before it scores), then, with feedback, the issues and
    suggestions a writer can act on. `title` names the schema (what a judge is answering)."""
    key = (content_type, title, feedback)
    if key not in _VERDICT_MODELS:
        score = Annotated[int, Field(ge=1, le=5)]
        item = Annotated[str, Field(max_length=FEEDBACK_CHARS)]
        fields: dict[str, Any] = {"reasoning": (str, Field(max_length=REASONING_CHARS))}
        fields.update({name: (score, ...) for name in dimensions_for(content_type)})
        if feedback:
            fields["issues"] = (list[item], Field(default_factory=list, max_length=FEEDBACK_ITEMS))
            fields["suggestions"] = (list[item], Field(default_factory=list, max_length=FEEDBACK_ITEMS))
        _VERDICT_MODELS[key] = create_model(title, **fields)
    return _VERDICT_MODELS[key]
