"""sentiment_analyzer: polarity (VADER), urgency and the cues decision_router escalates on.

First step of every route. Writes `envelope.sentiment`:
- label and score from VADER's compound score (its own lexicon; no hand-written polarity lists),
  positive at >= 0.05, negative at <= -0.05 (VADER's documented thresholds); a message whose
  function words are mostly another language's is neutral (`reads_as_english`): VADER's English
  lexicon only finds homographs in it;
- urgency low/medium/high/critical from points for time pressure, repeated failures, shouting and
  strong negativity; a legal threat or fraud makes it critical;
- flags: complaint, abusive, legal_threat, wants_human (the cue lists below are about intent to
  escalate, not polarity).
"""

from __future__ import annotations

import re
from typing import ClassVar

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope, Sentiment, SentimentLabel, Urgency
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.textfold import fold


# The cue patterns are lower-case and matched without re.IGNORECASE against `fold(text)`: the same
# matches, about twice as fast (textfold; tests/unit/test_rules_folding.py compares with the flag).
def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b")


_TIME_PRESSURE_STRONG = _words(
    r"immediately", r"urgent(?:ly)?", r"asap", r"as soon as possible", r"right now", r"emergency"
)
_TIME_PRESSURE = _words(r"today", r"tonight", r"tomorrow", r"by \w+day", r"deadline", r"quickly", r"hurry")
_REPEATED_FAILURE = _words(
    r"still (?:not|no|hasn'?t|haven'?t|isn'?t|waiting)",
    r"again",
    r"(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)) time",
    r"(?:multiple|several|many|three|four|five) times",
    r"keeps? (?:happening|failing|breaking)",
    r"for (?:days|weeks|a week|two weeks|a month)",
    r"(?:no ?one|nobody) (?:has )?(?:helped|responded|replied|answered)",
    r"never (?:arrived|came|received|got)",
)
_FRAUD = _words(r"fraud(?:ulent)?", r"stolen", r"unauthori[sz]ed", r"scam(?:med)?", r"identity theft")
# "sue" and "court" only as threats: bare, they matched a name ("Sue from your team"), an address
# ("5 Oak Court") or a product ("basketball court set"), and a delivery question became an urgent
# legal-threat escalation.
_LEGAL = _words(
    r"lawyers?",
    r"attorneys?",
    r"(?:will|'ll|going to|gonna|want to|plan to|ready to|have to|i|we) sue",
    r"sue (?:you|your|ya|u|them|the company|this company|this store|this shop)",
    r"suing",
    r"lawsuit",
    r"legal action",
    r"(?:take|taking|took|drag|dragging|bring|bringing|see|seeing|meet) (?:you|this|them|it|your \w+)"
    r" (?:to|in|into) court",
    r"(?:go|going|went|gone|head|heading|end up|ends up|ending up|settle this|settled) (?:to|in) court",
    r"court (?:case|action|claim|proceedings)",
    r"small claims",
    r"consumer protection",
    r"report (?:you|this) to (?:the )?(?:bbb|ftc|authorities|attorney general)",
)
_ABUSIVE = _words(
    r"idiots?",
    r"stupid",
    r"morons?",
    r"dumb",
    r"f+u+c+k\w*",
    r"shit\w*",
    r"bullshit",
    r"bastards?",
    r"assholes?",
    r"bitch\w*",
    r"crap",
    r"screw you",
    r"damn you",
)
_WANTS_HUMAN = re.compile(
    r"\b(?:human|real person|live (?:agent|person|chat)|manager|supervisor|representative|"
    r"(?:speak|talk|chat) (?:to|with) (?:someone|somebody|a person|an? agent|a rep))\b"
)
_COMPLAINT = _words(
    r"complain(?:t|ing)?",
    r"unacceptable",
    r"disappointed",
    r"disappointing",
    r"terrible",
    r"horrible",
    r"awful",
    r"worst",
    r"ridiculous",
    r"poor service",
    r"fed up",
    r"not happy",
    r"unhappy",
    r"frustrat\w+",
    r"broken",
    r"damaged",
    r"defective",
)
_SHOUTED_WORD = re.compile(r"\b[A-Z]{4,}\b")
"""Case matters here: matched against the text as written."""


def urgency_points(text: str, compound: float, folded: str) -> int:
    """Points towards urgency: each cue family counts once, so repetition cannot inflate it. The cues
    are read from `folded` (`fold(text)`), the shouting from `text` as written."""
    points = 0
    if _TIME_PRESSURE_STRONG.search(folded):
        points += 2
    elif _TIME_PRESSURE.search(folded):
        points += 1
    if _REPEATED_FAILURE.search(folded):
        points += 2
    if "!!" in text or len(_SHOUTED_WORD.findall(text)) >= 2:
        points += 1
    if compound <= -0.6:
        points += 1
    return points


