"""The process's provider clients and store, built lazily from the settings.

Lambda containers and the local stack build each client once and reuse it (warm invocations pay
nothing). Construction is lazy so a function imports and builds only what it uses: the API's cold
start stays small.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callflow.admission.pools import Pools
    from callflow.admission.rates import Rates
    from callflow.callbacks.rules import CallbackRules
    from callflow.campaigns.store import CampaignStore
    from callflow.config import Settings
    from callflow.consent.caps import FrequencyCaps
    from callflow.consent.rules import ContactRules
    from callflow.consent.suppression import SuppressionList
    from callflow.flows.loading import FlowSet
    from callflow.mapping import FieldMapping
    from callflow.providers.elevenlabs.client import ElevenLabsClient
    from callflow.providers.infobip.calls import InfobipClient
    from callflow.providers.zoho.client import ZohoClient
    from callflow.recording.rules import RecordingRules
    from callflow.store import SessionStore


class Services:
    """One process's clients, each built (and its module imported) on first use, then reused."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def store(self) -> SessionStore:
        """The session store on the configured DynamoDB table."""
        from callflow.store import SessionStore

        return SessionStore.from_settings(self.settings)

    @cached_property
    def campaigns(self) -> CampaignStore:
        """Campaign items, on the store's table."""
        from callflow.campaigns.store import CampaignStore

        return CampaignStore(self.store.table, self.settings.session_ttl_days)

    @cached_property
    def s3(self) -> Any:
        """A boto3 S3 client for the configured region (a campaign's items)."""
        import boto3

        return boto3.client("s3", region_name=self.settings.aws_region)

    @cached_property
    def pools(self) -> Pools:
        """Admission's slot pools, on the store's table."""
        from callflow.admission.pools import Pools

        return Pools(self.store.table)

    @cached_property
    def rates(self) -> Rates:
        """The account-wide provider rates, on the store's table."""
        from callflow.admission.rates import Rates

        return Rates(self.store.table)

    @cached_property
    def contact_rules(self) -> ContactRules:
        """The default flow's opt-out and frequency-cap rules (the settings'); a session follows
        its own flow's, ``flows.of(session).contact_rules``."""
        return self.flows.default.contact_rules

    @cached_property
    def callback_rules(self) -> CallbackRules:
        """Callback rules, from the settings (one object, so that a flow can supply its own)."""
        from callflow.callbacks.rules import CallbackRules

        return CallbackRules.from_settings(self.settings)

    @cached_property
    def recording_rules(self) -> RecordingRules:
        """Recording rules, from the settings (one object, so that a flow can supply its own)."""
        from callflow.recording.rules import RecordingRules

        return RecordingRules.from_settings(self.settings)

    @cached_property
    def recordings_s3(self) -> Any:
        """A boto3 S3 client for recordings, with the rules' bounded retries."""
        from callflow.recording.storage import s3_client

        return s3_client(self.settings.aws_region, self.recording_rules.upload_attempts)

    @cached_property
    def suppressions(self) -> SuppressionList:
        """The suppression list, on the store's table."""
        from callflow.consent.suppression import SuppressionList

        return SuppressionList(self.store.table)

    @cached_property
    def caps(self) -> FrequencyCaps:
        """The frequency caps' counters, on the store's table."""
        from callflow.consent.caps import FrequencyCaps

        return FrequencyCaps(self.store.table)

    @cached_property
    def zoho(self) -> ZohoClient:
        """The Zoho CRM client, its token shared through the store's table."""
        from callflow.providers.zoho.client import ZohoClient
        from callflow.providers.zoho.token import ZohoTokenProvider

        return ZohoClient(self.settings, ZohoTokenProvider(self.settings, self.store.table))

    @cached_property
    def infobip(self) -> InfobipClient:
        """The Infobip Calls API client."""
        from callflow.providers.infobip.calls import InfobipClient

        return InfobipClient(self.settings)

    @cached_property
    def elevenlabs(self) -> ElevenLabsClient:
        """The synchronous ElevenLabs client."""
        from callflow.providers.elevenlabs.client import ElevenLabsClient

        return ElevenLabsClient(self.settings)

    @cached_property
    def flows(self) -> FlowSet:
        """The deployment's flows (:mod:`callflow.flows`); a file that does not validate raises
        :class:`callflow.flows.FlowConfigError` here, at the process's first use."""
        from callflow.flows.loading import load_flows

        return load_flows(self.settings)

    @cached_property
    def mapping(self) -> FieldMapping:
        """The field mapping: the configured file, or the default shipped in the package."""
        from callflow.mapping import FieldMapping

        return FieldMapping.load(self.settings.field_mapping_path)

    @cached_property
    def sfn(self) -> Any:
        """A boto3 Step Functions client for the configured region."""
        import boto3

        return boto3.client("stepfunctions", region_name=self.settings.aws_region)


_services: Services | None = None


def get_services() -> Services:
    """The process-wide services, built from :func:`get_settings` on first use."""
    global _services
    if _services is None:
        from callflow.config import get_settings  # not at import: health needs no settings

        services = Services(get_settings())
        services.flows  # noqa: B018 - a flow file that does not validate stops the first use
        _services = services
    return _services


def reset_services() -> None:
    """Forget the clients (tests and the local stack change the settings)."""
    global _services
    _services = None
