"""``bm.Cascade``: fitting on training examples only, evaluation on held-out ones, picking the
most trusted answer, the model-subset search, journaling through ``bm.call_model``, the
threshold sweep, and (when the RouterBench tables sit next to the repo) real data."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from tests.extras import needs

import bandmaster as bm
from bandmaster.errors import TargetUnreachable
from bandmaster.models import ModelRequest, ModelResponse
from bandmaster.models.builtin import Recorded, RecordedAnswer
from bandmaster.routing import AgreementScorer, Cascade, Example
from bandmaster.routing._cascade import CascadeSearch
from bandmaster.routing._cascade_fit import NEVER
from bandmaster.routing._fit import Panel, collect, similarity, view
from bandmaster.routing._thresholds import Decisions, OperatingPoint, simulate, sweep, z_score

plot = needs("plot", "matplotlib")

LABELS = ("billing", "technical", "account", "shipping")
# name, accuracy on easy tickets, accuracy on hard ones, USD per call
SPECS = (("small", 0.80, 0.35, 1e-4), ("medium", 0.92, 0.55, 3e-4), ("large", 0.97, 0.90, 2e-3))


class Counting(Recorded):
    """A recorded model that remembers which inputs it was asked."""

    def __init__(self, answers: dict[str, RecordedAnswer], *, name: str) -> None:
        super().__init__(answers, name=name)
        self.asked: list[str] = []

    async def request(self, req: ModelRequest) -> ModelResponse:
        self.asked.append(req.text())
        return await super().request(req)


def tickets(n: int, seed: int) -> tuple[list[Example], dict[str, dict[str, RecordedAnswer]]]:
    """Synthetic support tickets: a quarter are hard; wrong answers are random wrong labels, so
    two cheap models that agree are usually right."""
    rng = random.Random(seed)
    examples: list[Example] = []
    answers: dict[str, dict[str, RecordedAnswer]] = {name: {} for name, *_ in SPECS}
    for i in range(n):
        text = f"ticket {seed}-{i}: " + " ".join(
            rng.choice(("card", "login", "parcel", "refund")) for _ in range(5)
        )
        label = rng.choice(LABELS)
        hard = rng.random() < 0.25
        for name, easy_accuracy, hard_accuracy, cost in SPECS:
            right = rng.random() < (hard_accuracy if hard else easy_accuracy)
            output = label if right else rng.choice([x for x in LABELS if x != label])
            answers[name][text] = RecordedAnswer(output=output, cost=cost, correct=right)
        examples.append(Example(input=text, label=label))
    return examples, answers


@pytest.fixture
def data() -> tuple[list[Example], list[Example], list[Counting]]:
    train, train_answers = tickets(400, seed=1)
    test, test_answers = tickets(400, seed=2)
    models = [
        Counting({**train_answers[name], **test_answers[name]}, name=name) for name, *_ in SPECS
    ]  # fmt: skip
    return train, test, models


async def test_fitted_cascade_beats_the_cheapest_model_for_less_than_the_largest(
    data: tuple[list[Example], list[Example], list[Counting]],
) -> None:
    train, test, models = data
    cascade = Cascade(models)
    report = await cascade.fit(train, target={"accuracy": 0.9})
    assert report.learned_scorer
    assert report.accuracy >= 0.9  # out-of-fold, on train
    evaluation = await cascade.evaluate(test)
    small_accuracy, _ = evaluation.single_models["small"]
    _, large_cost = evaluation.single_models["large"]
    assert evaluation.accuracy > small_accuracy + 0.1
    assert evaluation.accuracy > 0.87
    assert evaluation.cost < 0.75 * large_cost
    assert evaluation.escalation[0] == 1.0
    assert evaluation.escalation[-1] < 0.5
    assert evaluation.oracle[0] >= evaluation.accuracy
    assert evaluation.curve == sorted(evaluation.curve)  # cheapest first, accuracy rising


async def test_fitting_asks_the_models_only_about_training_examples(
    data: tuple[list[Example], list[Example], list[Counting]],
) -> None:
    train, test, models = data
    train_inputs, test_inputs = {e.input for e in train}, {e.input for e in test}
    cascade = Cascade(models)
    await cascade.fit(train, target={"budget": 6e-4})
    await Cascade.search(models, train, target={"accuracy": 0.9})
    asked = {text for m in models for text in m.asked}
    assert asked == train_inputs
    assert not asked & test_inputs
    await cascade.evaluate(test)  # evaluation is what asks about the test examples
    assert {text for m in models for text in m.asked} == train_inputs | test_inputs


async def test_budget_target_keeps_the_training_cost_within_budget(
    data: tuple[list[Example], list[Example], list[Counting]],
) -> None:
    train, test, models = data
    cascade = Cascade(models)
    report = await cascade.fit(train, target={"budget": 5e-4})
    assert report.cost <= 5e-4
    assert len(report.thresholds) == 2
    assert report.frontier
    evaluation = await cascade.evaluate(test)
    assert evaluation.cost < 6e-4  # held-out cost stays near the budget


async def test_search_chooses_models_from_the_candidates(
    data: tuple[list[Example], list[Example], list[Counting]],
) -> None:
    train, test, models = data
    # A pricier and worse model is never a sensible last resort: it is pruned.
    decoy_answers = {
        text: RecordedAnswer(output="billing", cost=5e-3, correct=False)
        for text in {*(e.input for e in train), *(e.input for e in test)}
    }
    decoy = Counting(decoy_answers, name="decoy")
    search = await CascadeSearch.prepare([*models, decoy], train)
    assert all(subset[-1] != 3 for subset in search.subsets)
    cascade = search.best({"accuracy": 0.9})
    assert cascade.report is not None
    assert cascade.report.subsets_tried == len(search.subsets) > 1
    assert "decoy" not in cascade.report.models
    assert [m.name for m in cascade.models] == cascade.report.models
    costs = [search.mean_cost[[m.name for m in search.candidates].index(m.name)] for m in cascade.models]
    assert costs == sorted(costs)  # cheap → expensive
    evaluation = await cascade.evaluate(test)
    assert evaluation.accuracy > 0.85


async def test_a_picker_can_return_an_earlier_stage_answer() -> None:
    class TrustTheFirst:
        """Picks stage 0's answer once two stages have answered."""

        def score(
            self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
        ) -> float | None:
            return 0.0

        def pick(
            self, stage: int, request: ModelRequest, answered: Sequence[ModelResponse]
        ) -> tuple[int, float]:
            return (0, 0.95) if stage == 1 else (stage, 0.1)

    small = bm.CallableModel(lambda text: {"output": "billing", "cost": 1e-4}, name="small")
    medium = bm.CallableModel(lambda text: {"output": "refund", "cost": 2e-4}, name="medium")
    large = bm.CallableModel(lambda text: {"output": "other", "cost": 1e-3}, name="large")
    cascade = Cascade([small, medium, large], thresholds=[0.5, 0.5], scorer=TrustTheFirst())
    response = await cascade.request(ModelRequest(input="my bill"))
    assert response.output == "billing"
    assert response.model == "small"
    assert response.cost == pytest.approx(3e-4)  # both stages asked are paid for
    assert response.confidence == pytest.approx(0.95)
    stages = response.raw["stages"]  # type: ignore[index]
    assert [(s["model"], s["accepted"], s["answer_from"]) for s in stages] == [
        ("small", False, None),
        ("medium", True, "small"),
    ]


