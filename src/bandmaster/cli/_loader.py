"""Find workflows by ``module:name`` or ``path/to/file.py:name``, as uvicorn finds apps."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import sysconfig
import traceback
from pathlib import Path
from types import ModuleType

from bandmaster.engine import Workflow
from bandmaster.engine.backend_kit import HostedWorkflows, describe_key
from bandmaster.errors import UsageError, WorkflowNotFound


def import_module(spec: str) -> ModuleType:
    """Import a dotted module name or a ``.py`` file (its folder goes on ``sys.path``)."""
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise UsageError(f"no such file: {spec}")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = path.stem
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
            return sys.modules[name]
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise UsageError(f"cannot import {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise UsageError(f"cannot import {spec}: {_user_error(exc)}") from exc
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise UsageError(f"cannot import module {spec!r}: {exc}") from exc
    except Exception as exc:
        raise UsageError(f"cannot import module {spec!r}: {_user_error(exc)}") from exc


_NOT_USER_CODE = tuple(
    str(Path(p).resolve()) for p in {*sysconfig.get_paths().values(), str(Path(__file__).parents[1])}
)


def _user_error(exc: Exception) -> str:
    """The error of the user's module, with where in the user's own code it happened (frames of
    importlib, the standard library, installed packages and bandmaster left out), on one line."""
    frames = [
        f"{Path(f.filename).name} line {f.lineno} in {f.name}"
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith("<") and not str(Path(f.filename).resolve()).startswith(_NOT_USER_CODE)
    ]
    where = f" (at {', called from '.join(reversed(frames))})" if frames else ""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}{where}"


def workflows_in(module: ModuleType) -> list[Workflow[..., object]]:
    return [value for value in vars(module).values() if isinstance(value, Workflow)]


def load_workflow(target: str) -> Workflow[..., object]:
    """``module:workflow``; the workflow may be named by attribute or by workflow name, and by
    ``name@version`` for one version (by name alone: the newest the module defines)."""
    module_spec, sep, attribute = target.rpartition(":")
    if not sep or not module_spec or not attribute:
        raise UsageError(f"expected MODULE:WORKFLOW (e.g. examples/app.py:triage), got {target!r}")
    module = import_module(module_spec)
    value = getattr(module, attribute, None)
    if isinstance(value, Workflow):
        return value
    name, _, version = attribute.partition("@")
    matches = [wf for wf in workflows_in(module) if wf.name == name and version in ("", wf.version)]
    if matches:
        return HostedWorkflows(matches).defaults[name]
    known = ", ".join(describe_key(wf.name, wf.version) for wf in workflows_in(module)) or "none"
    raise WorkflowNotFound(f"{module_spec} has no workflow {attribute!r} (workflows there: {known})")


def load_workflows(modules: list[str]) -> list[Workflow[..., object]]:
    found: list[Workflow[..., object]] = []
    for spec in modules:
        if ":" in spec and not spec.endswith(".py"):
            found.append(load_workflow(spec))
            continue
        module_workflows = workflows_in(import_module(spec))
        if not module_workflows:
            raise WorkflowNotFound(f"module {spec!r} defines no @bm.workflow")
        found.extend(module_workflows)
    return found
