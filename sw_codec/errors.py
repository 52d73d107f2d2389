"""The one exception type that malformed, truncated or hostile input raises."""


class FormatError(ValueError):
    """A ``.pcz`` file, layer payload or block cannot be decoded.

    Every check in the decoder raises this type and nothing else, so callers (and the CLI) need to
    catch one exception. ``layer`` and ``offset`` locate the problem: the layer name and the byte
    offset from the start of the file (or of the payload, when decoding a payload on its own).
    """

    def __init__(self, message: str, *, layer: str | None = None, offset: int | None = None):
        self.reason = message
        self.layer = layer
        self.offset = offset
        super().__init__(self._text())

    def _text(self) -> str:
        where = []
        if self.layer is not None:
            where.append(f"layer {self.layer!r}")
        if self.offset is not None:
            where.append(f"byte offset {self.offset}")
        return f"{self.reason} ({', '.join(where)})" if where else self.reason

    def located(self, *, layer: str | None = None, base: int = 0) -> "FormatError":
        """The same error, placed in ``layer`` with its offset shifted by ``base`` bytes."""
        return FormatError(
            self.reason,
            layer=self.layer if layer is None else layer,
            offset=None if self.offset is None else self.offset + base,
        )