CASCADE: Cascade | None = None


@bm.workflow
async def answer_ticket(text: str) -> ModelResponse:
    assert CASCADE is not None
    return await bm.call_model(CASCADE, text)


async def test_cascade_through_call_model_journals_every_stage(
    engine: bm.Engine, data: tuple[list[Example], list[Example], list[Counting]]
) -> None:
    global CASCADE
    train, test, models = data
    CASCADE = Cascade(models, name="support-cascade")
    await CASCADE.fit(train, target={"accuracy": 0.9})
    hard = next(e.input for e in test if len({m.answers[e.input].output for m in models}) == 3)
    handle = await engine.start(answer_ticket, hard)
    response = await handle.result(timeout=15)
    (step,) = (await handle.describe()).steps
    assert (step.name, step.kind, step.status) == ("support-cascade", "model", "completed")
    stages = step.output["raw"]["stages"]
    assert [s["model"] for s in stages] == ["small", "medium", "large"][: len(stages)]
    assert sum(s["accepted"] for s in stages) == 1
    assert stages[-1]["accepted"]
    assert all({"output", "score", "cost"} <= set(s) for s in stages)
    assert step.output["cost"] == pytest.approx(sum(s["cost"] for s in stages))
    assert response.raw["stages"] == stages  # type: ignore[index]


