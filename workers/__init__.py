"""The Celery side: the app (``workers.app:app``), its configuration, the tasks, the runtime."""
