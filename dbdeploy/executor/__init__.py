"""The executor: applies bundles per environment with locking, history, retries and progress."""
