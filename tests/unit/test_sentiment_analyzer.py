"""sentiment_analyzer policy: VADER label/score, urgency from cues, escalation flags."""

from __future__ import annotations

import pytest

from actormesh_runtime.actors.sentiment_analyzer import SentimentAnalyzer, urgency_for
from actormesh_runtime.envelope import SentimentLabel, Urgency
from tests.support.envelopes import make_deps, make_envelope


@pytest.fixture(scope="module")
def analyzer() -> SentimentAnalyzer:
    return SentimentAnalyzer(make_deps())


@pytest.mark.parametrize(
    ("text", "label"),
    [
        pytest.param(
            "Thanks, the headphones are great and delivery was fast!", SentimentLabel.POSITIVE, id="praise"
        ),
        pytest.param("Where is my order?", SentimentLabel.NEUTRAL, id="plain-question"),
        pytest.param(
            "This is terrible, the keyboard arrived broken and I am very angry",
            SentimentLabel.NEGATIVE,
            id="angry",
        ),
    ],
)
def test_label_and_score(analyzer: SentimentAnalyzer, text: str, label: SentimentLabel) -> None:
    result = analyzer.analyze(text)
    assert result.label is label
    assert -1.0 <= result.score <= 1.0
    if label is SentimentLabel.POSITIVE:
        assert result.score >= 0.05
    elif label is SentimentLabel.NEGATIVE:
        assert result.score <= -0.05


@pytest.mark.parametrize(
    ("text", "urgency"),
    [
        pytest.param("Where is my order?", Urgency.LOW, id="no-cues"),
        pytest.param("Can it arrive by tomorrow?", Urgency.MEDIUM, id="mild-time-pressure"),
        pytest.param("I need it urgently", Urgency.MEDIUM, id="urgent"),
        pytest.param(
            "My order is still not here and I need it immediately",
            Urgency.HIGH,
            id="repeated-failure-and-immediately",
        ),
        pytest.param(
            "This is the third time I write. Still not here. I need it RIGHT NOW!! This is AWFUL",
            Urgency.CRITICAL,
            id="everything",
        ),
        pytest.param("I will contact my lawyer about this order", Urgency.CRITICAL, id="legal-is-critical"),
        pytest.param("There is an unauthorized charge on my card", Urgency.CRITICAL, id="fraud-is-critical"),
    ],
)
def test_urgency(analyzer: SentimentAnalyzer, text: str, urgency: Urgency) -> None:
    assert analyzer.analyze(text).urgency is urgency


@pytest.mark.parametrize(
    ("points", "critical_cue", "urgency"),
    [
        pytest.param(0, False, Urgency.LOW, id="0-low"),
        pytest.param(1, False, Urgency.MEDIUM, id="1-medium"),
        pytest.param(3, False, Urgency.HIGH, id="3-high"),
        pytest.param(5, False, Urgency.CRITICAL, id="5-critical"),
        pytest.param(0, True, Urgency.CRITICAL, id="critical-cue"),
    ],
)
def test_urgency_thresholds(points: int, critical_cue: bool, urgency: Urgency) -> None:
    assert urgency_for(points, critical_cue=critical_cue) is urgency


FLAGS = ("complaint", "abusive", "legal_threat", "wants_human")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Where is my order?", set(), id="none"),
        pytest.param("The mouse arrived damaged, very disappointed", {"complaint"}, id="complaint"),
        pytest.param("You are all idiots", {"abusive", "complaint"}, id="insult"),
        pytest.param("What the fuck is going on with my order", {"abusive", "complaint"}, id="profanity"),
        pytest.param("I will sue you", {"legal_threat", "complaint"}, id="sue"),
        pytest.param("My attorney will hear about this", {"legal_threat", "complaint"}, id="attorney"),
        pytest.param("I want to speak to a manager", {"wants_human"}, id="manager"),
        pytest.param("Can I talk to a real person please", {"wants_human"}, id="real-person"),
        pytest.param("I have an issue with my order", set(), id="issue-is-not-sue"),
        pytest.param("Hello, is my order on its way?", set(), id="hello"),
        pytest.param("The courteous courier left it at the door", set(), id="courteous-is-not-court"),
        # Once each a legal threat, so a plain question went to a person as urgent.
        pytest.param("My parcel to 5 Oak Court hasn't arrived yet", set(), id="court-in-an-address"),
        pytest.param("Is the basketball court set in stock?", set(), id="court-in-a-product"),
        pytest.param("Sue from your team said it would ship today", set(), id="sue-is-a-name"),
        pytest.param("I bought it for Sue, where is it?", set(), id="for-sue"),
        pytest.param("I'll see you in court", {"legal_threat", "complaint"}, id="see-you-in-court"),
        pytest.param("I am going to sue your company", {"legal_threat", "complaint"}, id="going-to-sue"),
        pytest.param("We'll sue", {"legal_threat", "complaint"}, id="we-ll-sue"),
        pytest.param("This will end up in court", {"legal_threat", "complaint"}, id="end-up-in-court"),
    ],
)
def test_flags(analyzer: SentimentAnalyzer, text: str, expected: set[str]) -> None:
    result = analyzer.analyze(text)
    assert {flag for flag in FLAGS if getattr(result, flag)} == expected


