"""The ElevenLabs Agents client: signed URLs, conversations, agent settings, and the post-call
webhook's signature."""
