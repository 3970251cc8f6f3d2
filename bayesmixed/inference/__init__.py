"""Inference beyond Wald: profile intervals, parametric bootstrap, Kenward-Roger, PB tests."""
