"""``callflow serve``: the local stack against the real providers.

The same embedded AWS (moto: DynamoDB, Secrets Manager, Step Functions running the project's ASL
with the real handlers), the API and the bridge as ``callflow demo`` runs, but no stand-ins: the
provider settings and secrets come from the environment (``CALLFLOW_*``, see README), and the
providers reach this machine through the public URLs you give (a tunnel to the two ports).
"""

from __future__ import annotations

import os
import signal
import threading

from callflow.config import Settings, get_settings, reset_settings
from callflow.services import get_services, reset_services
from callflow_dev.local.aws import EmbeddedAws
from callflow_dev.local.servers import AsgiServer, LoopThread

REQUIRED = {
    "zoho_client_id": "CALLFLOW_ZOHO_CLIENT_ID",
    "zoho_client_secret": "CALLFLOW_ZOHO_CLIENT_SECRET",
    "zoho_refresh_token": "CALLFLOW_ZOHO_REFRESH_TOKEN",
    "zoho_trigger_secret": "CALLFLOW_ZOHO_TRIGGER_SECRET",
    "infobip_base_url": "CALLFLOW_INFOBIP_BASE_URL",
    "infobip_api_key": "CALLFLOW_INFOBIP_API_KEY",
    "infobip_calls_configuration_id": "CALLFLOW_INFOBIP_CALLS_CONFIGURATION_ID",
    "infobip_webhook_password": "CALLFLOW_INFOBIP_WEBHOOK_PASSWORD",
    "infobip_webhook_path_secret": "CALLFLOW_INFOBIP_WEBHOOK_PATH_SECRET",
    "elevenlabs_api_key": "CALLFLOW_ELEVENLABS_API_KEY",
    "elevenlabs_agent_id": "CALLFLOW_ELEVENLABS_AGENT_ID",
    "elevenlabs_webhook_secret": "CALLFLOW_ELEVENLABS_WEBHOOK_SECRET",
    "bridge_path_secret": "CALLFLOW_BRIDGE_PATH_SECRET",
}


def missing_settings(settings: Settings) -> list[str]:
    """The environment variables behind the required provider settings that are still empty."""
    missing = []
    for field, variable in REQUIRED.items():
        value = getattr(settings, field)
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
        if not text:
            missing.append(variable)
    return missing


def serve_forever(
    *, api_port: int, bridge_port: int, public_api_url: str, public_bridge_url: str
) -> int:
    """``callflow serve``: the embedded AWS, the API and the bridge, until SIGINT or SIGTERM.

    Returns 2, after listing the variables, if required settings are missing; otherwise 0 once
    the bridge has drained its live calls and everything has stopped.
    """
    missing = missing_settings(Settings())
    if missing:
        print("Set these in the environment first (see README, 'Real providers'):")
        for variable in missing:
            print(f"  {variable}")
        return 2

    aws = EmbeddedAws.shared()
    table = os.environ.setdefault("CALLFLOW_TABLE_NAME", "callflow-serve")
    aws.create_table(table)
    os.environ["CALLFLOW_STATE_MACHINE_ARN"] = aws.deploy_workflow()
    os.environ["CALLFLOW_BRIDGE_PORT"] = str(bridge_port)
    reset_settings()
    reset_services()
    settings = get_settings()

    from callflow_bridge.deps import BridgeDeps
    from callflow_bridge.server import BridgeServer
    from callflow_functions.api import app

    api = AsgiServer(app, host="127.0.0.1", port=api_port, name="api").start()
    loop = LoopThread("bridge")
    bridge = BridgeServer(
        settings, get_services().store, BridgeDeps.from_settings(settings), host="127.0.0.1"
    )
    loop.run(bridge.start())

    api_base = public_api_url.rstrip("/")
    path_secret = settings.infobip_webhook_path_secret.get_secret_value()
    print(f"API     http://127.0.0.1:{api.port}  (public: {api_base})")
    print(f"Bridge  ws://127.0.0.1:{bridge.port}  (public: {public_bridge_url.rstrip('/')})")
    print()
    print("Connect the providers to these URLs:")
    print(f"  Zoho workflow webhook  POST {api_base}/webhooks/zoho")
    print(f"  Infobip events         {api_base}/webhooks/infobip/{path_secret[:2]}… (secret path)")
    print(f"  ElevenLabs post-call   {api_base}/webhooks/elevenlabs")
    print(f"  Infobip media stream   {public_bridge_url.rstrip('/')}/<bridge path secret>")
    print("  (`callflow setup infobip --api-url ...` creates the Infobip side for you.)")
    print("Ctrl-C stops.")

    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stopping.wait()
    print("Draining live calls...")
    loop.run(bridge.shutdown(settings.bridge_drain_seconds), timeout=None)
    loop.stop()
    api.stop()
    aws.stop()
    return 0
