"""Engine for measuring cross-modal representational alignment.

The pipeline, one module per arrow:
data set (core.data) -> encoder (core.encoders) -> feature store (core.features)
-> kNN graphs (core.knn) -> metrics and sweeps (core.metrics, core.sweep)
-> result store (core.results). The engine never imports Streamlit.
"""

__version__ = "0.1.0"
