"""The Infobip clients: the Calls API and its events, and the Subscriptions API that setup uses."""
