"""Inference beyond Wald: profile intervals, parametric bootstrap, Kenward-Roger, PB tests.

Plain functions of a fitted model; the fit classes expose them as methods
(``fit.confint(method=...)``, ``fit.bootstrap``, ``bm.anova(method="pb")``,
``fit.tidy(ddf="Kenward-Roger")``).
"""

from bayesmixed.inference.bootstrap import boot_confint, bootstrap
from bayesmixed.inference.kenward_roger import KenwardRoger, kenward_roger
from bayesmixed.inference.pbtest import pb_test
from bayesmixed.inference.profile import profile, profile_confint

__all__ = ["boot_confint", "bootstrap", "kenward_roger", "KenwardRoger", "pb_test", "profile",
           "profile_confint"]
