"""Choosing a strategy by cross-validation: single models, random mixing, the question router,
the agreement cascade and the cost-aware cascade, compared out of fold on training examples."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bandmaster.errors import TargetUnreachable
from bandmaster.models import ModelRequest
from bandmaster.models.builtin import Recorded, RecordedAnswer
from bandmaster.routing import Example
from bandmaster.routing._fit import collect
from bandmaster.routing._question import QuestionModel, QuestionRouter, RandomMix, gain_score
from bandmaster.routing._strategy import Comparison, Option, _beats, hull, select, select_strategy

TOPICS = ("refund", "login", "parcel", "invoice", "password", "delivery")


def option(family: str, correct: list[int], cost: list[float]) -> Option:
    return Option(family, family, np.array(correct, float), np.array(cost, float))


def test_a_complex_strategy_must_beat_the_simpler_one_by_more_than_noise() -> None:
    rng = np.random.default_rng(0)
    right = (rng.random(400) < 0.85).astype(int).tolist()
    single = option("single", right, [1.0] * 400)
    # The cascade is as accurate and a hair cheaper: within noise, so the single model stays.
    noisy = option("cascade", right, (1.0 + rng.normal(0, 0.5, 400) - 0.01).tolist())
    picked = select([single, noisy], {"accuracy": 0.8})
    assert picked.chosen.family == "single"
    assert picked.runner_up is not None
    assert picked.runner_up.family == "cascade"
    # Clearly cheaper at the same accuracy: the cascade wins.
    cheap = option("cascade", right, [0.4] * 400)
    assert select([single, cheap], {"accuracy": 0.8}).chosen.family == "cascade"
    # Within a budget, accuracy decides, paired per example.
    better = option("router", [1] * 400, [1.0] * 400)
    assert select([single, better], {"budget": 1.0}).chosen.family == "router"


def test_no_strategy_meeting_the_target_raises_naming_the_closest() -> None:
    single = option("single", [1, 0, 1, 1], [1.0] * 4)
    with pytest.raises(TargetUnreachable, match=r"accuracy 0.990 is out of reach.*closest is single.*0.750"):
        select([single], {"accuracy": 0.99})
    with pytest.raises(TargetUnreachable, match="budget"):
        select([single], {"budget": 0.5})


def test_mixing_uses_only_the_models_on_the_hull() -> None:
    accuracy = np.array([0.5, 0.55, 0.8, 0.9])
    cost = np.array([1.0, 5.0, 3.0, 10.0])  # model 1 is dearer and worse than model 2
    assert hull(accuracy, cost) == [0, 2, 3]


def tickets(n: int, seed: int) -> tuple[list[Example], dict[str, dict[str, RecordedAnswer]]]:
    """Two models; the cheap one fails on "urgent" tickets (the question tells), the strong one
    is right 95% of the time. Ticket length varies tenfold and the strong model's price with it,
    but length says nothing about who is right."""
    rng = random.Random(seed)
    examples = []
    answers: dict[str, dict[str, RecordedAnswer]] = {"cheap": {}, "strong": {}}
    for i in range(n):
        urgent = rng.random() < 0.3
        words = [rng.choice(TOPICS) for _ in range(rng.randint(3, 30))]
        text = f"ticket {seed}-{i} " + ("urgent " if urgent else "") + " ".join(words)
        cheap_right = rng.random() < (0.3 if urgent else 0.95)
        strong_right = rng.random() < 0.95
        answers["cheap"][text] = RecordedAnswer(output="x", cost=1e-4, correct=cheap_right)
        answers["strong"][text] = RecordedAnswer(output="y", cost=1e-5 * len(text), correct=strong_right)
        examples.append(Example(input=text))
    return examples, answers


@pytest.fixture
def pair() -> tuple[list[Example], list[Example], list[Recorded]]:
    train, a = tickets(400, 1)
    test, b = tickets(400, 2)
    return train, test, [Recorded({**a[m], **b[m]}, name=m) for m in ("cheap", "strong")]


async def test_the_question_model_sees_which_tickets_the_cheap_model_fails(
    pair: tuple[list[Example], list[Example], list[Recorded]],
) -> None:
    train, test, models = pair
    outcomes = await collect(models, train)
    question = QuestionModel().fit([e.input for e in train], outcomes.correct, outcomes.cost)
    texts = [e.input for e in test]
    p = question.p_correct(texts)
    urgent = np.array(["urgent" in t for t in texts])
    assert p[urgent, 0].mean() < 0.5 < 0.85 < p[~urgent, 0].mean()
    expected = question.expected_cost(texts)
    lengths = np.array([len(t) for t in texts])
    assert np.corrcoef(expected[:, 1], lengths)[0, 1] > 0.99  # price grows with the ticket
    router = QuestionRouter(models, question, value=1.0)
    urgent_text = next(t for t in texts if "urgent" in t)
    routed = await router.request(ModelRequest(input=urgent_text))
    assert routed.raw is not None
    assert routed.raw["route"] == "strong"


async def test_random_mixing_is_stable_per_request(
    pair: tuple[list[Example], list[Example], list[Recorded]],
) -> None:
    _, test, models = pair
    mix = RandomMix(models[0], models[1], share=0.3)
    first = [(await mix.request(ModelRequest(input=e.input))).model for e in test]
    again = [(await mix.request(ModelRequest(input=e.input))).model for e in test]
    assert first == again
    assert 0.2 < first.count("strong") / len(first) < 0.4


def test_the_gain_score_prefers_escalating_cheap_queries() -> None:
    trust = np.array([0.5, 0.5])
    p_next = np.array([0.9, 0.9])
    cost_next = np.array([1.0, 10.0])  # the same gain, ten times the price
    scores = gain_score(trust, p_next, cost_next, unit=1.0)
    assert scores[0] < scores[1]  # the cheap query is the one escalated first


async def test_select_strategy_beats_mixing_and_the_deployed_model_delivers_on_held_out_data(
    pair: tuple[list[Example], list[Example], list[Recorded]],
) -> None:
    train, test, models = pair
    outcomes = await collect(models, train)
    comparison = Comparison.build(models, train, outcomes)
    strong = outcomes.correct[:, 1].mean()
    target = {"accuracy": float(0.95 * strong)}
    selection = select(comparison.options, target)
    assert selection.chosen.family in ("router", "cascade", "gain-cascade")
    assert selection.candidates["mix"].mean_cost > selection.chosen.mean_cost
    deployed, report = await select_strategy(models, train, target=target)
    assert report.chosen == selection.chosen.family
    assert report.runner_up is not None
    assert report.nested.accuracy_low <= report.nested.accuracy <= report.nested.accuracy_high
    held = await collect(models, test)
    answers = [await deployed.request(ModelRequest(input=e.input)) for e in test]
    accuracy = float(np.mean([bool((a.raw or {}).get("correct")) for a in answers]))
    cost = float(np.mean([a.cost for a in answers]))
    assert accuracy >= 0.95 * held.correct[:, 1].mean() - 0.03
    assert cost < 0.6 * held.cost[:, 1].mean()  # far cheaper than always asking the strong model


async def test_a_cascade_can_escalate_on_the_question_alone(
    pair: tuple[list[Example], list[Example], list[Recorded]],
) -> None:
    from bandmaster.routing import Cascade, QuestionScorer

    train, test, models = pair
    outcomes = await collect(models, train)
    question = QuestionModel().fit([e.input for e in train], outcomes.correct, outcomes.cost)
    cascade = Cascade(models, scorer=QuestionScorer(question), thresholds=[0.6])
    urgent = next(e.input for e in test if "urgent" in e.input)
    calm = next(e.input for e in test if "urgent" not in e.input)
    assert len((await cascade.request(ModelRequest(input=urgent))).raw["stages"]) == 2  # type: ignore[index]
    assert len((await cascade.request(ModelRequest(input=calm))).raw["stages"]) == 1  # type: ignore[index]


def test_a_family_of_many_lucky_options_does_not_beat_a_single_model() -> None:
    # 300 cascade options that are each as good as the single model, plus noise: the luckiest
    # looks better in sample by more than a standard error, but not when chosen out of fold.
    n, draws = 400, 10
    fooled = picked_cascade = 0
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        single = option("single", (rng.random(n) < 0.7).astype(int).tolist(), [1.0] * n)
        lucky = [option("cascade", (rng.random(n) < 0.7).astype(int).tolist(), [1.0] * n) for _ in range(300)]
        luckiest = max(lucky, key=lambda o: o.accuracy)
        fooled += _beats(luckiest, single, None, 1.0, 1.0)  # what the in-sample comparison does
        picked = select([single, *lucky], {"budget": 1.0})
        picked_cascade += picked.chosen.family == "cascade"
        assert picked.candidates["cascade"] is luckiest
        # A simple family with one option is reproduced exactly out of fold.
        assert np.array_equal(picked.unseen["single"].correct, single.correct)
    assert fooled >= 8
    assert picked_cascade <= 2  # a one-SE rule on honest estimates errs about one time in six
    # A family that is truly better still wins.
    better = option("cascade", (rng.random(n) < 0.9).astype(int).tolist(), [1.0] * n)
    assert select([single, *lucky, better], {"budget": 1.0}).chosen.family == "cascade"


def test_at_an_accuracy_target_a_cheaper_family_missing_it_out_of_fold_loses() -> None:
    rng = np.random.default_rng(5)
    n = 400
    single = option("single", (rng.random(n) < 0.95).astype(int).tolist(), [1.0] * n)
    # Many cheap options at about 0.85: one reaches 0.9 in sample by luck only.
    cheap = [option("router", (rng.random(n) < 0.85).astype(int).tolist(), [0.2] * n) for _ in range(400)]
    target = {"accuracy": max(o.accuracy for o in cheap)}
    picked = select([single, *cheap], target)
    assert picked.candidates["router"].mean_cost < picked.candidates["single"].mean_cost
    assert picked.unseen["router"].accuracy < target["accuracy"] - 0.03
    assert picked.chosen.family == "single"


def test_two_lucky_examples_are_not_evidence() -> None:
    n = 300
    base = np.zeros(n)
    base[: n // 2] = 1
    single = option("single", base.astype(int).tolist(), [1.0] * n)
    two = base.copy()
    two[-2:] = 1  # right on two more examples, wrong on none: 1.4 plain standard errors
    assert _beats(option("cascade", two.astype(int).tolist(), [1.0] * n), single, None, 1.0, 1.0) is False
    many = base.copy()
    many[-12:] = 1
    many[0] = 0  # twelve more right, one more wrong: a real difference
    assert _beats(option("cascade", many.astype(int).tolist(), [1.0] * n), single, None, 1.0, 1.0)


CASCADES = ("single", "mix", "cascade", "gain-cascade")


@pytest.fixture
def hedging() -> tuple[list[Example], list[Recorded]]:
    """The cheap model mostly hedges when it is wrong: its answer's form is a signal a cascade
    can use and a mix cannot."""
    rng = random.Random(7)
    examples, answers = [], {"cheap": {}, "strong": {}}
    for i in range(400):
        text = f"question {i}: " + " ".join(rng.choice(TOPICS) for _ in range(5))
        right = rng.random() < 0.75
        hedge = rng.random() < (0.1 if right else 0.8)
        letter = "B" if right else "C"
        said = f"I am not sure, it might be {letter} or something else" if hedge else letter
        answers["cheap"][text] = RecordedAnswer(output=said, cost=1e-4, correct=right)
        answers["strong"][text] = RecordedAnswer(output="B", cost=1e-3, correct=rng.random() < 0.95)
        examples.append(Example(input=text))
    return examples, [Recorded(answers[m], name=m) for m in ("cheap", "strong")]


async def test_the_chosen_cascade_does_on_the_training_data_what_its_estimate_says(
    hedging: tuple[list[Example], list[Recorded]],
) -> None:
    train, models = hedging
    outcomes = await collect(models, train)
    target = {"accuracy": float(0.95 * outcomes.correct[:, 1].mean())}
    deployed, report = await select_strategy(models, train, target=target, families=CASCADES)
    assert report.chosen in ("cascade", "gain-cascade")
    answers = [await deployed.request(ModelRequest(input=e.input)) for e in train]
    escalated = float(np.mean([len((a.raw or {})["stages"]) > 1 for a in answers]))
    # The report says what the deployed cascade does (it is run here as requests run it) ...
    assert escalated == pytest.approx(report.deployed_escalation[1], abs=1e-9)
    assert float(np.mean([a.cost for a in answers])) == pytest.approx(report.deployed_cost, rel=1e-9)
    # ... and that is what the out-of-fold estimate it was chosen on said.
    assert report.deployed_escalation == pytest.approx(report.escalation, abs=0.02)
    assert report.deployed_cost == pytest.approx(report.cost, rel=0.05)
    live = float(np.mean([bool((a.raw or {}).get("correct")) for a in answers]))
    assert live == pytest.approx(report.accuracy, abs=0.03)


@pytest.fixture
async def hedged(hedging: tuple[list[Example], list[Recorded]]) -> tuple[Comparison, np.ndarray]:
    """Every strategy but the router compared on the hedging data, and its correctness matrix."""
    train, models = hedging
    outcomes = await collect(models, train)
    return Comparison.build(models, train, outcomes, families=CASCADES), outcomes.correct


async def test_a_cascade_option_its_deployment_cannot_reproduce_is_passed_over(
    hedged: tuple[Comparison, np.ndarray],
) -> None:
    from dataclasses import replace

    comparison, correct = hedged
    target = {"accuracy": float(0.95 * correct[:, 1].mean())}
    first = select(comparison.options, target, families=CASCADES).chosen
    assert first.family in ("cascade", "gain-cascade")
    assert comparison.deployable(first)  # options are built from reproducible points only
    # Should the refitted scorer give one constant (it happened on RouterBench), it can accept
    # all of the training examples or none, not the part the estimate accepts.
    plan = comparison._plan_of(first)
    constant = replace(plan, refitted=np.full(plan.refitted.shape, 0.5))
    for option in comparison.options:
        if option.family == first.family and option.settings["subset"] == first.settings["subset"]:
            key = (option.family, tuple(option.settings["subset"]), option.settings["final"])
            comparison._plans[key] = constant
    assert not comparison.deployable(first)
    chosen = comparison.choose(target, families=CASCADES).chosen
    assert chosen is not first
    assert comparison.deployable(chosen)
    if chosen.family in ("cascade", "gain-cascade"):
        estimate, deployed = comparison.training_points(chosen)
        assert deployed.escalation == pytest.approx(estimate.escalation, abs=0.02)


def two_models(
    n: int, accuracy: tuple[float, float], cost: tuple[float, float], *, words: bool = True
) -> tuple[list[Example], list[Recorded]]:
    rng = random.Random(3)
    examples, answers = [], {"a": {}, "b": {}}
    for i in range(n):
        text = f"ticket {i} " + " ".join(rng.choice(TOPICS) for _ in range(4)) if words else f"X{i:05d}"
        for name, right, price in zip("ab", accuracy, cost, strict=True):
            answers[name][text] = RecordedAnswer(output=name, cost=price, correct=rng.random() < right)
        examples.append(Example(input=text))
    return examples, [Recorded(answers[m], name=m) for m in "ab"]


async def test_too_few_examples_is_a_usage_error_before_any_model_is_asked() -> None:
    from bandmaster.errors import UsageError
    from bandmaster.routing import Cascade

    examples, models = two_models(6, (0.6, 0.9), (1e-4, 1e-3))
    for attempt in (
        select_strategy(models, examples, target={"accuracy": 0.8}),
        Cascade(models).fit(examples, target={"accuracy": 0.8}),
        Cascade.search(models, examples, target={"accuracy": 0.8}),
        Cascade(models).fit([], target={"accuracy": 0.8}),
    ):
        with pytest.raises(UsageError, match="at least 10 labelled examples"):
            await attempt
    with pytest.raises(UsageError, match="evaluate needs at least one labelled example"):
        await Cascade(models, thresholds=[0.5]).evaluate([])


async def test_a_model_cheapest_and_best_is_chosen_alone_without_a_cascade_error() -> None:
    examples, models = two_models(60, (1.0, 1.0), (1e-4, 1e-3))
    _, report = await select_strategy(models, examples, target={"accuracy": 0.9})
    assert (report.chosen, report.label) == ("single", "a")
    examples, models = two_models(60, (0.0, 0.0), (1e-4, 1e-3))
    with pytest.raises(TargetUnreachable, match="closest is a"):
        await select_strategy(models, examples, target={"accuracy": 0.5})


async def test_questions_sharing_no_word_leave_the_router_at_base_rates() -> None:
    examples, models = two_models(60, (0.5, 0.9), (1e-4, 1e-3), words=False)
    outcomes = await collect(models, examples)
    question = QuestionModel().fit([e.input for e in examples], outcomes.correct, outcomes.cost)
    p = question.p_correct(["X99999", "never seen"])
    assert np.allclose(p[0], p[1])  # the question says nothing
    assert p[0, 0] < p[0, 1]  # but each model's own rate still shows
    _, report = await select_strategy(models, examples, target={"budget": 5e-4})
    assert report.chosen in ("single", "mix", "router")


async def test_cascade_options_are_only_points_their_deployment_reproduces(
    hedged: tuple[Comparison, np.ndarray],
) -> None:
    from bandmaster.routing._thresholds import sweep

    comparison, _ = hedged
    cascades = [o for o in comparison.options if o.family in ("cascade", "gain-cascade")]
    assert cascades
    assert all(comparison.deployable(o) for o in cascades)
    # Out of fold, the hedged answers' score differs a little by fold: the frontier has points
    # accepting them in some folds only, which no deployed scorer can do; they are left out.
    plan = comparison._plan("cascade", (0, 1), "last")
    frontier = sweep(plan.decisions).frontier()
    assert any(not plan.reproducible(p.thresholds) for p in frontier)
