"""Stand-ins for Zoho CRM, Infobip and ElevenLabs that speak the providers' wire formats, with the
simulated phone network, callee and scripted agent behind them."""
