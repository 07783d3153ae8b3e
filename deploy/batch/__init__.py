"""Inference jobs' runners: read objects under a prefix, call the model through the gateway,
write outputs and errors, report progress (``python -m deploy.batch`` is one runner).

``locations`` (buckets and local folders as places of named objects), ``formats`` (objects
to rows and back), ``caller`` (model calls through the gateway, retries, isolating refused
rows), ``runner`` (one share of a job: plan, predict, commit), ``events`` (progress lines).
The decisions are pure and live in :mod:`deploy.control.job_plan`.
"""
