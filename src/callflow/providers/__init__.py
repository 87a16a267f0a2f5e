"""Clients of the outside services (Zoho CRM, Infobip, ElevenLabs) over one HTTP transport, with
the typed errors the workflow's retries match on."""