@plot
async def test_evaluation_plot_writes_a_png(
    tmp_path: Path, data: tuple[list[Example], list[Example], list[Counting]]
) -> None:
    train, test, models = data
    cascade = Cascade(models)
    await cascade.fit(train, target={"accuracy": 0.9})
    evaluation = await cascade.evaluate(test)
    path = tmp_path / "curve.png"
    evaluation.plot(str(path), others={"baseline": (0.8, 1e-3)})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


@pytest.mark.parametrize(
    "target",
    [
        {},
        {"accuracy": 1.5},
        {"accuracy": 0},
        {"budget": -1.0},
        {"budget": math.nan},
        {"accuracy": "high"},
        {"accuracy": True},
        {"accuracy": 0.9, "budget": 1e-3},
        {"latency": 1.0},
        "accuracy",
    ],
)
async def test_bad_targets_raise_usage_error(
    target: object, data: tuple[list[Example], list[Example], list[Counting]]
) -> None:
    train, _, models = data
    with pytest.raises(bm.UsageError, match="target"):
        await Cascade(models).fit(train, target=target)  # type: ignore[arg-type]
    assert not any(m.asked for m in models), "a bad target fails before any model is asked"


async def test_too_few_examples_raise_usage_error(
    data: tuple[list[Example], list[Example], list[Counting]],
) -> None:
    train, _, models = data
    with pytest.raises(bm.UsageError, match="at least 10 labelled examples"):
        await Cascade(models).fit(train[:6], target={"accuracy": 0.9})


async def test_scorer_at_run_time_matches_the_features_it_was_fitted_on(
    data: tuple[list[Example], list[Example], list[Counting]],
) -> None:
    train, _, models = data
    outcomes = await collect(models, train)
    requests = [ModelRequest(input=e.input) for e in train]
    panel = Panel.build(requests, outcomes.responses)
    scorer = AgreementScorer().fit(panel, outcomes.correct)
    for k in range(3):
        features = panel.features(range(k + 1))
        for e in range(0, 40, 7):
            batch = scorer.probabilities(k, features[e])
            index, score = scorer.pick(k, requests[e], outcomes.responses[e][: k + 1])
            assert index == int(np.argmax(batch))
            assert score == pytest.approx(float(batch.max()))
            own = scorer.score(k, requests[e], outcomes.responses[e][k], outcomes.responses[e][:k])
            assert own == pytest.approx(float(batch[-1]))


def test_sweep_agrees_with_simulating_each_threshold_combination() -> None:
    rng = np.random.default_rng(7)
    n, stages = 60, 3
    decisions = Decisions(
        scores=rng.random((n, stages)).round(1),  # ties on purpose
        correct=rng.random((n, stages)) < 0.7,
        cost=np.tile([1.0, 2.0, 10.0], (n, 1)),
    )
    table = sweep(decisions)
    for index in itertools.product(*(range(len(g)) for g in table.grids)):
        thresholds = [float(g[i]) for g, i in zip(table.grids, index, strict=True)]
        point = simulate(decisions.scores, decisions.correct, decisions.cost, thresholds)
        assert table.accuracy[index] == pytest.approx(point.accuracy)
        assert table.cost[index] == pytest.approx(point.cost)
    best = table.choose(budget=4.0)
    assert best.cost <= 4.0
    assert best.accuracy == pytest.approx(
        max(a for a, c in zip(table.accuracy.flat, table.cost.flat, strict=True) if c <= 4.0)
    )


