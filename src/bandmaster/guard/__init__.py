"""Guards on what goes into and out of steps: PII/PHI redaction (``bandmaster.guard.pii``,
extra ``pii``). Submodules load their heavy dependencies only when imported."""
