"""The workflow the alerting worker process runs (tests/observe/test_alerts.py): a weather
model that goes down while the file named by WEATHER_DOWN_FLAG exists, behind a breaker, with
a backup model as its fallback."""

from __future__ import annotations

import os
from pathlib import Path

import bandmaster as bm

DOWN = Path(os.environ.get("WEATHER_DOWN_FLAG", "weather-down"))


def _weather(city: str) -> bm.ModelResponse:
    if DOWN.exists():
        raise bm.ProviderUnavailable("weather model is down")
    usage = bm.Usage(input_tokens=10, output_tokens=2)
    return bm.ModelResponse(output="sunny", text="sunny", model="weather-v1", usage=usage, cost=0.001)


def _backup(city: str) -> bm.ModelResponse:
    usage = bm.Usage(input_tokens=10, output_tokens=2)
    return bm.ModelResponse(output="cloudy", text="cloudy", model="backup-v1", usage=usage, cost=0.004)


WEATHER = bm.CallableModel(_weather, name="weather")
BACKUP = bm.CallableModel(_backup, name="backup")


@bm.workflow
async def forecast(city: str) -> str:
    response = await bm.call_model(
        WEATHER,
        city,
        fallback=[BACKUP],
        retry=bm.Retry(attempts=1),
        breaker=bm.Breaker(failures=3, window=60, reset=0.5),
    )
    return str(response.output)