@pytest.mark.parametrize(
    ("text", "label", "expected"),
    [
        # VADER's lexicon is English: in German, the article "die" (-2.9) made a plain question a
        # complaint (an account note, urgency), and "Gift" (poison) praise.
        pytest.param(
            "Wo ist die Lieferung? Die Größe, die Farbe", SentimentLabel.NEUTRAL, set(), id="de-die"
        ),
        pytest.param("Die Bestellung ist nicht angekommen", SentimentLabel.NEUTRAL, set(), id="de-article"),
        pytest.param("Gift für meine Frau, wo ist es?", SentimentLabel.NEUTRAL, set(), id="de-gift"),
        pytest.param("Mon colis est arrivé, merci!", SentimentLabel.NEUTRAL, set(), id="fr"),
        pytest.param("¿Dónde está mi pedido? Es muy tarde", SentimentLabel.NEUTRAL, set(), id="es"),
        pytest.param("Где мой заказ?", SentimentLabel.NEUTRAL, set(), id="ru"),
        pytest.param("我的订单在哪里", SentimentLabel.NEUTRAL, set(), id="zh"),
        # English stays English, "die" and a foreign word or two included.
        pytest.param(
            "My phone will die, the charger is broken", SentimentLabel.NEGATIVE, {"complaint"}, id="en-die"
        ),
        pytest.param(
            "I hate this, muy mal, terrible service", SentimentLabel.NEGATIVE, {"complaint"}, id="en-mixed"
        ),
        pytest.param("Thanks, the headphones are great", SentimentLabel.POSITIVE, set(), id="en-praise"),
        # "die" alone, however often, is no other language: one foreign word repeated is English.
        pytest.param(
            "DIE DIE DIE you idiots", SentimentLabel.NEGATIVE, {"complaint", "abusive"}, id="en-die-repeated"
        ),
        pytest.param("Die, die, die!", SentimentLabel.NEGATIVE, {"complaint"}, id="en-die-only"),
    ],
)
def test_other_languages_read_as_neutral_not_as_english_homographs(
    analyzer: SentimentAnalyzer, text: str, label: SentimentLabel, expected: set[str]
) -> None:
    result = analyzer.analyze(text)
    assert result.label is label
    assert {flag for flag in FLAGS if getattr(result, flag)} == expected
    if label is SentimentLabel.NEUTRAL:
        assert (result.score, result.urgency) == (0.0, Urgency.LOW)


@pytest.mark.parametrize(
    ("text", "expected", "urgency"),
    [
        # The escalation cues are read in any case, the Turkish capitals İ included (what VADER makes
        # of the words it cannot read is not the point).
        pytest.param("I WİLL TAKE LEGAL ACTİON", {"legal_threat", "complaint"}, Urgency.CRITICAL, id="tr-İ"),
        pytest.param("İ WANT A HUMAN", {"wants_human"}, Urgency.MEDIUM, id="tr-human"),
    ],
)
def test_escalation_cues_are_read_in_turkish_capitals(
    analyzer: SentimentAnalyzer, text: str, expected: set[str], urgency: Urgency
) -> None:
    result = analyzer.analyze(text)
    assert {flag for flag in FLAGS if getattr(result, flag)} == expected
    assert result.urgency is urgency


async def test_handle_writes_only_the_sentiment_section(analyzer: SentimentAnalyzer) -> None:
    envelope = make_envelope("My order is still not here, I want a human now!")
    before = envelope.model_dump(exclude={"sentiment"})
    await analyzer.handle(envelope)
    assert envelope.sentiment is not None
    assert envelope.sentiment.wants_human
    assert envelope.model_dump(exclude={"sentiment"}) == before
