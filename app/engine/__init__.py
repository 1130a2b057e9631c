"""The run engine: what runs a graph for a task or a LangGraph API run, durably.

- commands.py     what controllers call: queue a task or a run, cancel, answer an approval
- dispatcher.py   claims queued work with leases, paces the claims, launches and stops runs
- heartbeat.py    keeps the running tasks' leases alive and notices cancels and lost leases
- driver.py       the one place that drives ``graph.astream`` (service workers and the CLI)
- publishers.py   one publisher protocol: task events, LangGraph API events, CLI progress
- run_end.py      the end of a run: the single owner of the status a run ends with
- messages.py     what people read about a run: failures, node summaries
- stats.py        counters since start, and the view of running runs the operations API reads
- cancelling.py   stopping the engine's helper tasks without swallowing the caller's cancellation
- events.py, run_log.py, run_settings.py, api_runs.py, services.py   the event bus, the
                  operator's log, settings for new runs, LangGraph API run shapes, and the
                  run side of a process put together
"""
