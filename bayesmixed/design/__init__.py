"""Structure + data -> matrices: no optimizer, no PyMC."""

from bayesmixed.design.build import build_design
from bayesmixed.design.random import ReTerm
from bayesmixed.design.spec import MixedDesign

__all__ = ["MixedDesign", "ReTerm", "build_design"]
