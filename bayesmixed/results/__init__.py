"""Fit results: one face for every method (lme4's merMod and its accessors)."""
