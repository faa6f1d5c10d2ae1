"""The compatibility matrix of tools/matrix_table.py, by job.

* :mod:`.reader`: what tox.ini and pyproject.toml say (envs, pins, requirements, the declared
  ranges), nothing else;
* :mod:`.renderer`: the Markdown tables (full and compact) and the marked sections of the
  files that hold them;
* :mod:`.checker`: the checks that keep the declared ranges and the tested envs in step.

Only the standard library (plus ``packaging`` for the range check, which tox brings along).
"""
