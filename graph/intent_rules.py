"""Deterministic reading of a request.

It is the fallback when the model's intent is junk or unsure, the source of explicit values (a
stated word count or platform beats a model's guess), the floor of refusals (what Draftloop will
not do, whatever a model says) and the reading of follow-ups ("make it shorter", "turn it into a
tweet").

Marketing prose is full of words that sound alarming out of context ("execute a plan", "exploit
network effects", "ideas to steal", "hack your routine", "killer features") or commercial ("best
practices", "budget planning", "our product launch"): every pattern here needs the words around
such a term, never the term alone. tests/unit/test_routing_table.py holds the phrasings.
"""

from __future__ import annotations

import re
from typing import Any

from graph.state import STYLES, TONES

# Names of a content type. The earliest in the text wins: "a blog post about LinkedIn" is a blog
# post, "a LinkedIn post about our blog" a social post.
_TYPE_NAMES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (content_type, re.compile(rf"\b(?:{names})\b(?!-)", re.IGNORECASE))
    for content_type, names in (
        ("research_brief", r"research (?:briefs?|reports?|summar(?:y|ies))|briefs? on|briefings?"),
        ("newsletter", r"newsletters?"),
        ("email", r"e-?mails?|cold mails?"),
        ("social_post", r"tweets?|twitter|x (?:posts?|threads?)|(?:posts?|threads?) (?:on|for) (?-i:X)|"
                        r"linked ?in|social(?: media)? posts?|instagram"),
        ("blog_post", r"blog(?: posts?)?|articles?|essays?|write-?ups?|op-?eds?|opinion pieces?|listicles?|"
                      r"deep dives?"),
    )
)
# Words that name a piece without saying which kind: a blog post unless something else is named.
_GENERIC_PIECE = re.compile(r"\b(?:posts?|guides?|pieces?)\b", re.IGNORECASE)
# "a post about email marketing": a type name right after one of these is the topic.
_TOPIC_LEAD = re.compile(r"\b(?:about|regarding|covering|of)\s+(?:\S+\s+){0,2}$", re.IGNORECASE)

_PLATFORM_NAMES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("x", re.compile(r"\b(?:tweets?|tweeting|twitter|x (?:posts?|threads?)|x\.com|(?:on|for|to) (?-i:X))\b(?!-)",
                     re.IGNORECASE)),
    ("linkedin", re.compile(r"\blinked ?in\b", re.IGNORECASE)),
)