def test_answers_are_compared_by_option_letter_and_by_code_tokens() -> None:
    def answer(text: str) -> ModelResponse:
        return ModelResponse(output=text, text=text)

    assert similarity(view(answer("B\n")), view(answer("(B)"))) == 1.0
    assert similarity(view(answer("B) the moon")), view(answer("b"))) == 1.0
    assert similarity(view(answer("B")), view(answer("C"))) == 0.0
    assert view(answer("I do not know.")).key != "i"
    # A choice stated in words agrees with the bare one (Winogrande-style options too).
    for stated, bare in [("The answer is (B).", "B"), ("Option 2", "2"), ("Correct answer: C) Paris", "C")]:
        assert similarity(view(answer(stated)), view(answer(bare))) == 1.0
    assert view(answer("The answer is that we cannot tell")).key != "that"
    assert not view(answer("answer" + " " * 100_000 + "!")).choice  # long: not read as a choice

    one = "Here:\n```python\ndef add(a, b):\n    return a + b\n```"
    two = "[PYTHON]\ndef add_numbers(x, y):\n    # sum\n    return x + y\n[/PYTHON]"
    three = "```python\ndef add(a, b, c):\n    print(a)\n```"
    v1, v2, v3 = view(answer(one)), view(answer(two)), view(answer(three))
    assert (v1.function, v1.arity, v2.function, v2.arity, v3.arity) == ("add", 2, "add_numbers", 2, 3)
    assert v1.code
    assert not v1.choice
    assert 0.3 < similarity(v1, v2) < 1.0
    assert similarity(v1, v1) == 1.0


@pytest.mark.parametrize(
    "garbage", ["\n" * 200_000 + "x", "[PYTHON]" * 50_000, "```python\n" * 50_000, "def f(" * 50_000]
)
def test_garbage_answers_are_read_in_one_pass(garbage: str) -> None:
    """Each of these took time quadratic in its length (minutes here; the suite's timeout fails
    it) while a regex rescanned the rest of the text from every line or unclosed opening."""
    seen = view(ModelResponse(output=garbage, text=garbage))
    assert seen.function is None
    assert seen.arity is None


def test_a_never_threshold_always_escalates() -> None:
    assert NEVER > 1.0


# The shared data sits beside the checkout (/work/main) or beside the worktrees (/work/wt/<name>).
SHARED = next(
    (
        path
        for parent in Path(__file__).resolve().parents[3:5]
        if (path := parent / "shared" / "data" / "routerbench-arc-mbpp").is_dir()
    ),
    Path("routerbench-arc-mbpp-not-found"),
)


@pytest.mark.skipif(not SHARED.is_dir(), reason="RouterBench tables not next to the repo")
async def test_real_arc_cascade_beats_its_cheapest_model_for_less_than_gpt4() -> None:
    from benchmarks.routerbench import load_task

    task = load_task(SHARED, "arc")
    assert (len(task.train), len(task.test)) == (1031, 439)
    names = (
        "mistralai/mixtral-8x7b-chat",
        "zero-one-ai/Yi-34B-Chat",
        "claude-instant-v1",
        "gpt-4-1106-preview",
    )
    cascade = Cascade([task.models[n] for n in names])
    gpt4 = await collect([task.models[names[-1]]], task.train)
    report = await cascade.fit(task.train, target={"budget": 0.25 * float(gpt4.cost.mean())})
    evaluation = await cascade.evaluate(task.test)
    cheapest_accuracy, _ = evaluation.single_models[names[0]]
    _, gpt4_cost = evaluation.single_models[names[-1]]
    assert evaluation.accuracy > cheapest_accuracy + 0.05
    assert evaluation.cost < 0.3 * gpt4_cost
    assert evaluation.accuracy > 0.92  # measured 0.94; GPT-4 alone 0.957 at four times the cost
    assert abs(report.accuracy - evaluation.accuracy) < 0.04  # the train estimate generalises


