"""The library the API, the workflow tasks and the bridge share: settings, the call session and
its store, the call's lifecycle and the provider clients."""
