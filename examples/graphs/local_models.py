"""Small deterministic stand-ins for the models of the example graphs, so they run offline.

``models.yaml`` registers each as a ``callable`` provider; swap a line there for an
``openai``/``anthropic`` entry and the graph runs on a real model without other changes.
A callable model receives the rendered prompt; the example prompts put the instructions
first and the material after a line ``---``, which is all these functions read.

Two of them misbehave on purpose, so the graphs' policies show in the journal:
``write_reply`` (the large reply model) is down for tickets mentioning an outage, and the
fallback ``write_reply_mini`` answers instead; ``check_compliance`` flags auto-renewal clauses.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bandmaster import ModelResponse, ProviderUnavailable, Usage

INTENTS = {
    "billing": ("bill", "charge", "charged", "invoice", "refund", "payment", "copay"),
    "technical": ("app", "login", "password", "portal", "error", "crash", "website", "outage"),
    "account": ("address", "email", "account", "profile", "cancel my"),
}
PHI = re.compile(r"\b(\d{3}-\d{2}-\d{4}|MRN[:\s]*\d{6,}|\d{2}/\d{2}/\d{4})\b")
RISKY = {
    "high": ("unlimited liability", "indemnify", "automatic renewal", "auto-renew", "exclusive"),
    "medium": ("terminate", "penalty", "late fee", "non-compete", "confidential"),
}


def material(prompt: str) -> str:
    """What follows the ``---`` line of a prompt (the whole prompt if there is none)."""
    return prompt.split("\n---\n", 1)[-1].strip()


def _tokens(prompt: str, answer: str) -> Usage:
    return Usage(input_tokens=len(prompt.split()), output_tokens=len(answer.split()))


# --- support pipeline -------------------------------------------------------------------------


def classify_intent(prompt: str) -> ModelResponse:
    text = material(prompt).lower()
    hits = {label: sum(word in text for word in words) for label, words in INTENTS.items()}
    label, best = max(hits.items(), key=lambda kv: kv[1])
    if best == 0:
        label, confidence = "general", 0.4
    else:
        confidence = round(min(0.99, 0.6 + 0.15 * best), 2)
    return ModelResponse(output=label, text=label, confidence=confidence, usage=_tokens(prompt, label))


def detect_phi(prompt: str) -> ModelResponse:
    found = PHI.findall(material(prompt))
    return ModelResponse(output=bool(found), text=json.dumps(bool(found)), confidence=0.99 if found else 0.9)


def redact(text: str, phi: bool) -> str:
    """A ``step`` node: mask what looks like PHI before any model or person reads the ticket."""
    return PHI.sub("[REDACTED]", text) if phi else text


def write_reply(prompt: str) -> ModelResponse:
    ticket = material(prompt)
    if "outage" in ticket.lower():
        raise ProviderUnavailable("reply-large: 503 Service Unavailable")
    reply = f"Thanks for reaching out. We have looked into your request ({ticket[:60]}) and fixed it."
    return ModelResponse(output=reply, text=reply, usage=_tokens(prompt, reply))


def write_reply_mini(prompt: str) -> ModelResponse:
    reply = f"Thanks for your message. A fix is on its way: {material(prompt)[:40]}"
    return ModelResponse(output=reply, text=reply, usage=_tokens(prompt, reply))


def brief_agent(prompt: str) -> ModelResponse:
    ticket = material(prompt)
    brief = f"Customer writes: {ticket[:80]}{'…' if len(ticket) > 80 else ''}"
    return ModelResponse(output=brief, text=brief, usage=_tokens(prompt, brief))


# --- contract pipeline ------------------------------------------------------------------------


def extract_clauses(prompt: str) -> ModelResponse:
    sentences = [s.strip() for s in re.split(r"(?<=[.;])\s+", material(prompt)) if s.strip()]
    clauses = [s for s in sentences if len(s.split()) >= 4]
    return ModelResponse(output=clauses, text=json.dumps(clauses), usage=_tokens(prompt, " ".join(clauses)))


def classify_risk(prompt: str) -> ModelResponse:
    text = material(prompt).lower()
    flagged = {level: [w for w in words if w in text] for level, words in RISKY.items()}
    level = "high" if flagged["high"] else "medium" if flagged["medium"] else "low"
    output = {"level": level, "flags": flagged["high"] + flagged["medium"]}
    return ModelResponse(output=output, text=json.dumps(output), confidence=0.8)


def summarise(prompt: str) -> ModelResponse:
    """Map and reduce alike: keep the first sentence of every paragraph, shortened."""
    parts = [p.strip() for p in material(prompt).split("\n\n") if p.strip()]
    summary = " ".join(re.split(r"(?<=[.;])\s+", p)[0][:120] for p in parts)
    return ModelResponse(output=summary, text=summary, usage=_tokens(prompt, summary))


def check_compliance(prompt: str) -> ModelResponse:
    """Stands in for a fine-tuned compliance model: auto-renewal without notice is flagged."""
    try:
        clauses = [str(c).lower() for c in json.loads(material(prompt))]
    except ValueError:
        clauses = [material(prompt).lower()]
    issues = [
        f"auto-renewal without a notice period: {clause[:60]!r}"
        for clause in clauses
        if ("automatic renewal" in clause or "auto-renew" in clause) and "notice" not in clause
    ]
    output = {"compliant": not issues, "issues": issues}
    return ModelResponse(output=output, text=json.dumps(output), confidence=0.95)


def format_report(state: dict[str, Any]) -> dict[str, Any]:
    """A ``step`` node without ``inputs``: it receives a copy of the whole graph state."""
    contract = state["contract"]
    legal = state.get("legal")
    return {
        "contract": contract["id"],
        "risk": state["risk"]["output"]["level"],
        "flags": state["risk"]["output"]["flags"],
        "compliant": state["compliance"]["output"]["compliant"],
        "issues": state["compliance"]["output"]["issues"],
        "summary": state["summary"]["output"],
        "clauses": len(state["clauses"]["output"]),
        "legal_review": legal,
    }
