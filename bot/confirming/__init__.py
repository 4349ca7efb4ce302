"""Confirming: who owes a confirmation, how one is recorded, and chasing those who owe.

Owns recording confirmations and the board (``confirmations``), signed confirmation and view
tokens (``tokens``), chat replies and button presses (``inbound``), follow-ups and escalations
(``followup``) and the admin's actions with their audit rows (``actions``).
"""