# Refusals: each names what Draftloop does not do, in the words someone uses to ask for it.
# Asks addressed to us start a sentence, or follow "please" / "can you" / "I want you to".
_ASK = r"(?:^|[.!?;:]\s+|\b(?:please|(?:can|could|would|will) you|i (?:want|need) you to|go ahead and)\s+)"
# ... and for malicious software a how-to is the same ask.
_HOW_TO = r"(?:\b(?:how (?:do|can|could|would|should) (?:i|we|you)|how to|teach me(?: how)? to|show me how to))\s+"
# Up to three words between a verb and its object, none of which turns the object into a topic
# ("write a blog post about ransomware" is content; "write a ransomware script" is not).
_FILLER = r"(?:\s+(?!(?:about|on|regarding|how|why|what|against|for|of|to|with|and|or|featuring|including)\b)[\w'-]+){0,3}?"
_MAKE = r"(?:write|code|create|build|make|develop|generate|program|craft|design|produce|draft|compose|give me|send)"
_REFUSALS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), reason) for pattern, reason in (
        (rf"(?:{_ASK}|{_HOW_TO}){_MAKE}{_FILLER}\s+(?:malware|ransomware|keyloggers?|spyware|trojans?|rootkits?|"
         r"botnets?|computer virus(?:es)?|(?:zero-day )?exploits? (?:for|against|that|to)|exploit code)\b",
         "asks for malicious software"),
        (rf"\b{_MAKE}{_FILLER}\s+phishing\b(?!\s+(?:awareness|training|prevention|defen[cs]es?|protection|tips|"
         r"trends|statistics|stats|reports?|simulations?|tests?|exercises?|quiz))",
         "asks for a phishing message"),
        (rf"{_ASK}{_MAKE}(?:\s+(?:me|us))?(?:\s+[\w'-]+){{0,3}}?\s+(?:e-?mails?|messages?|texts?|sms|dms?|letters?|"
         r"pages?|sites?|forms?)\s+(?:that\s+)?pretend(?:s|ing)? to be\b",
         "asks for a phishing message"),
        # "Hack your morning routine", "hack the system" are idioms; hacking someone's account is not.
        (r"\bhack(?:ing)? into\b|\bhack\s+(?!(?:your|our|the system)\b)(?:[\w'-]+\s+){0,2}(?:accounts?|e-?mails?|"
         r"phones?|wi-?fi|servers?|websites?|computers?|databases?|routers?|webcams?|instagram|facebook|gmail)\b|"
         r"\b(?:break|get|log|sign)\s+into\s+(?:\w+'s|someone'?s?|somebody'?s?|other people'?s|my (?:ex|boss|"
         r"neighbou?r)'?s?)\s+(?:\w+\s+)?(?:accounts?|e-?mail|phone|computer|system|network)\b|"
         r"\bcrack(?:ing)?\s+(?:\w+\s+){0,2}passwords?\b|"
         r"\b(?:launch|run|perform|carry out|start)\s+(?:an?\s+)?ddos\b|\bddos\s+(?:an?|the|someone|my|our|their|his|her)\b",
         "asks to break into accounts or systems"),
        # An ask or a how-to: "scammers pretending to be your bank to steal your passwords" is a
        # warning worth writing.
        (rf"(?:{_ASK}|{_HOW_TO}|\bhelp me\s+|\b(?:tutorial|guide|instructions|steps|script|tool|program|code|bot)\s+"
         r"(?:on|for|to|that)\s+)(?:steal(?:s|ing)?\s+(?:(?:\w+'s?|other people'?s|their|his|her|my|your|our|the|"
         r"some|an?)\s+)?(?:[\w'-]+\s+){0,2}(?:passwords?|credentials|log-?ins?|credit cards?|card (?:numbers?|data|details)|"
         r"identit(?:y|ies)|personal data|accounts?|cookies|session tokens?|money|crypto|bitcoin|wallets?)|"
         r"(?:harvest|skim|phish|scrape)\w*\s+(?:\w+\s+){0,3}?(?:passwords?|credentials|"
         r"(?:credit )?card (?:numbers?|data|details)))\b",
         "asks to steal credentials or card data"),
        (rf"{_ASK}(?:generate|create|make|render|produce|draw|paint|design|animate|compose|record|film|shoot)"
         rf"(?:\s+(?:me|us))?{_FILLER}\s+(?:images?|pictures?|photos?|photographs?|illustrations?|logos?|"
         r"drawings?|paintings?|icons?|banners?|infographics?|videos?|animations?|clips?|gifs?|reels?|audio|"
         r"voice-?overs?|podcast episodes?|songs?|music|jingles?|soundtracks?|melod(?:y|ies)|beats?)\b(?!-)"
         r"(?!\s+(?:scripts?|outlines?|descriptions?|captions?|transcripts?|ideas|briefs?|concepts?|prompts?|"
         r"copy|storyboards?|lyrics|alt))",
         "asks to generate images, video or audio"),
        (rf"{_ASK}(?:run|execute|exec|eval)\s+(?:(?:this|the|that|my|our|these|those|an?|following|some)\s+)?"
         r"(?:[\w-]+\s+)?(?:code|scripts?|shell(?: commands?)?|commands?|programs?|snippets?|binar(?:y|ies)|bash|"
         r"python|javascript|sql(?: quer(?:y|ies))?|quer(?:y|ies)|notebooks?|installers?|executables?)\b|"
         r"\b(?:curl|wget)\b[^|\n]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b",
         "asks to run code"),
        # Asks to do harm, not writing about it: "how to spot counterfeit bills" is a fine blog post.
        (r"\b(?:make|build|assemble|cook|synthesi[sz]e)\s+(?:an?\s+|some\s+)?(?:[\w-]+\s+)?(?:bombs?|explosives|"
         r"explosive devices?|meth(?:amphetamine)?|nerve agents?|bioweapons?|chemical weapons?|ghost guns?)\b|"
         r"\b(?:how (?:do|can|could) (?:i|we)|help me|how to)\s+launder\b|\blaunder (?:my|our|the) (?:money|cash|funds)\b|"
         r"\b(?:make|print|produce|create|forge)\s+(?:me\s+)?(?:some\s+|an?\s+)?(?:counterfeit|fake)\s+(?:money|bills|"
         r"currency|banknotes|passports?|ids?|driver'?s licen[cs]es?|diplomas?)\b|"
         r"\b(?:write|generate|post|create)\s+(?:\d+\s+)?(?:fake|bogus)\s+(?:customer\s+)?(?:reviews|testimonials)\b|"
         r"\bdoxx?\s+(?:someone|somebody|him|her|them|my|this|that|an?|the)\b|"
         r"\bswat\s+(?:someone|somebody|him|her|them|my)\b|\brevenge porn\b|"
         r"\b(?:sexual|erotic|explicit|porn\w*)\b.{0,40}\b(?:child|children|minors?|kids?|underage)\b|"
         r"\b(?:child|children|minors?|kids?|underage)\b.{0,40}\b(?:erotic|explicit|porn\w*)\b",
         "asks for something illegal or harmful"),
    )
)

