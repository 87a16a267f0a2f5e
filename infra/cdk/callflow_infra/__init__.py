"""The callflow CDK app: one stack per stage (dev, prod) with everything a deployment needs."""