def test_thresholds_carry_over_to_the_refitted_scorer_by_share() -> None:
    from bandmaster.routing._thresholds import transfer_thresholds

    # Two agreement patterns; folds scored the "agree" pattern 0.9439..0.9446, the refit 0.9436.
    oof = np.array([[0.9439], [0.9446], [0.9441], [0.9440], [0.60], [0.59]])
    final = np.array([[0.9436], [0.9437], [0.9436], [0.9437], [0.5938], [0.5937]])
    (kept,) = transfer_thresholds(oof, final, [0.59])  # all accepted out of fold
    assert (final[:, 0] >= kept).all()
    (pattern,) = transfer_thresholds(oof, final, [0.9439])  # the agree pattern out of fold
    assert (final[:, 0] >= pattern).sum() == 4
    assert 0.5938 < pattern < 0.9436  # halfway between distinct scores, not on one
    assert transfer_thresholds(oof, final, [math.inf]) == [math.inf]
    # One example of 200 accepted out of fold, while the refit's highest score is a pattern of
    # a quarter of them: accepting none is the closer share, not accepting the whole pattern.
    few = np.array([[0.9]] + [[0.5]] * 199)
    patterns = np.array([[0.8]] * 50 + [[0.4]] * 150)
    assert transfer_thresholds(few, patterns, [0.9]) == [math.inf]


# --- meeting a target with confidence ---------------------------------------------------------


def test_a_confidence_margin_picks_the_cheapest_point_whose_lower_bound_meets_the_target() -> None:
    rng = np.random.default_rng(3)
    n = 200
    decisions = Decisions(
        scores=rng.random((n, 3)).round(2),
        correct=rng.random((n, 3)) < np.array([0.7, 0.8, 0.95]),
        cost=np.tile([1.0, 2.0, 10.0], (n, 1)),
    )
    table = sweep(decisions)
    z = z_score(0.9)
    plain, careful = table.choose(accuracy=0.85), table.choose(accuracy=0.85, z=z)
    assert careful.accuracy_low(z) >= 0.85 > plain.accuracy_low(z)
    assert careful.accuracy > plain.accuracy
    assert careful.cost > plain.cost
    k = round(careful.accuracy * n)
    assert careful.accuracy_low(z) == pytest.approx(wilson(k, n, 0.9), abs=1e-9)
    cheaper = [  # no cheaper combination has a lower bound that reaches the target
        (a, c)
        for a, c in zip(table.accuracy.flat, table.cost.flat, strict=True)
        if c < careful.cost - 1e-9 and wilson(round(a * n), n, 0.9) >= 0.85
    ]
    assert not cheaper
    budget = table.choose(budget=4.0, z=z)
    assert budget.cost_high(z) <= 4.0
    assert budget.cost <= table.choose(budget=4.0).cost
    assert budget.cost_high(z) > budget.cost  # the margin is real: cost varies per example


async def test_fitting_with_confidence_meets_the_target_on_held_out_data_at_a_price(
    data: tuple[list[Example], list[Example], list[Counting]],
) -> None:
    train, test, models = data
    plain, careful = Cascade(models), Cascade(models)
    estimate = await plain.fit(train, target={"accuracy": 0.9})
    report = await careful.fit(train, target={"accuracy": 0.9}, confidence=0.95)
    assert (report.confidence, estimate.confidence) == (0.95, None)
    assert report.accuracy_low >= 0.9
    assert estimate.accuracy_low == estimate.accuracy  # no confidence asked: no margin
    assert report.accuracy > estimate.accuracy
    assert report.cost > estimate.cost
    held_out = await careful.evaluate(test)
    assert held_out.accuracy >= 0.9  # the margin carries the target over to unseen tickets
    assert held_out.cost > (await plain.evaluate(test)).cost
    # Beats every single model that costs no more, on the test split.
    for name, (accuracy, cost) in held_out.single_models.items():
        if cost <= held_out.cost:
            assert held_out.accuracy > accuracy, name
    # Online feedback still moves the fitted (learned-scorer) thresholds the right way.
    accepted: tuple[ModelResponse, int] | None = None
    for example in test:
        response = await careful.request(ModelRequest(input=example.input))
        stage = next(i for i, s in enumerate(response.raw["stages"]) if s["accepted"])  # type: ignore[index]
        if stage < len(careful.thresholds):  # a stage with a threshold to tune
            accepted = (response, stage)
            break
    assert accepted is not None
    response, stage = accepted
    fitted = list(careful.thresholds)
    for _ in range(40):
        careful.feedback(response, correct=False)
    assert careful.thresholds[stage] > fitted[stage]
    assert [t for i, t in enumerate(careful.thresholds) if i != stage] == [
        t for i, t in enumerate(fitted) if i != stage
    ]
    raised = careful.thresholds[stage]
    for _ in range(1000):  # steps down are half the size of steps up: slower to relax
        careful.feedback(response, correct=True)
    assert careful.thresholds[stage] < fitted[stage] < raised