_FILLER_WORDS = r"(?:(?:ok(?:ay)?|great|thanks|thank you|nice|good|cool|now|also|and|but|hmm|hi)[,.!]?\s+)*"
_POLITE = r"(?:please\s+)?(?:(?:can|could|would|will) you\s+)?(?:please\s+)?"
# An instruction to change something that exists: it only means "revise" when the thread has a draft.
_EDIT = re.compile(
    rf"^\s*{_FILLER_WORDS}{_POLITE}(?:"
    r"(?:make|turn|rewrite|rephrase|reword|convert|change|reformat|rework|adapt|repurpose|redo|keep)\s+"
    r"(?:it|this|that|them|the\s+\w+)\b"
    r"|(?:shorten|lengthen|expand|extend|tighten|simplify|trim|condense|polish|revise|edit|update|fix|cut|add|"
    r"remove|drop|delete|include|mention|replace|swap|insert|use|tone|punch)\b"
    r"|(?:more|less|fewer|shorter|longer|briefer|punchier|simpler|friendlier|too|it'?s too|it is too|"
    r"this is too|way too|half|twice|double)\b)",
    re.IGNORECASE,
)
_POLITE_START = re.compile(rf"^\s*{_FILLER_WORDS}(?:please\s+)?(?:can|could|would|will) you\b", re.IGNORECASE)
# "Now write a tweet about it": a new format of the piece the thread already has.
_REFERS_BACK = re.compile(
    r"\b(?:of|from|about|based on|out of|into)\s+(?:it|this|that|the (?:post|draft|piece|article|blog post|"
    r"newsletter|email|brief|tweet))\b(?!\s+(?:is|was|are)\b)",
    re.IGNORECASE,
)
# "Shorten it to a tweet", "turn it into a newsletter", "rewrite it for LinkedIn": a format named
# right after one of these cues (and an article or an adjective or two).
_CONVERSION = re.compile(r"\b(?:into|to|as|for|make it|make this)\s+"
                         r"(?:(?:an?|one|single|short|quick|shorter|longer|proper|punchy)\s+){0,2}", re.IGNORECASE)
_CONVERSION_PLATFORMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("x", re.compile(r"(?:tweets?|twitter|x (?:posts?|threads?)|(?-i:X))\b(?!-)", re.IGNORECASE)),
    ("linkedin", re.compile(r"linked ?in\b", re.IGNORECASE)),
)

