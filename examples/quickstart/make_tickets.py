"""Writes tickets.jsonl: synthetic patient-support tickets made by this project (seeded)."""

from __future__ import annotations

import json
import random
from pathlib import Path

TEMPLATES = {
    "billing": [
        "I was charged twice for my visit on {date}, can you refund one payment?",
        "My insurance should cover the copay but the invoice says I owe ${amount}.",
        "Why is there a new charge on my bill? I already paid.",
        "Please send me an itemized invoice for my last payment.",
    ],
    "clinical": [
        "I have a fever since yesterday after starting the new medication.",
        "Is it normal to feel dizzy on this dose of my prescription?",
        "The pain in my knee is worse, should I change the medication dose?",
        "I think I have a side effect from the prescription you gave me.",
    ],
    "technical": [
        "The patient portal app keeps showing an error when I log in.",
        "I forgot my password and the reset email never arrives.",
        "The website crashes when I try to upload my documents.",
        "Login to the portal fails with error 500.",
    ],
    "account": [
        "Please update my address and email on my account.",
        "I need a name change on my profile after my wedding.",
        "How do I cancel my account? I moved to another state.",
        "Change the email on my account profile please.",
    ],
}
PHI_SNIPPETS = ["My SSN is {ssn}.", "My MRN: {mrn}.", "Born {date}."]


def main() -> None:
    rng = random.Random(7)
    rows = []
    for number in range(240):
        label = rng.choice(list(TEMPLATES))
        text = rng.choice(TEMPLATES[label]).format(
            date=f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/2026", amount=rng.randint(20, 400)
        )
        if rng.random() < 0.15:
            text += " " + rng.choice(PHI_SNIPPETS).format(
                ssn=f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
                mrn=rng.randint(1000000, 9999999),
                date=f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/19{rng.randint(40, 99)}",
            )
        rows.append({"id": f"T{number:04d}", "text": text})
    out = Path(__file__).with_name("tickets.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
