"""Schedules: cron expressions, time zones and next fire times (pure, no I/O)."""