_QUESTION = re.compile(
    r"^\s*(?:what|what's|why|how|who|when|where|which|is|are|can|could|would|does|do|did|should|explain)\b",
    re.IGNORECASE,
)
_WRITE = re.compile(
    r"\b(?:write|draft|compose|create|prepare|produce|craft|pull together|put together|whip up|"
    r"(?:make|give) (?:me |us )?(?:an?|some)|(?:i|we)(?: need| want| would like|'d like) (?:an?|some))\b",
    re.IGNORECASE,
)
# A message this short that is neither a request nor a question is a remark ("thanks!").
_REMARK_WORDS = 4
_WORDS = re.compile(r"(\d{1,3}(?:,\d{3})+|\d{2,5})\s*(?:-|\s)?\s*words?\b", re.IGNORECASE)
_AUDIENCE = re.compile(r"\bfor\s+([a-z][\w\s\-]{2,60}?)(?=\s*(?:,|\.|;|:|$|\bwith\b|\bin\b|\babout\b|\bthat\b|\bon\b))",
                       re.IGNORECASE)
_TOPIC = re.compile(r"\b(?:on|about|covering|regarding)\s+(.+?)(?=\s*(?:,|\.|;|$|\bfor\b|\bwith\b|\bin a\b|\bthat\b))",
                    re.IGNORECASE)
_KEYWORDS = re.compile(r"\bkeywords?:?\s+(.+?)(?:\.(?:\s|$)|$)", re.IGNORECASE)
# A photo wanted: "with a cover photo", "add an image", "header image". Not "Picture your team..."
# (a verb) or "a brief that covers..." (not a cover image).
_IMAGES = re.compile(
    r"\b(?:photos?|images?|illustrations?|cover (?:photo|image|art)|(?:a|an|the|with|add)\s+(?:\w+\s+)?pictures?)\b",
    re.IGNORECASE,
)
_NO_IMAGES = re.compile(r"\b(?:no|without)\s+(?:\w+\s+)?(?:photo|image|picture)s?\b", re.IGNORECASE)
_NO_RESEARCH = re.compile(r"\b(?:no|without|skip)\s+(?:web\s+)?research\b", re.IGNORECASE)
# Approval of this piece, not the word: "shared drafts and approvals" is a product feature.
_APPROVAL = re.compile(
    r"\b(?:(?:i|we)\s+(?:need|want|would like|'d like|have|must)\s+to\s+(?:approve|review|sign off)|"
    r"(?:for|with|needs?|requires?|awaiting|wait for|pending)\s+(?:my\s+|our\s+|human\s+|an?\s+)?"
    r"(?:approval|sign[- ]off)|let me (?:review|approve)|human review|review it before|"
    r"before (?:it goes out|publishing|posting|it is published))\b",
    re.IGNORECASE,
)
_TONE_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"\b{pattern}\b", re.IGNORECASE), tone) for pattern, tone in (
        ("less formal|more relaxed|friendlier|friendly|conversational|informal|light-?hearted|chatty", "casual"),
        ("more formal|formal|businesslike", "professional"),
        ("scholarly", "academic"),
        ("upbeat|uplifting|motivational|motivating|inspiring", "inspirational"),
    )
)
# Buying intent, not the words "best", "budget" or "product": a shopping search lists prices,
# which belong in a buying guide and nowhere else.
_COMMERCIAL = re.compile(
    r"\b(?:(?:buy|buying|purchase|purchasing)\b(?!-)|shop for|shopping for|for sale|on sale|cheap|cheapest|"
    r"buyer'?s guides?|buying guides?|gift guides?|gift ideas|worth (?:buying|the money)|for the money|"
    r"discount codes?|coupons?|promo codes?|(?:deals?|discounts?) (?:on|for)|"
    r"(?:best|top|great|holiday|black friday|cyber monday|prime day) deals|"
    r"(?:best|lowest|good) prices?|price (?:comparison|range|tag|drop)s?|compare prices|"
    r"how much (?:does|do|is|are)\b.{0,60}\bcost|best (?:budget|cheap|affordable)\b|"
    r"(?:under|below|less than)\s*(?:[$€£]\s?\d[\d,.]*|\d[\d,.]*\s*(?:dollars|euros|pounds|usd|eur|gbp))|"
    r"[$€£]\s?\d[\d,.]*\s*(?:or less|and under|max)|"
    r"(?:best|top)\s+(?:\d+\s+)?(?:[\w-]+\s+){1,4}(?:to buy|to get|money can buy))",
    re.IGNORECASE,
)
# Follow-ups that change the length, as a share of the previous draft's actual length: enough
# that the next draft is plainly shorter (or longer) and still outside the ±25 % length band of
# the old target, not so much that a "shorter" post loses its substance.
SHRINK = 0.6
GROW = 1.5
_PRECISE_LENGTH: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"\b(?:half (?:the|as) (?:length|long)|in half|by half)\b", re.IGNORECASE), 0.5),
    (re.compile(r"\b(?:twice as long|double (?:the |its )?length|double it)\b", re.IGNORECASE), 2.0),
)
_SHORTER = re.compile(r"\b(?:shorter|shorten|trim|condense|tighten|cut (?:it |this )?down|more concise|less wordy|"
                      r"briefer|too long)\b", re.IGNORECASE)
