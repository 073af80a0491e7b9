"""Sessions in phase ``recording`` for real sandbox recordings, as a start job leaves them."""

from __future__ import annotations

from orchestrator.krtc.client import KrtcClient
from orchestrator.krtc.enums import Mode
from orchestrator.state import Phase, SessionStore, Source
from tests.integration.sandbox_fixture import SandboxHandle
from tests.integration.worker_fixture import start_body


def recording_sessions(
    sandbox: SandboxHandle,
    store: SessionStore,
    count: int,
    prefix: str,
    *,
    pin_status_5: bool = False,
) -> list[str]:
    """Start ``count`` recordings (channels ``{prefix}-{n}``) and store a recording session
    for each; ``pin_status_5``: the sandbox reports status 5 at once, not after its start time.
    """
    ids = []
    with KrtcClient(sandbox.settings()) as client:
        for n in range(count):
            body = start_body(f"{prefix}-{n}")
            del body["clientRequest"]["storageConfig"]
            sid = client.start(body).sid
            if pin_status_5:
                sandbox.set_status(sid, 5)
            session = store.create(
                app_id=body["appId"],
                cname=body["cname"],
                uid=body["uid"],
                mode=Mode.MIX,
                request=body,
            ).session
            store.transition(
                session.id, to=Phase.RECORDING, sid=sid, last_status=5, source=Source.TASK
            )
            ids.append(session.id)
    return ids
