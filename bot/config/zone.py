"""The service's time zone: where schedules' times, working hours and reports are read.

Its own module, without imports, so the settings' check of the working hours (``bot.scheduling.workhours``)
does not import the schedules' models: a command that loads no schedules (``db upgrade``) stays lean.
"""

DEFAULT_TZ = "Asia/Shanghai"
