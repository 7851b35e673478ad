"""The engine: the managed process that delivers jobs, runs schedules and cleans up."""
