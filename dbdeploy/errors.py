"""One exception family for everything dbdeploy refuses or fails at.

Core code raises these; only the CLI turns them into a message and an exit code, so library
users get typed exceptions and CLI users get one clear line instead of a traceback.
"""

from __future__ import annotations


class DbdeployError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with when this reaches it."""

    exit_code = 1


FIX_MARK = " — fix: "
"""Validators end their ValueError messages with ``FIX_MARK + instruction``; SpecError (and the
spec loader, for pydantic errors) split it off into :attr:`SpecError.fix`, so every refusal
says what to change."""


def split_fix(message: str) -> tuple[str, str | None]:
    """``"reason — fix: do this"`` → ``("reason", "do this")``; ``(message, None)`` without a fix.

    The last marker wins: the offending value quoted in the reason may itself contain the marker.
    """
    reason, mark, fix = message.rpartition(FIX_MARK)
    return (reason, fix) if mark and fix.strip() else (message, None)


class SpecError(DbdeployError):
    """A spec is malformed or unsafe. Carries the file, the field path and the fix."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 fix: str | None = None) -> None:
        if fix is None:
            message, fix = split_fix(message)
        self.file = file
        self.field = field
        self.fix = fix
        self.reason = message
        super().__init__(self.render())

    def render(self) -> str:
        where = ": ".join(part for part in (self.file, self.field) if part)
        text = f"{where}: {self.reason}" if where else self.reason
        if self.fix:
            text += f" — fix: {self.fix}"
        return text

    def located(self, file: str) -> SpecError:
        """The same error, with the spec file filled in when the raiser did not know it."""
        if self.file:
            return self
        return SpecError(self.reason, file=file, field=self.field, fix=self.fix)


class UsageError(DbdeployError):
    """Bad command-line usage or configuration."""

    exit_code = 2


class StaleBundleError(DbdeployError):
    """`generate --check` found generated/ out of date with specs/."""

    exit_code = 1


class ConfigError(UsageError):
    """The configuration file or environment selection is wrong."""


class IntegrityError(DbdeployError):
    """An applied bundle changed, went missing, or bundles are out of order."""

    exit_code = 3


class BundleFormatError(IntegrityError):
    """A bundle in ``generated/`` that cannot be read as ``dbdeploy generate`` writes it: a malformed or
    misplaced marker (``-- dbdeploy:step`` with a missing field or an unknown lock, a batch marker
    without its pair or with a bad ``rows=``, a ``tx=step`` step that is not one ``BEGIN; … COMMIT;``),
    SQL psql would run differently, or a ``manifest.json`` that does not parse or lacks a field.

    Exit code 3 (integrity refusal, nothing run). ``file`` is the path, ``line`` the 1-based line (None
    for a manifest field), ``field`` the manifest field, ``fix`` what to do; raised by the executor's
    bundle reader (:mod:`dbdeploy.executor.bundles`) for apply, rollback, status and verify.
    """

    def __init__(self, reason: str, *, file: str, line: int | None = None, field: str | None = None,
                 fix: str = "restore generated/ from version control or run `dbdeploy generate` "
                            "(never edit generated files by hand)") -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.field = field
        self.fix = fix
        where = f"{file}:{line}" if line is not None else file
        if field:
            where += f": {field}"
        super().__init__(f"{where}: {reason}{FIX_MARK}{fix}")


class TrustError(IntegrityError):
    """dbdeploy's schemas hold an object it must not trust (README "Security"): owned by a role other
    than the deploying role, a configured owner or a superuser, or carrying a trigger, rule, policy
    or another role's write privilege. Raised before anything runs; the message names each object."""


class LockWaitError(DbdeployError):
    """Another dbdeploy run holds the deployment lock longer than --lock-wait."""

    exit_code = 3


class MigrationFailed(DbdeployError):
    """A step failed (after retries); the history records it."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached dbdeploy (the CLI's signal handlers raise it; psycopg cancels the
    statement running on the server when it interrupts a wait)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signum)


class Stopped(DbdeployError):
    """dbdeploy was stopped by a signal; what ran on the server was cancelled. Exit 128 + the
    signal's number (130 for SIGINT, 143 for SIGTERM), as shells report a process a signal ended."""

    def __init__(self, message: str, signum: int) -> None:
        self.exit_code = 128 + signum
        super().__init__(message)


class PrivilegeError(DbdeployError):
    """The role lacks a privilege the run needs (checked before anything runs; nothing was run).

    The message names each privilege and the statement a DBA runs to grant it.
    """

    exit_code = 4


class MissingDependencyError(UsageError):
    """An optional package a command needs is not installed; the message names the extra to install."""

    def __init__(self, message: str, *, fix: str) -> None:
        self.fix = fix
        super().__init__(f"{message}{FIX_MARK}{fix}")
