"""The models of the contract review: general ones, and one specialised compliance model.

general      ``extract`` (clauses as a JSON array), ``risk`` (low/medium/high with the phrases
             that raise it), ``summarise`` (map and reduce of the executive summary): small
             local functions standing in for a hosted general LLM, answering JSON as asked
specialised  ``compliance``: a clause classifier trained at set-up on ``clauses.jsonl`` (the
             project's labelled clauses), like a fine-tuned model; it flags each clause whose
             most likely policy issue clears ``ISSUE_THRESHOLD``

Swap any entry of ``registry()`` for an OpenAI-compatible or Anthropic model and the graph
runs on it unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import joblib
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

import bandmaster as bm

HERE = Path(__file__).parent
ISSUE_THRESHOLD = 0.3
RISK_WORDS = {
    "high": (
        "unlimited",
        "without limit",
        "any and all",
        "indemnif",
        "disclose",
        "sold",
        "without restriction",
    ),
    "medium": ("exclusive", "automatic", "auto-renew", "may not terminate", "cannot be terminated", "waives"),
}


def material(prompt: str) -> str:
    """What follows the prompt's ``---`` line: the instructions come first, the material after."""
    return prompt.split("\n---\n", 1)[-1].strip()


def _usage(prompt: str, answer: str) -> bm.Usage:
    return bm.Usage(input_tokens=len(prompt.split()) * 4 // 3, output_tokens=len(answer.split()) * 4 // 3)


def extract(prompt: str) -> bm.ModelResponse:
    text = material(prompt)
    sentences = [s.strip() for s in re.split(r"(?<=[.;])\s+", text) if len(s.split()) >= 4]
    clauses = [s for s in sentences if not s.startswith("This Services Agreement is made between")]
    answer = json.dumps(clauses)
    return bm.ModelResponse(output=clauses, text=answer, usage=_usage(prompt, answer))


def risk(prompt: str) -> bm.ModelResponse:
    text = material(prompt).lower()
    flags = {level: [w for w in words if w in text] for level, words in RISK_WORDS.items()}
    level = "high" if flags["high"] else "medium" if flags["medium"] else "low"
    output = {"level": level, "flags": flags["high"] + flags["medium"]}
    answer = json.dumps(output)
    return bm.ModelResponse(output=output, text=answer, usage=_usage(prompt, answer), confidence=0.8)


def summarise(prompt: str) -> bm.ModelResponse:
    """Map and reduce alike: the first clause of every paragraph, shortened."""
    parts = [p.strip() for p in material(prompt).split("\n\n") if p.strip()]
    summary = " ".join(re.split(r"(?<=[.;])\s+", p)[0][:140] for p in parts)
    return bm.ModelResponse(output=summary, text=summary, usage=_usage(prompt, summary))


def train_compliance(clauses_path: Path, cache_dir: Path | None) -> Pipeline:
    rows = [json.loads(line) for line in clauses_path.read_text().splitlines() if line.strip()]
    texts, labels = [r["text"] for r in rows], [r["issue"] for r in rows]
    key = hashlib.sha256(clauses_path.read_bytes()).hexdigest()[:16]
    cached = cache_dir / f"compliance-{key}.joblib" if cache_dir else None
    if cached is not None and cached.is_file():
        return joblib.load(cached)  # type: ignore[no-any-return]
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5))),
        ]
    )
    model = LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced")
    pipeline = Pipeline([("features", features), ("model", model)]).fit(texts, labels)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(pipeline, cached)
    return pipeline


class ComplianceModel:
    """The specialised model: every clause classified, issues above the threshold reported."""

    name = "compliance-ft"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.issue_columns = [i for i, label in enumerate(pipeline.classes_) if label != "none"]

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        try:
            clauses = [str(c) for c in json.loads(material(req.text()))]
        except ValueError as exc:
            raise bm.MalformedResponse(f"compliance-ft expects a JSON array of clauses: {exc}") from exc
        issues = []
        if clauses:
            for clause, row in zip(clauses, self.pipeline.predict_proba(clauses), strict=True):
                best = max(self.issue_columns, key=lambda i: row[i])
                if row[best] >= ISSUE_THRESHOLD:
                    issues.append({"issue": str(self.pipeline.classes_[best]), "clause": clause})
        output: dict[str, Any] = {"compliant": not issues, "issues": issues}
        answer = json.dumps(output)
        return bm.ModelResponse(output=output, text=answer, model=self.name, usage=_usage(req.text(), answer))


def format_report(state: dict[str, Any]) -> dict[str, Any]:
    """The last stage, plain code: the reviewer's one-page report."""
    contract, compliance = state["contract"], state["compliance"]["output"]
    return {
        "contract": contract["id"],
        "title": contract["title"],
        "risk": state["risk"]["output"]["level"],
        "risk_flags": state["risk"]["output"]["flags"],
        "compliant": compliance["compliant"],
        "issues": sorted({i["issue"] for i in compliance["issues"]}),
        "clauses": len(state["clauses"]["output"]),
        "summary": state["summary"]["output"],
        "summary_chunks": state["summary"]["chunks"],
    }


def registry(cache_dir: Path | None = None) -> bm.Registry:
    compliance = ComplianceModel(train_compliance(HERE / "clauses.jsonl", cache_dir))
    general = {"input": 0.5, "output": 1.5}  # nominal USD per million tokens of a mid-size hosted model
    return bm.Registry.from_dict(
        {
            "prices": {
                "general-extract": general,
                "general-risk": general,
                "general-summary": general,
                "compliance-ft": {"input": 0.2, "output": 0.2},
            },
            "aliases": {
                name: {
                    "versions": {"production": model},
                    "policy": {"timeout": 5.0, "retry": {"attempts": 2}},
                }
                for name, model in (
                    ("clause-extractor", "general-extract"),
                    ("risk-classifier", "general-risk"),
                    ("summarizer", "general-summary"),
                    ("compliance-checker", "compliance-ft"),
                )
            },
        },
        models={
            "general-extract": bm.CallableModel(extract, name="general-extract"),
            "general-risk": bm.CallableModel(risk, name="general-risk"),
            "general-summary": bm.CallableModel(summarise, name="general-summary"),
            "compliance-ft": compliance,
        },
    )
