"""Moved to perfmodel/model/: `register_predictor` is `perfmodel.model.predictors.register_predictor` (the scorer is
perfmodel/model/scoring.py). This name stays for one release (until 0.2)."""

from perfmodel.model.predictors import register_predictor

__all__ = ["register_predictor"]
