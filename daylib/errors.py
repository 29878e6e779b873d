"""One exception root with a few families, so callers can catch by meaning."""

from __future__ import annotations


class DaylibError(Exception):
    """Root of every error daylib raises on purpose."""


class ConfigError(DaylibError):
    """The configuration is invalid (unknown key, bad value)."""


class UserError(DaylibError):
    """Something the CLI user asked for cannot be done; exit code 1."""


class NotFound(UserError):
    """A workset (or other record) does not exist."""


class SpecError(DaylibError):
    """A workset failed validation; carries every problem at once."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))

    @property
    def category(self) -> str:
        cats = {i.category for i in self.issues}
        return "configuration" if cats == {"configuration"} else "data"


class Issue:
    """One validation problem: where it is (key path) and what to do about it."""

    __slots__ = ("category", "message", "path")

    def __init__(self, path: str, message: str, category: str = "data") -> None:
        self.path = path
        self.message = message
        self.category = category

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self) -> str:
        return f"Issue({self.path!r}, {self.message!r}, {self.category!r})"


class StoreError(DaylibError):
    """The state store refused or failed an operation."""


class ConflictError(StoreError):
    """A conditional write lost: the item is not in the state the writer expected. ``owner``
    is the item's owner as the store saw it then, if any (who won a claim race)."""

    owner: str | None = None


class LeaseLost(ConflictError):
    """The caller no longer holds the lease (fenced out by a newer token, or cancelled)."""


class IllegalTransition(UserError):
    """The requested state change is not allowed from the workset's current state."""


class AwsError(DaylibError):
    """An AWS call failed in a way the caller cannot fix by retrying immediately."""

    def __init__(self, message: str, code: str = "") -> None:
        self.code = code
        super().__init__(message)


class AwsThrottled(AwsError):
    """AWS asked us to slow down (after the client's own retries)."""


class AwsUnavailable(AwsError):
    """The service failed (5xx) or could not be reached (connection, timeout)."""


class AwsNotFound(AwsError):
    """The resource a call named does not exist; ``resource`` names it."""

    def __init__(self, message: str, code: str = "", *, resource: str = "") -> None:
        self.resource = resource
        super().__init__(message, code)


class AwsAccessDenied(AwsError):
    """The credentials may not do this (or there are none)."""


class AwsInvalidRequest(AwsError):
    """AWS refused the request as malformed or not allowed in this state."""


class AwsConditionFailed(AwsError):
    """A conditional write's condition did not hold; ``item`` is the old item if returned."""

    def __init__(self, message: str, code: str = "",
                 *, item: dict[str, object] | None = None) -> None:
        self.item = item
        super().__init__(message, code)


class ShutdownRequested(BaseException):
    """Raised inside workers on a cold shutdown; not catchable by ``except Exception``."""