def wilson(successes: int, n: int, confidence: float) -> float:
    """The one-sided Wilson lower bound, written out from its textbook formula."""
    z = NormalDist().inv_cdf(confidence)
    p = successes / n
    root = math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (p + z * z / (2 * n) - z * root) / (1 + z * z / n)


def test_the_accuracy_bound_has_width_at_accuracy_one_and_near_095() -> None:
    z = z_score(0.9)
    perfect = OperatingPoint((), accuracy=1.0, cost=0.0, escalation=(), examples=50)
    # The normal approximation gave 1.0 here: no margin at all.
    assert perfect.accuracy_low(z) == pytest.approx(wilson(50, 50, 0.9))
    assert perfect.accuracy_low(z) < 0.975
    near = OperatingPoint((), accuracy=0.96, cost=0.0, escalation=(), examples=100)
    normal = 0.96 - z * math.sqrt(0.96 * 0.04 / 100)
    assert near.accuracy_low(z) == pytest.approx(wilson(96, 100, 0.9))
    assert near.accuracy_low(z) < normal


def test_an_unreachable_target_raises_naming_the_closest_point() -> None:
    decisions = Decisions(
        scores=np.array([[0.9, 0.0], [0.2, 0.0], [0.8, 0.0], [0.1, 0.0]]),
        correct=np.array([[1, 1], [0, 0], [1, 0], [0, 1]], bool),
        cost=np.tile([1.0, 10.0], (4, 1)),
    )
    table = sweep(decisions)
    with pytest.raises(TargetUnreachable, match=r"target accuracy 0.990 is out of reach.*0.750") as caught:
        table.choose(accuracy=0.99)
    assert caught.value.best.accuracy == 0.75
    assert caught.value.best.cost == pytest.approx(3.5)  # the cheapest of the most accurate points
    with pytest.raises(TargetUnreachable, match=r"budget 0.5 USD.*cheapest point found costs 1"):
        table.choose(budget=0.5)
    assert table.choose(accuracy=0.75).accuracy == 0.75  # exactly reachable: no error


async def test_fit_and_search_refuse_an_unreachable_target_instead_of_overspending(
    data: tuple[list[Example], list[Example], list[Counting]],
) -> None:
    train, _, models = data
    with pytest.raises(TargetUnreachable, match="out of reach") as caught:
        await Cascade(models).fit(train, target={"accuracy": 0.999})
    assert caught.value.best.accuracy < 0.999
    with pytest.raises(TargetUnreachable, match="budget"):
        await Cascade.search(models, train, target={"budget": 1e-6})


@pytest.mark.parametrize("confidence", [1.0, 0.3, math.nan, True, "high"])
async def test_bad_confidence_raises_usage_error_before_any_model_is_asked(
    confidence: object, data: tuple[list[Example], list[Example], list[Counting]]
) -> None:
    train, _, models = data
    with pytest.raises(bm.UsageError, match="confidence must be a probability"):
        await Cascade(models).fit(train, target={"accuracy": 0.9}, confidence=confidence)  # type: ignore[arg-type]
    with pytest.raises(bm.UsageError, match="confidence must be a probability"):
        await Cascade.search(models, train, target={"accuracy": 0.9}, confidence=confidence)  # type: ignore[arg-type]
    assert not any(m.asked for m in models)


