"""Scheduling: when each reminder is due, and a due stage becoming an occurrence.

Owns the working-day calendar (``workdays``) and working hours (``workhours``), due times
(``timing``), the APScheduler triggers (``triggers``), stage words (``stages``), the timer
(``scheduler``), the reconciliation pass over ``due_stage`` rows (``reconcile``), firing an
occurrence with its expectations and outbox rows (``occurrences``), missed/late stages in words
(``firelog``) and dates and times in the words users read (``datewords``).
"""
