"""Writes the contract-review sample data. SAMPLE DATA: every contract, party and clause here is
invented by this project for the example; none is a real agreement or legal advice.

    python examples/contract_review/make_contracts.py

* ``clauses.jsonl``: labelled clauses (``text``, ``issue``: a policy problem or ``none``), what
  the specialised compliance model is trained on at set-up;
* ``contracts.jsonl``: 16 contracts assembled from *other* wordings of the same clause kinds,
  with gold ``issues`` (the policy problems in them), ``compliant`` and ``risk`` (low / medium /
  high). A few are long enough that the summary needs map-reduce.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
PARTIES = [
    ("Acme Health Inc.", "Northwind Analytics LLC"),
    ("Riverside Clinic Group", "Bluebird Billing Services"),
    ("Summit Care Partners", "Lumen Cloud Hosting Ltd."),
    ("Harbor Pediatrics", "Keystone Staffing Co."),
    ("Pinecrest Hospital", "Orbit Transcription Inc."),
    ("Valley Family Practice", "Clearpath Imaging LLC"),
]

# Clause kinds: a policy issue (or "none") and a risk level, with several wordings each. Three
# fifths of the wordings train the compliance model; the rest only ever appear in contracts.
CLAUSES: dict[str, tuple[str, str, list[str]]] = {
    "auto_renewal_no_notice": (
        "auto_renewal_no_notice",
        "medium",
        [
            "This Agreement shall automatically renew for successive one-year terms.",
            "Upon expiry the term renews automatically for a further twelve months.",
            "The subscription will auto-renew at the end of each term at the then-current price.",
            "This contract renews by itself each year on the anniversary of the effective date.",
            "At the end of the initial term this Agreement is extended automatically for another term.",
            "Renewal is automatic and the Agreement continues for consecutive annual periods.",
        ],
    ),
    "auto_renewal_with_notice": (
        "none",
        "low",
        [
            "This Agreement renews for one-year terms unless either party gives sixty days' written notice.",
            "The term renews automatically unless a party objects in writing ninety days before expiry.",
            "Either party may prevent renewal by written notice at least thirty days before the term ends.",
            "The contract is extended annually unless cancelled with sixty days' notice.",
        ],
    ),
    "unlimited_liability": (
        "unlimited_liability",
        "high",
        [
            "The Customer's liability under this Agreement shall be unlimited.",
            "No cap applies to the liability of the Customer for any claim arising from this Agreement.",
            "The Customer accepts liability without limit for all losses of the Supplier.",
            "Nothing in this Agreement limits the amount the Customer may owe for damages of any kind.",
            "The Customer shall be liable for all damages, direct or indirect, without any ceiling.",
        ],
    ),
    "capped_liability": (
        "none",
        "low",
        [
            "Each party's total liability is capped at the fees paid in the twelve months before the claim.",
            "Liability of either party shall not exceed the amounts paid under this Agreement in one year.",
            "Neither party is liable for indirect damages, and direct damages are limited to the annual fees.",
            "The aggregate liability of each party is limited to two times the annual contract value.",
        ],
    ),
    "data_sharing_without_baa": (
        "data_sharing_without_baa",
        "high",
        [
            "The Supplier may share patient data with its affiliates for any business purpose.",
            "The Supplier may disclose health records to third parties at its discretion.",
            "Patient information may be sold or licensed by the Supplier to partners.",
            "The Supplier may use clinical data for its own products without restriction.",
            "Health information received may be transferred to subcontractors without further agreement.",
        ],
    ),
    "data_with_baa": (
        "none",
        "low",
        [
            "The Supplier processes protected health information only as permitted by the Business Associate Agreement.",
            "Patient data is used solely to provide the services and under the signed Business Associate Agreement.",
            "The Supplier shall safeguard health information as required by HIPAA and the attached BAA.",
            "Protected health information is never disclosed except as the Business Associate Agreement allows.",
        ],
    ),
    "no_termination_right": (
        "no_termination_right",
        "medium",
        [
            "The Customer may not terminate this Agreement before the end of the term for any reason.",
            "This Agreement cannot be terminated by the Customer during the initial term.",
            "No right of early termination is granted to the Customer, even for material breach.",
            "The Customer waives any right to end this Agreement before it expires.",
            "Termination by the Customer prior to expiry is not permitted under any circumstances.",
        ],
    ),
    "termination_for_cause": (
        "none",
        "low",
        [
            "Either party may terminate this Agreement for material breach not cured within thirty days.",
            "The Customer may terminate for convenience on ninety days' written notice.",
            "Either party may end the Agreement if the other becomes insolvent.",
            "A party may terminate immediately if the other breaches confidentiality.",
        ],
    ),
    "broad_indemnity": (
        "broad_indemnity",
        "high",
        [
            "The Customer shall indemnify the Supplier against any and all claims, however caused.",
            "The Customer indemnifies the Supplier for all losses, including those caused by the Supplier's negligence.",
            "The Customer will defend and hold harmless the Supplier from every claim of any kind.",
            "The Customer shall indemnify the Supplier even for the Supplier's own wilful misconduct.",
            "All third-party claims are to be indemnified by the Customer regardless of fault.",
        ],
    ),
    "mutual_indemnity": (
        "none",
        "low",
        [
            "Each party shall indemnify the other against claims caused by its own breach.",
            "The Supplier indemnifies the Customer for claims that the services infringe intellectual property.",
            "Each party indemnifies the other for losses resulting from its negligence.",
            "Indemnities are mutual and limited to claims arising from a party's own fault.",
        ],
    ),
    "exclusivity": (
        "none",
        "medium",
        [
            "The Customer shall buy these services exclusively from the Supplier during the term.",
            "The Customer agrees not to engage any other provider for similar services.",
            "During the term the Supplier is the sole and exclusive provider of the services.",
            "The Customer will not procure comparable services from any competitor of the Supplier.",
        ],
    ),
    "boilerplate": (
        "none",
        "low",
        [
            "Invoices are payable within thirty days of receipt.",
            "This Agreement is governed by the laws of the State of Delaware.",
            "Each party shall keep the other's confidential information secret for five years.",
            "Notices must be given in writing to the addresses stated above.",
            "The Supplier shall deliver monthly reports on service levels.",
            "Amendments are valid only if made in writing and signed by both parties.",
            "Neither party may assign this Agreement without the other's consent.",
            "The Supplier shall maintain insurance appropriate to the services.",
            "Services are performed in a professional manner by qualified staff.",
            "Disputes are first escalated to senior management before any litigation.",
            "Fees are fixed for the first year and may rise by at most three percent annually.",
            "The Supplier shall meet the service levels set out in Schedule 2.",
        ],
    ),
}
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


def _split(wordings: list[str]) -> tuple[list[str], list[str]]:
    cut = -(-len(wordings) * 3 // 5)  # three fifths train, the rest only ever appear in contracts
    return wordings[:cut], wordings[cut:]


def clauses_file() -> list[dict[str, str]]:
    rows = []
    for kind, (issue, _risk, wordings) in CLAUSES.items():
        train, _ = _split(wordings) if kind != "boilerplate" else (wordings[:8], wordings[8:])
        rows += [{"text": text, "issue": issue, "kind": kind} for text in train]
    return rows


def contracts_file(count: int = 16, seed: int = 5) -> list[dict[str, object]]:
    rng = random.Random(seed)
    held_out = {
        kind: (_split(w)[1] if kind != "boilerplate" else w[8:] + w[:4])
        for kind, (_, _, w) in CLAUSES.items()
    }
    contracts = []
    for number in range(count):
        customer, supplier = PARTIES[number % len(PARTIES)]
        risky = [k for k in CLAUSES if CLAUSES[k][0] != "none" or k == "exclusivity"]
        safe = [k for k in CLAUSES if CLAUSES[k][0] == "none" and k not in ("boilerplate", "exclusivity")]
        kinds = rng.sample(risky, rng.choice([0, 0, 1, 1, 2, 3])) + rng.sample(safe, rng.randint(1, 3))
        # Every fourth contract is long: boilerplate repeated as schedules, past the context window.
        filler = 24 if number % 4 == 3 else rng.randint(4, 8)
        kinds += ["boilerplate"] * filler
        rng.shuffle(kinds)
        clauses = [rng.choice(held_out[kind]) for kind in kinds]
        issues = sorted({CLAUSES[k][0] for k in kinds if CLAUSES[k][0] != "none"})
        risk = max((CLAUSES[k][1] for k in kinds), key=RISK_ORDER.__getitem__)
        paragraphs = [
            f"This Services Agreement is made between {customer} (the Customer) and {supplier} (the Supplier)."
        ]
        paragraphs += [" ".join(clauses[i : i + 3]) for i in range(0, len(clauses), 3)]
        contracts.append(
            {
                "id": f"SAMPLE-{number + 1:03d}",
                "title": f"Services Agreement {customer} / {supplier} (sample)",
                "text": "\n\n".join(paragraphs),
                "issues": issues,
                "compliant": not issues,
                "risk": risk,
            }
        )
    return contracts


def main() -> None:
    (HERE / "clauses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in clauses_file()))
    (HERE / "contracts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in contracts_file()))


if __name__ == "__main__":
    main()