_LONGER = re.compile(r"\b(?:longer|lengthen|expand|extend|flesh (?:it |this )?out|more detail(?:ed)?|more depth|"
                     r"too short)\b", re.IGNORECASE)


def _earliest(patterns: tuple[tuple[str, re.Pattern[str]], ...], text: str, skip_topics: bool) -> str | None:
    best: tuple[int, str] | None = None
    for name, pattern in patterns:
        for match in pattern.finditer(text):
            if skip_topics and _TOPIC_LEAD.search(text[: match.start()]):
                continue
            if best is None or match.start() < best[0]:
                best = (match.start(), name)
            break
    return best[1] if best else None


def stated_content_type(text: str) -> str | None:
    """The content type the text names outright ("newsletter", "tweet", "blog post"), if any."""
    return _earliest(_TYPE_NAMES, text, skip_topics=True)


def content_type_in(text: str) -> str | None:
    """The named type, else a blog post when the text asks for a "post" or "guide"."""
    return stated_content_type(text) or ("blog_post" if _GENERIC_PIECE.search(text) else None)


def platform_in(text: str) -> str | None:
    """"x" for a tweet, an X post or Twitter; "linkedin" for LinkedIn; the earliest named wins."""
    return _earliest(_PLATFORM_NAMES, text, skip_topics=False)


def refusal(text: str) -> str | None:
    """Why Draftloop will not do this, or None: the asks no model answer can overrule."""
    for pattern, reason in _REFUSALS:
        if pattern.search(text):
            return reason
    return None


def is_edit(text: str) -> bool:
    """An instruction to change the previous draft ("make it shorter", "more casual", "turn it
    into a tweet"), as opposed to a new request or a question about it."""
    stripped = text.strip()
    if stripped.endswith("?") and not _POLITE_START.search(stripped):
        return False
    if _EDIT.search(stripped):
        return True
    return stated_content_type(stripped) is not None and bool(_REFERS_BACK.search(stripped))


def is_question(text: str) -> bool:
    return bool(_QUESTION.search(text)) or text.strip().endswith("?")


def classify(text: str, has_previous_draft: bool) -> tuple[str, str | None, str]:
    """(kind, content_type, reason) from the words alone."""
    if not text.strip():
        return "unsupported", None, "empty request"
    if reason := refusal(text):
        return "unsupported", None, reason
    if has_previous_draft and is_edit(text):
        return "revise", None, "an edit instruction for the previous draft"
    content_type = content_type_in(text)
    asks_to_write = bool(_WRITE.search(text))
    # "Can you write a LinkedIn post...?" is a request; "How long should a LinkedIn post be?" is not.
    if content_type and (asks_to_write or not _QUESTION.search(text)):
        return "content", content_type, f"names the content type {content_type}"
    if asks_to_write:
        return "content", "blog_post", "asks to write something; a blog post is the default"
    if is_question(text):
        return "answer", None, "a plain question"
    if len(text.split()) < _REMARK_WORDS:
        return "answer", None, "a short remark, not a request"
    return "content", "blog_post", "reads as a subject to write about; a blog post is the default"


