"""Admission control: the slots a call needs before it is dialled, and the providers' rates.

:mod:`callflow.admission.pools` holds the counting semaphores, :mod:`callflow.admission.rates`
the account-wide request schedules, and :mod:`callflow.admission.slots` which pools a call
needs and how every end path gives them back. The workflow step that waits for a slot is
:mod:`callflow.lifecycle.admission`.
"""
