"""Reports built from the result store alone: `bench table` (tables.py), the static leaderboard page
(site.py) and the summary `bench run` prints (tables.run_summary). Layers: grid.py (table model and
the shared rules), measured.py (aggregation by identity, layout), render.py (renderers), paper.py
(the paper's numbers and name mappings, as data)."""