@pytest.mark.parametrize("target", [{"accuracy": 0.9}, {"budget": 8e-4}, {"accuracy": 0.93}])
async def test_the_deployed_cascade_reproduces_its_training_estimate_on_the_training_data(
    target: dict[str, float], data: tuple[list[Example], list[Example], list[Counting]]
) -> None:
    train, _, models = data
    cascades = [Cascade(models), await Cascade.search(models, train, target=target)]
    await cascades[0].fit(train, target=target)
    for cascade in cascades:
        report = cascade.report
        assert report is not None
        assert report.reproduced
        replayed = await cascade.evaluate(train)  # the deployed scorer and thresholds, as `request` runs them
        assert replayed.escalation == pytest.approx(report.deployed_escalation, abs=1e-9)
        assert replayed.cost == pytest.approx(report.deployed_cost, rel=1e-9)
        # ... and the deployed cascade sends as many training queries to each stage as estimated.
        assert replayed.escalation == pytest.approx(report.escalation, abs=0.02)
        assert replayed.cost == pytest.approx(report.cost, rel=0.05)
        # ... and answers about as well: the refitted scorer picks answers as the folds' did.
        assert replayed.accuracy == pytest.approx(report.accuracy, abs=0.03)


def test_a_point_the_refitted_scorer_cannot_reproduce_gives_way_to_one_it_can() -> None:
    """The refitted stage-1 score is one constant (it happened on RouterBench): any threshold
    accepts all or nothing, so a point accepting half out of fold cannot be deployed."""
    from bandmaster.routing._cascade_fit import configure as _configure
    from bandmaster.testing import ScriptedModel

    rng = np.random.default_rng(4)
    n = 200
    oof = rng.random((n, 2))
    correct = np.stack([oof[:, 0] > 0.3, np.ones(n, bool)], axis=1)  # high scores are right
    decisions = Decisions(scores=oof, correct=correct, cost=np.tile([1.0, 10.0], (n, 1)))
    table = sweep(decisions)
    best = table.choose(accuracy=0.9)
    assert 0 < best.escalation[1] < 1  # out of fold, the best point escalates a part
    cascade = Cascade([ScriptedModel(name="a"), ScriptedModel(name="b")])
    refitted = np.full((n, 2), 0.7)
    report = _configure(
        cascade, "last", table, best, learned=True, refitted=refitted, target=(0.9, None, 0.0)
    )
    assert report.reproduced
    assert report.deployed_escalation[1] in (0.0, 1.0)  # all or nothing: what it can do
    # The estimate is a point that all or nothing reproduces (within the 2-point tolerance).
    assert report.deployed_escalation == pytest.approx(report.escalation, abs=0.02)
    assert report.accuracy >= 0.9


def agreement_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate features as a three-stage panel has them: which model gave the answer, whom
    it agrees with, its vote share, and a form every answer has (a bare option letter), which
    with the model indicators is collinear with the intercept."""
    rng = np.random.default_rng(seed)
    right = rng.random((n, 3)) < np.array([0.9, 0.85, 0.95])
    x = np.zeros((n, 3, 8))
    x[:, :, :3] = np.eye(3)
    for i, j in itertools.permutations(range(3), 2):
        x[:, i, 3 + j] = (right[:, i] & right[:, j]) | (~right[:, i] & ~right[:, j] & (rng.random(n) < 0.3))
    x[:, :, 6] = x[:, :, 3:6].sum(axis=2) / 2
    x[:, :, 7] = 1.0
    return x, right


@pytest.mark.parametrize("seed", range(5))
def test_the_stage_regression_converges_where_a_full_newton_step_diverges(seed: int) -> None:
    """From zero, plain Newton steps blew up on three of these five panels (weights ~3e9, every
    answer scored 0 or 1; it happened on ARC); the fit must agree with scikit-learn's."""
    from sklearn.linear_model import LogisticRegression

    from bandmaster.routing._fit import L2, _predict, fit_stage

    x, y = agreement_like(1000, seed)
    w = fit_stage(x, y)
    flat, labels = x.reshape(-1, x.shape[2]), y.reshape(-1)
    reference = LogisticRegression(C=1 / L2, tol=1e-10, max_iter=10_000).fit(flat, labels)
    assert np.abs(w).max() < 20
    assert np.allclose(_predict(w, flat), reference.predict_proba(flat)[:, 1], atol=1e-3)
