"""Errors about input data that a user must be able to act on from one line."""

from __future__ import annotations


class InputError(ValueError):
    """Malformed input: says where (line or record) and what.

    The caller adds the file name with :meth:`located`, unless the raiser resolved the file
    itself and passes ``file``.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        record: str | None = None,
        file: str | None = None,
    ):
        self.message = message
        self.line = line
        self.record = record
        self.file = file
        super().__init__(self.located(file) if file else self.where() + message)

    def where(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.record is not None:
            parts.append(f"record {self.record}")
        return (", ".join(parts) + ": ") if parts else ""

    def located(self, file: str) -> str:
        """The one-line message for a user: ``FILE: line N, record R: what``."""
        return f"{file}: {self.where()}{self.message}"
