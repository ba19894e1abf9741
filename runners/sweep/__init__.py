"""`bench sweep`: encoders x tasks x seeds as jobs on a bounded local pool or SLURM arrays (submitit).

spec.py (what a sweep is, its jobs and folders), records.py (record files written by jobs, ingested
by the driver), job.py (the job function, checkpointable for requeue), local.py (our bounded local
pool), slurm.py (submitit arrays; multi-node SpatialBoost training), driver.py (submit, wait,
ingest, status), cli.py (the subcommands). Light: nothing here imports torch at import time.
"""
