"""The scikit-learn provider: a fitted pipeline, in memory or a joblib file, as a model."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="needs bandmaster[sklearn]")
pytest.importorskip("joblib", reason="needs bandmaster[sklearn]")

import joblib
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

import bandmaster as bm
from bandmaster.models.sklearn import SklearnModel

TEXTS = [
    "I was charged twice on my card",
    "refund the double charge please",
    "my invoice shows a wrong amount",
    "billing error on my statement",
    "the app crashes when I log in",
    "cannot reset my password",
    "login page shows an error",
    "the app freezes on start",
]
LABELS = ["billing"] * 4 + ["technical"] * 4


@pytest.fixture(scope="module")
def pipeline_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pipeline = make_pipeline(TfidfVectorizer(), LogisticRegression(random_state=0))
    pipeline.fit(TEXTS, LABELS)
    path = tmp_path_factory.mktemp("sk") / "intent.joblib"
    joblib.dump(pipeline, path)
    return path


async def test_sklearn_label_and_confidence(pipeline_file: Path) -> None:
    model = SklearnModel(pipeline_file)
    assert model.name == "intent"
    response = await model.request(bm.ModelRequest(input="charged twice for one order"))
    pipeline = joblib.load(pipeline_file)
    probabilities = pipeline.predict_proba(["charged twice for one order"])[0]
    assert response.output == "billing"
    assert type(response.output) is str, "numpy scalars become plain Python values"
    assert response.confidence == pytest.approx(float(max(probabilities)))
    assert response.text == "billing"
    assert response.model == "intent"
    technical = await model.request(bm.ModelRequest(input="app crashes at login"))
    assert technical.output == "technical"


async def test_sklearn_without_predict_proba_has_no_confidence() -> None:
    pipeline = make_pipeline(TfidfVectorizer(), LinearSVC(random_state=0)).fit(TEXTS, LABELS)
    response = await SklearnModel(pipeline, name="svm").request(bm.ModelRequest(input="double charge"))
    assert response.output == "billing"
    assert response.confidence is None
    assert response.model == "svm"


def test_sklearn_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(bm.UsageError, match="does not exist"):
        SklearnModel(tmp_path / "missing.joblib")
    with pytest.raises(bm.UsageError, match="has no predict"):
        SklearnModel(object())


@pytest.fixture
def sklearn_yaml(pipeline_file: Path, tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "intent.joblib").write_bytes(pipeline_file.read_bytes())
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n  intent: {provider: sklearn, path: models/intent.joblib}\n"
        "aliases:\n  classification: {versions: {production: intent}}\n"
    )
    return path


async def test_sklearn_from_models_yaml_through_call_model(sklearn_yaml: Path) -> None:
    registry = bm.Registry.load(sklearn_yaml)
    response = await bm.call_model("classification", "billing error twice", registry=registry)
    assert response.output == "billing"
    assert response.model == "intent", "the path is relative to models.yaml"
    assert 0.5 < (response.confidence or 0) <= 1
