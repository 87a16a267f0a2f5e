"""Development tools: the CLI, provider setup and doctor, the local stack, the demo, the provider
stand-ins. No deployable installs this package."""
