"""SpatialBoost bench: evaluate (and boost) vision encoders with frozen-backbone probes.

The data path is visible in the package layout:
data (`bench.data`) -> encoder (`bench.encoders`) -> features (`bench.features`) -> head (`heads`)
-> metric (`tasks`) -> tracking (`bench.tracking`) -> tables (`leaderboard`).
"""
__version__ = "0.1.0"
