"""The Lambda entry points: the HTTP API (:mod:`callflow_functions.api`) and one module per task
of the call workflow. The state machine itself, ``workflow.asl.json``, is package data beside
them (:mod:`callflow_functions.definition`)."""
