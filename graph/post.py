"""The post a finished content run makes, read from the graph's result (graph/nodes/finalize.py
shapes that result; storage only stores the DraftPost it is given)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storage.models import PostStatus
from storage.posts import DraftPost, valid_slug


def body_without_title(markdown: str, title: str) -> str:
    """A draft's markdown minus its leading ``# Title`` line: a post carries its title in a
    field of its own, and pages that show both would print it twice."""
    first, _, rest = markdown.lstrip().partition("\n")
    heading = first.strip()
    if heading.startswith("# ") and heading[2:].strip().rstrip("#").strip() == title.strip():
        return rest.lstrip("\n")
    return markdown


def draft_post_of(result: Mapping[str, Any]) -> DraftPost | None:
    """The post fields of a run's result; None for answers and unsupported requests."""
    if result.get("kind") != "content":
        return None
    approval = result.get("approval") or {}
    publish = bool(approval.get("approved")) and approval.get("publish") is True
    seo = result.get("seo") or {}
    title = str(result.get("title") or "").strip() or "Untitled"
    changes: dict[str, Any] = {
        "title": title,
        "markdown": body_without_title(str(result.get("markdown") or ""), title),
        "featured_image": result.get("featured_image") or None,
        "sources": list(result.get("sources") or []),
        "keywords": list(seo.get("keywords") or []),
    }
    generated = str(seo.get("slug") or "")
    return DraftPost(changes=changes, generated_slug=generated if valid_slug(generated) else "post",
                     status=PostStatus.PUBLISHED if publish else PostStatus.DRAFT)