def urgency_for(points: int, *, critical_cue: bool) -> Urgency:
    if critical_cue or points >= 5:
        return Urgency.CRITICAL
    if points >= 3:
        return Urgency.HIGH
    if points >= 1:
        return Urgency.MEDIUM
    return Urgency.LOW


_LETTER_WORD = re.compile(r"[^\W\d_]+")
_ENGLISH_FUNCTION_WORDS = frozenset({
    "the", "a", "an", "and", "or", "but", "is", "are", "was", "were", "be", "been", "am", "i", "you",
    "he", "she", "it", "we", "they", "my", "your", "our", "me", "us", "to", "of", "in", "on", "for",
    "with", "at", "from", "by", "this", "that", "not", "no", "do", "does", "did", "have", "has", "had",
    "can", "will", "would", "please", "what", "where", "when", "why", "how", "who", "want", "need",
    "just", "so", "if", "all", "there", "here", "very", "get", "got", "still",
})  # fmt: skip
_FOREIGN_FUNCTION_WORDS = frozenset({
    # German, Spanish, French, Italian, Portuguese, Dutch. Words that are also English are left out,
    # but for "die": the German article, and VADER's -2.9 ("Die Größe, die Farbe" read as very
    # negative: a complaint, a note on the account).
    "der", "die", "das", "und", "ist", "nicht", "ich", "mein", "meine", "meinen", "wo", "wie", "ein",
    "eine", "einen", "mit", "für", "auf", "sind", "noch", "bitte", "kein", "keine", "habe", "haben",
    "wurde", "dass", "dem", "sie", "wir", "von", "aber", "auch", "oder", "nach", "el", "los", "las",
    "una", "es", "está", "mi", "mis", "por", "para", "que", "qué", "del", "pero", "su", "muy",
    "gracias", "dónde", "quiero", "cómo", "le", "les", "est", "je", "mon", "ma", "mes", "et", "du",
    "des", "où", "pas", "avec", "dans", "vous", "nous", "qui", "merci", "ce", "cette", "elle", "au",
    "aux", "il", "lo", "gli", "della", "di", "che", "è", "sono", "mio", "mia", "grazie", "dove", "ho",
    "vorrei", "os", "um", "uma", "não", "meu", "minha", "onde", "obrigado", "het", "een", "niet", "ik",
    "mijn", "waar", "de",
})  # fmt: skip


def reads_as_english(folded: str) -> bool:
    """Whether VADER's English lexicon may score `folded` (`fold(text)`): not when the text's function
    words are mostly another language's (at least two different ones, one of them not "die"). VADER
    scores the English words it knows and ignores the rest, so German's article "die" alone made a
    plain question a complaint. Distinct words, so that "DIE DIE DIE you idiots" stays English."""
    words = set(_LETTER_WORD.findall(folded))
    foreign = words & _FOREIGN_FUNCTION_WORDS
    english = words & _ENGLISH_FUNCTION_WORDS
    return len(foreign) < 2 or not foreign - {"die"} or len(foreign) <= len(english)


def label_for(compound: float) -> SentimentLabel:
    if compound >= 0.05:
        return SentimentLabel.POSITIVE
    if compound <= -0.05:
        return SentimentLabel.NEGATIVE
    return SentimentLabel.NEUTRAL


class SentimentAnalyzer(PlainActor):
    name: ClassVar[ActorName] = ActorName.SENTIMENT_ANALYZER

    def __init__(self, deps: ActorDeps) -> None:
        super().__init__(deps)
        # Imported here: VADER loads its lexicon at construction (~7k entries, fast, small).
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()

    def analyze(self, text: str) -> Sentiment:
        folded = fold(text)
        # Another language reads as neutral, not as the English homographs VADER finds in it.
        compound = float(self._vader.polarity_scores(text)["compound"]) if reads_as_english(folded) else 0.0
        compound = max(-1.0, min(1.0, compound))
        legal = bool(_LEGAL.search(folded))
        abusive = bool(_ABUSIVE.search(folded))
        label = label_for(compound)
        complaint = bool(_COMPLAINT.search(folded)) or (label is SentimentLabel.NEGATIVE and compound <= -0.4)
        critical = legal or bool(_FRAUD.search(folded))
        urgency = urgency_for(urgency_points(text, compound, folded), critical_cue=critical)
        return Sentiment(
            label=label,
            score=round(compound, 4),
            urgency=urgency,
            complaint=complaint or legal or abusive,
            abusive=abusive,
            legal_threat=legal,
            wants_human=bool(_WANTS_HUMAN.search(folded)),
        )

    async def handle(self, envelope: Envelope) -> None:
        envelope.sentiment = self.analyze(envelope.message)
