"""The shape of each content type Draftloop writes: platforms, limits, default lengths.

The writer's prompts describe these shapes and graph/gates/format_checks.py checks them, so both read the
numbers from here (evals/README.md documents them for people).
"""

from __future__ import annotations

PLATFORMS: tuple[str, ...] = ("x", "linkedin")
# Characters, as the platforms count them (a post over the limit cannot be published).
PLATFORM_CHAR_LIMITS: dict[str, int] = {"x": 280, "linkedin": 3000}
PLATFORM_HASHTAGS: dict[str, tuple[int, int]] = {"x": (1, 3), "linkedin": (3, 5)}
EMAIL_SUBJECT_MAX = 60
EMAIL_PREVIEW_MAX = 90
NEWSLETTER_MIN_ITEMS = 3
BRIEF_MIN_CITED = 3

# Words when a request names no length.
DEFAULT_TARGET_WORDS: dict[str, int] = {
    "blog_post": 600,
    "social_post": 150,
    "email": 200,
    "newsletter": 400,
    "research_brief": 700,
}
DEFAULT_SOCIAL_WORDS: dict[str, int] = {"x": 40, "linkedin": 150}
# The smallest target a content type accepts: a tweet is short, a brief is not.
MIN_TARGET_WORDS: dict[str, int] = {
    "blog_post": 100,
    "social_post": 15,
    "email": 50,
    "newsletter": 100,
    "research_brief": 150,
}
# A draft whose length is outside target ± this share fails the length gate.
LENGTH_TOLERANCE = 0.25
# Types whose result carries an appended `## Sources` list of what the text cited as [n].
CITING_TYPES: frozenset[str] = frozenset({"blog_post", "research_brief"})
# Types written as markdown documents with a `# Title` line.
DOCUMENT_TYPES: frozenset[str] = frozenset({"blog_post", "newsletter", "research_brief"})


def default_target_words(content_type: str, platform: str | None, fallback: int | None = None) -> int:
    """The length to aim for when the request names none."""
    if content_type == "social_post":
        return DEFAULT_SOCIAL_WORDS.get(platform or "linkedin", DEFAULT_TARGET_WORDS["social_post"])
    if content_type == "blog_post" and fallback:
        return fallback
    return DEFAULT_TARGET_WORDS.get(content_type, fallback or DEFAULT_TARGET_WORDS["blog_post"])


def min_target_words(content_type: str) -> int:
    return MIN_TARGET_WORDS.get(content_type, 100)


def platform_for(content_type: str, platform: str | None) -> str | None:
    """Social posts are always for a platform (LinkedIn unless told); other types have none."""
    if content_type != "social_post":
        return None
    return platform if platform in PLATFORMS else "linkedin"
