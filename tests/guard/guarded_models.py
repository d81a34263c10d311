"""Names of the scripted models the guard tests use (see ``conftest.registry``)."""

PRIMARY = "gpt-primary"
BACKUP = "gpt-backup"
CLAUDE = "claude-guarded"
