"""The job service: the durable store, the worker that runs jobs, and built indexes as the API opens them."""
