"""bandmaster: durable orchestration of AI models, data and business logic.

import bandmaster as bm

@bm.step(timeout=2.0, retry=bm.Retry(attempts=3))
async def classify(text: str) -> str: ...

@bm.workflow
async def triage(text: str) -> str:
    return await classify(text)

bm.run(triage, "my card was charged twice")
"""

from bandmaster.engine import (
    Engine,
    RunHandle,
    RunInfo,
    Step,
    StepContext,
    StepInfo,
    Workflow,
    current_step,
    now,
    random,
    run,
    sleep,
    step,
    uuid,
    wait_for,
    workflow,
)
from bandmaster.errors import (
    AuthenticationFailed,
    BandmasterError,
    Cancelled,
    InvalidInput,
    InvalidRequest,
    MalformedResponse,
    NonDeterminismError,
    PayloadTooLarge,
    ProviderUnavailable,
    RateLimited,
    RetriesExhausted,
    RetryableError,
    RunCancelled,
    RunFailed,
    RunNotFound,
    StepError,
    StepFailed,
    StepTimeout,
    StoreError,
    UsageError,
    WaitTimeout,
    WorkflowNotFound,
)
from bandmaster.policies import Retry

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed",
    "BandmasterError",
    "Cancelled",
    "Engine",
    "InvalidInput",
    "InvalidRequest",
    "MalformedResponse",
    "NonDeterminismError",
    "PayloadTooLarge",
    "ProviderUnavailable",
    "RateLimited",
    "Retry",
    "RetriesExhausted",
    "RetryableError",
    "RunCancelled",
    "RunFailed",
    "RunHandle",
    "RunInfo",
    "RunNotFound",
    "Step",
    "StepContext",
    "StepError",
    "StepFailed",
    "StepInfo",
    "StepTimeout",
    "StoreError",
    "UsageError",
    "WaitTimeout",
    "Workflow",
    "WorkflowNotFound",
    "__version__",
    "current_step",
    "now",
    "random",
    "run",
    "sleep",
    "step",
    "uuid",
    "wait_for",
    "workflow",
]
