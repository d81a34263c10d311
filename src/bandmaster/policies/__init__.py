"""Pure policy decisions: no I/O, no clock reads, testable with a fake random source."""

from bandmaster.policies.retry import Retry

__all__ = ["Retry"]
