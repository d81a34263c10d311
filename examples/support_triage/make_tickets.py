"""Writes the support-triage sample data: synthetic patient-support tickets made by this project.

    python examples/support_triage/make_tickets.py      # needs `pip install faker` (in the dev extra)

SAMPLE DATA. Every name, date of birth, phone number, e-mail, MRN and address in these files is
invented by Faker with a fixed seed; none belongs to a real person. Two files:

* ``train.jsonl`` (1,200 tickets): what the local intent models and the cascade thresholds learn
  from at set-up.
* ``tickets.jsonl`` (360 tickets): what ``bandmaster demo`` triages and scores, never trained on.

Each line: ``id``, ``customer``, ``text``, ``history`` (earlier messages of that customer, often
empty), gold ``intent`` (billing / clinical / technical / account), gold ``route`` (where a
correct system sends it) and ``phi`` (the invented identifiers in the text, empty when none), so
tests can check that none of them reaches the journal.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from faker import Faker

HERE = Path(__file__).parent
ROUTES = {"billing": "billing_team", "clinical": "nurse", "technical": "it_support", "account": "accounts"}

# Several phrasings per intent, with slots, so a bag-of-words model has to generalise.
TEMPLATES: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my visit on {visit}, can you refund one of the payments?",
        "My insurance should cover the copay but the invoice says I owe ${amount}.",
        "Why is there a new charge of ${amount} on my statement? I already paid it.",
        "Please send me an itemized bill for my appointment on {visit}.",
        "Can I set up a payment plan for the ${amount} balance?",
        "The bill for my lab work looks wrong, it lists a test I never had.",
        "I paid ${amount} online on {visit} but the portal still shows a balance.",
        "How do I get a receipt for my last payment for my HSA?",
        "Do you accept {insurer}? I got a bill saying my claim was denied.",
        "I was billed for a no-show fee but I cancelled the day before.",
        "my statement has a late fee, i never got the first invoice",
        "Could you explain the charges on the explanation of benefits from {insurer}?",
        "Refund please, I was overcharged ${amount} for the flu shot.",
        "Who do I talk to about a collections notice for a bill I already settled?",
    ],
    "clinical": [
        "I have had a fever since yesterday after starting the new medication.",
        "Is it normal to feel dizzy on this dose of {drug}?",
        "The pain in my {part} is worse, should I keep taking {drug}?",
        "I think I am having a side effect from {drug}, my skin is itchy and red.",
        "Can I take ibuprofen together with {drug}?",
        "My blood pressure readings at home have been high all week.",
        "I need a refill of my {drug} prescription before Friday.",
        "The rash on my {part} has spread since the appointment, what should I do?",
        "should i stop the antibiotics if i feel better already",
        "My child has a cough and a temperature of 39, do we need to come in?",
        "I missed two doses of {drug}, do I double up tomorrow?",
        "The stitches on my {part} look swollen and are oozing a little.",
        "What were the results of my blood test from {visit}?",
        "I feel short of breath when I climb stairs since the surgery.",
    ],
    "technical": [
        "The patient portal keeps showing an error when I log in.",
        "I forgot my password and the reset email never arrives.",
        "The app crashes when I try to upload my insurance card photo.",
        "Login to the portal fails with error 500 since this morning.",
        "The video visit link does not open on my phone, it just spins.",
        "I can't see my test results in the app, the page is blank.",
        "Two-factor code never comes by text message.",
        "the website says my session expired every two minutes",
        "The app will not let me book an appointment, the button is greyed out.",
        "I get 'account locked' after one wrong password.",
        "Messages I send through the portal disappear after I hit send.",
        "The download of my visit summary PDF fails in Safari.",
        "Notifications from the app stopped working after the update.",
    ],
    "account": [
        "Please update my address to {address}.",
        "I need a name change on my profile after my wedding.",
        "How do I close my account? I moved to another state.",
        "Change the email on my account to {email} please.",
        "Can you add my daughter as a dependent on my account?",
        "Please update my phone number on file, the old one is disconnected.",
        "I want to give my husband access to my records as a proxy.",
        "Remove my old insurance from my profile, I switched to {insurer}.",
        "how do i change my preferred pharmacy on my profile",
        "I'd like to opt out of marketing emails and keep appointment reminders.",
        "Please merge my two accounts, I registered twice by mistake.",
        "Update my emergency contact to my sister.",
    ],
}
# A second topic mentioned in passing: the gold intent stays the first, which a word counter
# gets wrong now and then; this is what the larger models are for.
ASIDES: dict[str, list[str]] = {
    "billing": ["Also, is there a charge for this?", "I hope this won't end up on my bill."],
    "clinical": ["My back still hurts by the way.", "I'm still on the {drug} you prescribed."],
    "technical": ["The portal wouldn't let me do this online.", "I tried the app first but it errored."],
    "account": ["My address changed recently too.", "Not sure my email on file is current."],
}
OPENERS = ["", "", "", "Hi, ", "Hello, ", "Good morning. ", "Hi there - "]
CLOSERS = ["", "", "", " Thanks.", " Thank you!", " Please help.", " Regards"]
DRUGS = ["metformin", "lisinopril", "amoxicillin", "sertraline", "atorvastatin", "prednisone"]
PARTS = ["knee", "shoulder", "back", "ankle", "wrist", "hip"]
INSURERS = ["Aetna", "Cigna", "Blue Cross", "UnitedHealthcare", "Humana"]


def phi_sentences(fake: Faker) -> list[tuple[str, list[str]]]:
    """Every form of sentence with invented identifiers the generator writes, for one invented
    person, each with those identifiers (what a privacy test plants and then looks for)."""
    name, dob = fake.name(), fake.date_of_birth(minimum_age=18, maximum_age=90).strftime("%m/%d/%Y")
    phone, mrn = fake.numerify("(###) ###-####"), f"MRN {fake.numerify('#######')}"
    ssn = fake.ssn()
    return [
        (f"My name is {name}, date of birth {dob}.", [name, dob]),
        (f"This is {name}, you can call me at {phone}.", [name, phone]),
        (f"Patient {name}, {mrn}.", [name, mrn]),
        (f"My SSN is {ssn} if you need it.", [ssn]),
        (f"Call me back at {phone}.", [phone]),
        (f"I'm writing for my mother {name} (DOB {dob}).", [name, dob]),
    ]


def _phi_sentence(fake: Faker, rng: random.Random) -> tuple[str, list[str]]:
    """One sentence carrying invented identifiers, and those identifiers."""
    return rng.choice(phi_sentences(fake))


def _typo(text: str, rng: random.Random) -> str:
    """Swap two letters inside one longer word, as hurried typing does."""
    words = text.split(" ")
    long_words = [i for i, word in enumerate(words) if len(word) > 5 and word.isalpha()]
    if not long_words:
        return text
    i = rng.choice(long_words)
    j = rng.randrange(1, len(words[i]) - 2)
    word = words[i]
    words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(words)


def _phrasings(intent: str, unseen: bool) -> list[str]:
    """Every third phrasing is kept out of the training file, so evaluation measures
    generalisation to wordings the models never saw, not recall of templates."""
    return [t for i, t in enumerate(TEMPLATES[intent]) if (i % 3 == 2) == unseen]


def _ticket(number: int, fake: Faker, rng: random.Random, prefix: str, held_out: float) -> dict[str, Any]:
    intent = rng.choices(list(TEMPLATES), weights=[35, 25, 22, 18])[0]
    slots = {
        "visit": fake.date_between("-90d", "today").strftime("%m/%d"),
        "amount": f"{rng.randint(15, 900)}.{rng.randint(0, 99):02d}",
        "drug": rng.choice(DRUGS),
        "part": rng.choice(PARTS),
        "insurer": rng.choice(INSURERS),
        "address": fake.street_address(),
        "email": fake.free_email(),
    }
    text = rng.choice(_phrasings(intent, unseen=rng.random() < held_out)).format(**slots)
    if rng.random() < 0.25:
        text = _typo(text, rng)
    ambiguous = rng.random() < 0.15
    if ambiguous:
        other = rng.choice([label for label in TEMPLATES if label != intent])
        text += " " + rng.choice(ASIDES[other]).format(**slots)
    phi: list[str] = []
    if rng.random() < 0.2:
        sentence, phi = _phi_sentence(fake, rng)
        text = f"{sentence} {text}" if rng.random() < 0.5 else f"{text} {sentence}"
    text = rng.choice(OPENERS) + text + rng.choice(CLOSERS)
    history = []
    if rng.random() < 0.3:
        earlier = rng.choice(list(TEMPLATES))
        history = [rng.choice(TEMPLATES[earlier]).format(**slots) for _ in range(rng.randint(1, 3))]
    # Contact details in the ticket or its history are personal data too.
    phi += [slots[key] for key in ("email", "address") if any(slots[key] in t for t in [text, *history])]
    # Plain billing questions are the ones a confident system may answer by itself.
    route = "auto_reply" if intent == "billing" and not ambiguous else ROUTES[intent]
    return {
        "id": f"{prefix}{number:04d}",
        "customer": f"C{rng.randint(1000, 9999)}",
        "text": text.strip(),
        "history": history,
        "intent": intent,
        "route": route,
        "phi": phi,
    }


def planted(count: int, seed: int) -> list[dict[str, Any]]:
    """Tickets that all carry invented identifiers, in every form the generator writes: a PHI
    sentence of each form in turn, an address in the text and an e-mail in the history."""
    fake, rng = Faker("en_US"), random.Random(seed)
    fake.seed_instance(seed)
    rows = []
    for number in range(count):
        row = _ticket(number, fake, rng, "P", held_out=0.0)
        forms = phi_sentences(fake)
        sentence, values = forms[number % len(forms)]
        address, email = fake.street_address(), fake.free_email()
        row["text"] = f"{sentence} {row['text']} Please update my address to {address}."
        row["history"] = [*row["history"], f"Change the email on my account to {email} please."]
        row["phi"] = sorted({*row["phi"], *values, address, email})
        rows.append(row)
    return rows


def write(path: Path, count: int, seed: int, prefix: str, held_out: float) -> None:
    fake, rng = Faker("en_US"), random.Random(seed)
    fake.seed_instance(seed)
    rows = [_ticket(number, fake, rng, prefix, held_out) for number in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def main() -> None:
    write(HERE / "train.jsonl", 1200, seed=11, prefix="TR", held_out=0.0)
    write(HERE / "tickets.jsonl", 360, seed=29, prefix="T", held_out=0.4)


if __name__ == "__main__":
    main()
