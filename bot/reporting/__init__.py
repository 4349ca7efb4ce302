"""Reporting: per-unit figures and the forms they are shown in.

Owns the figures (``reports``), the chart PNG (``chart``), calendar feeds (``ical``), plain-text
tables (``textable``) and the one CSV writer (``csvfile``).
"""