def _tone_in(text: str) -> str | None:
    lowered = text.lower()
    for tone in TONES:
        if re.search(rf"\b{tone}\b", lowered):
            return tone
    for pattern, tone in _TONE_WORDS:
        if pattern.search(text):
            return tone
    return None


def _audience_in(text: str) -> str | None:
    for match in _AUDIENCE.finditer(text):
        audience = match.group(1).strip()
        # "for LinkedIn", "for X", "for our newsletter": a platform or a format, not readers.
        if platform_in(f"for {audience}") or stated_content_type(audience) or audience.lower().startswith(
                ("the money", "sale", "under")):
            continue
        return audience
    return None


def explicit_fields(text: str) -> dict[str, Any]:
    """Only values the text states outright; absent keys mean 'not said'."""
    fields: dict[str, Any] = {}
    if match := _WORDS.search(text):
        fields["target_words"] = int(match.group(1).replace(",", ""))
    if content_type := stated_content_type(text):
        fields["content_type"] = content_type
    if platform := platform_in(text):
        fields["platform"] = platform
    if audience := _audience_in(text):
        fields["audience"] = audience
    if match := _TOPIC.search(text):
        fields["topic"] = match.group(1).strip()
    if match := _KEYWORDS.search(text):
        fields["keywords"] = [k.strip() for k in re.split(r",|;", match.group(1)) if k.strip()]
    if tone := _tone_in(text):
        fields["tone"] = tone
    normalised = text.lower().replace("-", " ")
    for style in STYLES:
        if re.search(rf"\b{style.replace('-', ' ')}\b", normalised):
            fields["style"] = style
    if _NO_IMAGES.search(text):
        fields["images"] = False
    elif _IMAGES.search(text):
        fields["images"] = True
    if _NO_RESEARCH.search(text):
        fields["research"] = False
    if _APPROVAL.search(text):
        fields["require_approval"] = True
    return fields


def conversion_target(text: str) -> tuple[str | None, str | None]:
    """(content_type, platform) a follow-up turns the piece into: "shorten it to a tweet" and
    "now write a tweet about it" are (social_post, x); (None, None) when it keeps the format. A
    type named elsewhere in the text ("add a line about our newsletter") is not a conversion."""
    for cue in _CONVERSION.finditer(text):
        for platform, pattern in _CONVERSION_PLATFORMS:
            if pattern.match(text, cue.end()):
                return "social_post", platform
        for content_type, pattern in _TYPE_NAMES:
            if pattern.match(text, cue.end()):
                return content_type, None
    stated = stated_content_type(text)
    if stated and _REFERS_BACK.search(text):
        return stated, platform_in(text) if stated == "social_post" else None
    return None, None


def relative_length(text: str) -> float | None:
    """The share of the previous draft's length a follow-up asks for; None when it does not say
    (or says both "shorter" and "longer")."""
    for pattern, factor in _PRECISE_LENGTH:
        if pattern.search(text):
            return factor
    shorter, longer = bool(_SHORTER.search(text)), bool(_LONGER.search(text))
    if shorter != longer:
        return SHRINK if shorter else GROW
    return None


def is_commercial(text: str) -> bool:
    """Real buying intent: buy, price, deals, "under $500", "best X to buy", a gift guide."""
    return bool(_COMMERCIAL.search(text))


def guess_topic(text: str) -> str:
    stripped = re.sub(r"^\s*(please\s+)?(write|draft|compose|create)\s+(me\s+)?(an?|the)?\s*", "", text, flags=re.IGNORECASE)
    return stripped.strip().rstrip(".?!")[:120] or text.strip()[:120]
