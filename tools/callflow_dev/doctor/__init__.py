"""``callflow doctor``: what is true of this deployment and its three accounts, in words.

- :mod:`.checks`: read-only checks of the deployment's endpoints and of the Zoho, Infobip and
  ElevenLabs accounts it uses;
- :mod:`.trial_call`: ``--test-call``, one real call to the operator's own number, reported
  event by event;
- :mod:`.assumptions`: the provider behaviours README says the project relies on, each judged
  held / not held / not seen from what that call showed;
- :mod:`.command`: the command line.
"""
