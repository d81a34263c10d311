"""Small real models for the wrapper tests: they answer, or fail the way they are told to."""

from __future__ import annotations

import bandmaster as bm


class Scripted:
    """Answers ``"<name>: <text>"`` after raising each error of ``failures`` in turn."""

    def __init__(self, name: str, *failures: Exception, usage: bm.Usage | None = None) -> None:
        self.name = name
        self.failures = list(failures)
        self.usage = usage or bm.Usage()
        self.calls = 0

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return bm.ModelResponse(output=f"{self.name}: {req.text()}", model=self.name, usage=self.usage)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def down(name: str) -> bm.ProviderUnavailable:
    return bm.ProviderUnavailable(f"{name} is down")
