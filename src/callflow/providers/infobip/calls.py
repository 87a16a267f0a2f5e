"""The Infobip Calls API client: place a call, bridge it to the audio bridge, hang up.

Field names follow Infobip's own OpenAPI description (extracted in
``callflow_dev/schemas/infobip/voice.json``); the contract tests check every body this client sends
against that file. The client does no retrying
of its own: the Step Functions workflow owns retries (it matches on the error class names in
:mod:`callflow.providers.errors`), and a retry loop here would multiply with it. Every request has
a timeout, so a hung Infobip cannot hold a Lambda until its own timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callflow.masking import mask
from callflow.models import media_identifier
from callflow.observability import logger
from callflow.providers.errors import ProviderRejected
from callflow.providers.infobip.http import PROVIDER, InfobipHttp, InvalidInfobipRequest

__all__ = ["CallInfo", "DialogInfo", "InfobipClient", "InvalidInfobipRequest"]

#: Values Infobip accepts for a WEBSOCKET_ENDPOINT config's ``sampleRate`` (sent as strings).
SAMPLE_RATES = frozenset({8000, 16000, 24000, 32000})
#: ``connectTimeout`` has ``maximum: 60`` in the spec.
MAX_CONNECT_TIMEOUT = 60


@dataclass(frozen=True)
class CallInfo:
    """A call as Infobip answered its creation: the call id and its state."""

    id: str
    state: str


@dataclass(frozen=True)
class DialogInfo:
    """A dialog as Infobip answered its creation: its id and state, and the ids of its two calls
    when the answer names them."""

    id: str
    state: str
    parent_call_id: str = ""
    child_call_id: str = ""


class InfobipClient(InfobipHttp):
    """A thin, typed wrapper over the Calls API endpoints the project uses."""

    # --- calls ------------------------------------------------------------------------------

    def place_call(
        self,
        phone_number: str,
        *,
        custom_data: dict[str, str],
        external_id: str,
        caller_id: str = "",
        machine_detection: bool | None = None,
    ) -> CallInfo:
        """Dial ``phone_number`` (E.164, with or without the plus) and return at once: the outcome
        arrives later as events, carrying ``custom_data`` back. ``caller_id`` and
        ``machine_detection`` (a flow's) take the place of the configured ones when given."""
        settings = self._settings
        digits = phone_number.strip().removeprefix("+")
        if not digits.isdigit() or not 6 <= len(digits) <= 15:
            raise InvalidInfobipRequest(f"'{mask(phone_number)}' is not an international number")
        if not settings.infobip_calls_configuration_id:
            raise InvalidInfobipRequest("CALLFLOW_INFOBIP_CALLS_CONFIGURATION_ID is not set")
        if not 1 <= settings.infobip_connect_timeout <= MAX_CONNECT_TIMEOUT:
            raise InvalidInfobipRequest(
                f"CALLFLOW_INFOBIP_CONNECT_TIMEOUT must be 1..{MAX_CONNECT_TIMEOUT} seconds"
            )
        if settings.infobip_max_duration < 1:
            raise InvalidInfobipRequest("CALLFLOW_INFOBIP_MAX_DURATION must be positive")
        body: dict[str, Any] = {
            "endpoint": {"type": "PHONE", "phoneNumber": digits},
            "callsConfigurationId": settings.infobip_calls_configuration_id,
            "connectTimeout": settings.infobip_connect_timeout,
            "maxDuration": settings.infobip_max_duration,
            "customData": _string_map(custom_data),
            "externalId": external_id,
        }
        caller = caller_id or settings.infobip_from_number
        if caller:
            body["from"] = caller.strip().removeprefix("+")
        detection = (
            settings.infobip_machine_detection if machine_detection is None else machine_detection
        )
        if detection:
            body["machineDetection"] = {"enabled": True}
        if settings.infobip_recording:
            body["recording"] = {"recordingType": "AUDIO"}
        logger.info("placing call", extra={"to": mask(digits), "external_id": external_id})
        data = self._json(self._request("POST", "/calls/1/calls", body))
        return CallInfo(id=_required_str(data, "id"), state=str(data.get("state", "")))

    def get_call(self, call_id: str) -> dict[str, Any]:
        """The call as Infobip describes it now, as the raw JSON object."""
        return self._json(self._request("GET", f"/calls/1/calls/{_path_id(call_id)}"))

    def hangup_call(self, call_id: str, error_code: str = "") -> bool:
        """End the call; False when Infobip no longer knows it (already over), which is what the
        caller wanted anyway. ``error_code`` (``PublicHangupRequest.errorCode``) is the cause the
        call's CALL_FINISHED then names, ``MACHINE_DETECTED`` for a machine; empty sends ``{}``
        and Infobip records a normal hangup."""
        body = {"errorCode": error_code} if error_code else {}
        return self._hangup(f"/calls/1/calls/{_path_id(call_id)}/hangup", body)

    # --- dialogs ----------------------------------------------------------------------------

    def create_dialog(
        self, parent_call_id: str, *, custom_data: dict[str, str], config_id: str = ""
    ) -> DialogInfo:
        """Connect the answered call to the bridge's WebSocket (the media-stream config).

        ``config_id`` is the attempt's own config in per-session routing; empty uses the shared
        one (``CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID``).

        ``custom_data`` goes on the child (WebSocket) call, and its session id and bridge token
        also as the endpoint's ``identifier`` (:func:`callflow.models.media_identifier`): where
        Infobip shows either on the socket is unconfirmed, so both are sent and the bridge looks
        in every place (``callflow_bridge.protocol``).
        """
        config_id = config_id or self._settings.infobip_media_stream_config_id
        if not config_id:
            raise InvalidInfobipRequest("CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID is not set")
        endpoint = {"type": "WEBSOCKET", "websocketEndpointConfigId": config_id}
        if custom_data.get("session_id") and custom_data.get("bridge_token"):
            endpoint["identifier"] = media_identifier(
                custom_data["session_id"], custom_data["bridge_token"]
            )
        body = {
            "parentCallId": parent_call_id,
            "childCallRequest": {"endpoint": endpoint, "customData": _string_map(custom_data)},
        }
        return _dialog_info(self._json(self._request("POST", "/calls/1/dialogs", body)))

    def find_dialog(self, parent_call_id: str) -> DialogInfo | None:
        """The live dialog whose parent is ``parent_call_id``, or None.

        ``GET /calls/1/dialogs`` filters by ``parentCallId`` (the spec's name; there is no
        ``callId`` filter). Asked before creating a dialog, it is how a creation whose answer was
        lost (a timeout or a 5xx after Infobip did the work) is found instead of repeated. A
        dialog that already failed or finished does not count: the call is in no dialog then.
        """
        data = self._json(
            self._request(
                "GET",
                "/calls/1/dialogs",
                params={"parentCallId": _path_id(parent_call_id), "page": 0, "size": 100},
            )
        )
        results = data.get("results", [])
        if not isinstance(results, list):
            raise ProviderRejected(PROVIDER, "the dialog page has no results list")
        for item in results:
            if not isinstance(item, dict) or item.get("state") in ("FAILED", "FINISHED"):
                continue
            dialog = _dialog_info(item)
            if dialog.parent_call_id in ("", parent_call_id):
                return dialog
        return None

    def hangup_dialog(self, dialog_id: str) -> bool:
        """End every call of the dialog; False when the dialog is already gone. The spec gives
        this operation no request body, so none is sent."""
        return self._hangup(f"/calls/1/dialogs/{_path_id(dialog_id)}/hangup", None)

    # --- media-stream configs ---------------------------------------------------------------

    def create_media_stream_config(self, name: str, url: str, sample_rate: int) -> str:
        """Create the WEBSOCKET_ENDPOINT config once per deployment; returns its id.

        ``sampleRate`` must travel as a string: Infobip refuses a number with an error that names
        no field, so the conversion is done here rather than trusted to callers.
        """
        if sample_rate not in SAMPLE_RATES:
            raise InvalidInfobipRequest(
                f"sample rate {sample_rate} is not one of {sorted(SAMPLE_RATES)}"
            )
        if not url.startswith(("wss://", "ws://")):
            raise InvalidInfobipRequest("the media-stream URL must be a ws:// or wss:// URL")
        body = {
            "type": "WEBSOCKET_ENDPOINT",
            "name": name,
            "url": url,
            "sampleRate": str(sample_rate),
        }
        data = self._json(self._request("POST", "/calls/1/media-stream-configs", body))
        return _required_str(data, "id")

    def list_media_stream_configs(self) -> list[dict[str, Any]]:
        """Every config of the account, across pages."""
        return self._all_pages("/calls/1/media-stream-configs", "media-stream config")

    def delete_media_stream_config(self, config_id: str) -> bool:
        """Delete a config (``DELETE /calls/1/media-stream-configs/{id}``); False when Infobip
        no longer knows it (deleted before), which is what the caller wanted anyway."""
        try:
            self._request("DELETE", f"/calls/1/media-stream-configs/{_path_id(config_id)}")
        except ProviderRejected as error:
            if error.status == 404:
                return False
            raise
        return True

    # --- calls configurations ---------------------------------------------------------------

    def get_calls_configuration(self, configuration_id: str) -> dict[str, Any] | None:
        """The calls configuration (``id``, ``name``); ``None`` when the account has none by
        that id."""
        try:
            response = self._request("GET", f"/calls/1/configurations/{_path_id(configuration_id)}")
        except ProviderRejected as error:
            if error.status == 404:
                return None
            raise
        return self._json(response)

    # --- transport --------------------------------------------------------------------------

    def _hangup(self, path: str, body: dict[str, Any] | None) -> bool:
        try:
            self._request("POST", path, body)
        except ProviderRejected as error:
            if error.status == 404:
                return False
            raise
        return True


def _dialog_info(data: dict[str, Any]) -> DialogInfo:
    """A ``DialogResponse`` as the fields the project uses."""
    parent = data.get("parentCall")
    child = data.get("childCall")
    return DialogInfo(
        id=_required_str(data, "id"),
        state=str(data.get("state", "")),
        parent_call_id=str(parent.get("id", "")) if isinstance(parent, dict) else "",
        child_call_id=str(child.get("id", "")) if isinstance(child, dict) else "",
    )


def _string_map(values: dict[str, str]) -> dict[str, str]:
    """customData is a string-to-string map on Infobip's side: refuse anything else here, where
    the mistake is still ours and clear, instead of as a 400 from Infobip."""
    for key, value in values.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInfobipRequest(f"customData values must be strings (key {key!r})")
    return dict(values)


def _path_id(value: str) -> str:
    allowed = all(c.isalnum() or c in "-_." for c in value)
    if not allowed or not any(c.isalnum() for c in value):
        raise InvalidInfobipRequest(f"{value!r} is not an Infobip id")
    return value


def _required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProviderRejected(PROVIDER, f"the response has no {key!r}")
    return value
