"""Base of the five request bodies: wire encoding and a redacted view for display."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from orchestrator.krtc.enums import Action
from orchestrator.krtc.fields import WireModel

__all__ = ["REVEAL_SECRETS", "ApiRequest"]

#: Serialization context key: only the wire encoder sets it, so dumps elsewhere stay redacted.
REVEAL_SECRETS = "reveal_secrets"


class ApiRequest(WireModel):
    """A request body of one API action."""

    action: ClassVar[Action]

    def to_wire(self) -> dict[str, Any]:
        """The body as sent: the spec's field names, only the fields that were given.

        Nothing is invented: a field left out stays out, so the server's default applies.
        Secrets are revealed here, and only here.
        """
        return self.model_dump(mode="json", exclude_none=True, context={REVEAL_SECRETS: True})

    def to_wire_bytes(self) -> bytes:
        """The exact bytes to sign and send (serialized once, spec §2)."""
        return json.dumps(self.to_wire(), ensure_ascii=False, separators=(",", ":")).encode()

    def redacted(self) -> dict[str, Any]:
        """The body with secrets masked, for display and logs."""
        return self.model_dump(mode="json", exclude_none=True)
