"""The engine: jobs and chunks, the Executor, and the map/imap/starmap front end."""
