"""The four-stage synthesis pipeline: text filter, video verification, masks, render.

Each stage is a class built once from a picklable spec (a SAM stage loads its model in its
constructor, once per process or Ray actor) whose `__call__(sample) -> Outcome` is pure in the
sample: the same sample gives the same record or the same rejection. `runner.run_stage` drives
a stage over samples keyed by id, in one process or on Ray, resumably.
"""
