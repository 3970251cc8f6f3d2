"""The :class:`Family` base class: what every response distribution provides (see :mod:`bayesmixed.families`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from bayesmixed.errors import DesignError
from bayesmixed.links import Link

Array = np.ndarray


def _ylogy(y: Array, mu: Array) -> Array:
    """y * log(y / mu) with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0.0)


def _weighted(ll: Array, wt) -> Array:
    return ll if wt is None else ll * wt


@dataclass(frozen=True)
class Family:
    """A GLM family: name, link, default link and (negative binomial) shape, with its behaviour.

    Subclasses (:class:`Gaussian`, :class:`Binomial`, :class:`Poisson`,
    :class:`NegativeBinomial`, :class:`Gamma`) implement the NumPy members; get one
    with :func:`get_family`. ``canonical`` is the family's default link name (R's).

    Examples
    --------
    >>> from bayesmixed.families import get_family
    >>> import numpy as np
    >>> fam = get_family("binomial")
    >>> type(fam).__name__, fam.code, fam.is_canonical, fam.extra_params
    ('Binomial', 0, True, ())
    >>> fam.variance(np.array([0.5])).tolist()
    [0.25]
    """

    name: str
    link: Link
    canonical: str
    shape: float | None = None   # negative binomial size k (Var = mu + mu^2 / k)

    links: ClassVar[tuple[str, ...]] = ()          # allowed links, as listed in errors
    default_link: ClassVar[str] = ""               # R's default link
    code: ClassVar[int] = -1                       # family code for the compiled kernels
    canonical_link: ClassVar[str | None] = None    # link whose Fisher and observed weights agree
    extra_params: ClassVar[tuple[str, ...]] = ()   # parameters beyond the mean (PyMC names)
    has_dispersion: ClassVar[bool] = False         # lme4 reports a residual scale (``useSc``)
    uses_trials: ClassVar[bool] = False            # response is a proportion of trials
    _mean_label: ClassVar[str] = "prediction"     # plots' name of the predicted mean (counts: expected count)
    pymc_weights: ClassVar[bool] = False           # prior weights allowed in the PyMC likelihood
    bambi_name: ClassVar[str | None] = None        # bambi's family name
    _support: ClassVar[str] = ""                   # wording of the response's support

    # ---- description -------------------------------------------------------------------
    @property
    def is_gaussian_identity(self) -> bool:
        return False

    @property
    def is_canonical(self) -> bool:
        """True for the canonical link, where expected and observed information agree."""
        return self.link.name == self.canonical_link

    @property
    def dispersion_name(self) -> str | None:
        """Name of the family's auxiliary parameter (``sigma``, ``alpha``, ``shape``) or None."""
        return self.extra_params[0] if self.extra_params else None

    def dispersion_from_sigma(self, sigma: float):
        """The ``dispersion`` that :meth:`simulate` takes, from lme4's ``sigma()`` of a fit.

        Gaussian: sigma itself; Gamma: the shape 1 / sigma^2; None where the family has
        no residual scale (binomial, poisson) or keeps its own (negative binomial's size).

        Examples
        --------
        >>> from bayesmixed.families import get_family
        >>> get_family("gamma", "log").dispersion_from_sigma(0.5)
        4.0
        """
        return None

    def with_shape(self, shape: float) -> "Family":
        """The same family with the negative-binomial shape (size) fixed at ``shape``."""
        return replace(self, shape=float(shape))

    def _shape(self) -> float:
        if self.shape is None:
            raise ValueError("the negative binomial shape is not set: use family.with_shape(k)")
        return self.shape

    # ---- GLM pieces (R's family object) ------------------------------------------------
    def variance(self, mu: Array) -> Array:
        """Variance function V(mu)."""
        raise NotImplementedError(self.name)

    def dvariance(self, mu: Array) -> Array:
        """Derivative V'(mu) (for observed-information weights)."""
        raise NotImplementedError(self.name)

    def dev_resids(self, y: Array, mu: Array, wt: Array) -> Array:
        """Unit deviances times prior weights (R's ``family$dev.resids``)."""
        raise NotImplementedError(self.name)

    def aic(self, y: Array, n: Array, mu: Array, wt: Array, dev: float) -> float:
        """-2 log-likelihood as R's ``family$aic(y, n, mu, wt, dev)`` (which glmer's logLik uses).

        ``n`` is the number of trials (binomial), ``wt`` the prior weights times trials,
        ``dev`` the sum of the deviance residuals (the Gamma and gaussian dispersion
        estimates come from it, as in R; Gamma and gaussian include R's ``+ 2``).
        """
        raise NotImplementedError(self.name)

    def mu_start(self, y: Array, wt: Array) -> Array:
        """Starting mean, R's ``family$initialize`` (``mustart``)."""
        return y.copy()

    def irls_weights(self, eta: Array, mu: Array, wt: Array) -> Array:
        """Fisher (expected-information) IRLS weights ``wt * mu_eta(eta)^2 / V(mu)``.

        Examples
        --------
        >>> from bayesmixed.families import get_family
        >>> import numpy as np
        >>> get_family("binomial").irls_weights(np.array([0.0]), np.array([0.5]), np.array([4.0])).tolist()
        [1.0]
        """
        return wt * self.link.mu_eta(eta) ** 2 / self.variance(mu)

    def working_response(self, y: Array, eta: Array, mu: Array) -> Array:
        """IRLS working response ``eta + (y - mu) / mu_eta(eta)``."""
        return eta + (y - mu) / self.link.mu_eta(eta)

    def newton_weights(self, y: Array, eta: Array, mu: Array, wt: Array, floor: float = 1e-3) -> Array:
        """Observed-information weights: the second derivative of the half deviance in eta.

        Equal to :meth:`irls_weights` for the canonical link. Where the observed
        information is not above ``floor`` times Fisher's, Fisher's weight is used
        (the step stays a descent step), as glmer's PIRLS needs.

        Examples
        --------
        >>> from bayesmixed.families import get_family
        >>> import numpy as np
        >>> fam = get_family("binomial", link="probit")
        >>> y, eta = np.array([1.0, 0.0]), np.array([0.3, -0.2])
        >>> mu, wt = fam.link.linkinv(eta), np.ones(2)
        >>> bool(np.all(fam.newton_weights(y, eta, mu, wt) > 0))
        True
        """
        w = self.irls_weights(eta, mu, wt)
        if self.is_canonical:
            return w
        me, var = self.link.mu_eta(eta), self.variance(mu)
        obs = w - wt * (y - mu) * (self.link.mu_eta2(eta) / var - me**2 * self.dvariance(mu) / var**2)
        return np.where(obs > floor * w, obs, w)

    def check_response(self, y: Array, column: str) -> None:
        """Raise :class:`DesignError` naming ``column`` if ``y`` is outside the family's support."""
        bad = self._outside(y)
        if bad is not None and np.any(bad):
            raise DesignError(f"{self.name} response {column!r} must be {self._support}; found values such "
                              f"as {y[bad][:3].tolist()}")

    def _outside(self, y: Array) -> Array | None:
        return None

    # ---- densities and draws -----------------------------------------------------------
    def logpdf(self, y: Array, mu: Array | None, wt=None, trials=None, dispersion=None, eta=None) -> Array:
        """Pointwise log density of ``y`` given the mean ``mu`` (or ``eta``; broadcasting).

        ``y`` is the response as the design holds it (proportions of ``trials`` for
        binomial; 0/1 without trials). ``wt``: prior weights, precision weights for
        gaussian (sd ``sigma / sqrt(wt)``), multipliers of the log density otherwise
        (as R's ``aic``). ``dispersion``: the value of ``extra_params[0]`` (gaussian
        ``sigma``, negative-binomial ``alpha`` = size, default ``self.shape``, gamma
        ``shape``). ``mu=None`` takes the mean from ``eta`` through the link; with ``eta``
        the binomial-logit density is computed in eta (stable for any eta).

        Examples
        --------
        >>> from bayesmixed.families import get_family
        >>> import numpy as np
        >>> round(float(get_family("poisson").logpdf(np.array([0.0]), np.array([2.0]))[0]), 6)
        -2.0
        """
        raise NotImplementedError(self.name)

    def simulate(self, mu: Array, rng: np.random.Generator, trials=None, dispersion=None, wt=None) -> Array:
        """Draws of the response given the mean ``mu`` (same scale as the design's ``y``).

        ``trials``, ``dispersion`` and ``wt`` as in :meth:`logpdf`; binomial draws are
        proportions of ``trials``.

        Examples
        --------
        >>> from bayesmixed.families import get_family
        >>> import numpy as np
        >>> get_family("poisson").simulate(np.zeros(3), np.random.default_rng(0)).tolist()
        [0.0, 0.0, 0.0]
        """
        raise NotImplementedError(self.name)

    # ---- Bayesian engine ----------------------------------------------------------------
    def observed_values(self, y: Array, trials=None) -> Array:
        """The response as the PyMC likelihood observes it (counts as int64)."""
        return y

    def prior_location(self, y: Array, weights: Array, offset: Array) -> float:
        """Location of the default intercept prior on the link scale (rstanarm's autoscaling)."""
        return 0.0

    def aux_priors(self, sd_y: float) -> dict[str, tuple[str, dict, str]]:
        """Default priors of ``extra_params``: ``{name: (distribution, args, note)}``."""
        return {}

    def bambi_family(self, has_trials: bool) -> str:
        """bambi's family name for this family (``has_trials``: a ``p(s, n)`` response)."""
        if self.bambi_name is None:
            raise DesignError(f"bambi has no {self.name!r} family equivalent")
        return self.bambi_name

    def _pymc_dist(self, mu, eta, trials, weights, params) -> tuple[str, dict]:
        raise DesignError(f"family {self.name!r} is not supported by the PyMC engine")

    def _pymc_args(self, mu, eta, trials, weights, params) -> tuple[str, dict]:
        if weights is not None and not self.pymc_weights:
            raise DesignError(f"prior weights are supported by method='nuts' for gaussian and binomial "
                              f"models only, not {self.name!r}")
        return self._pymc_dist(mu, eta, trials, weights, dict(params or {}))

    def _mean(self, mu, eta):
        return self.link.tensor_linkinv(eta) if mu is None else mu

    def _np_mean(self, mu, eta):
        return self.link.linkinv(eta) if mu is None else mu

    def pymc_likelihood(self, name: str, mu=None, observed=None, *, eta=None, trials=None, weights=None,
                        params: dict | None = None, dims=None):
        """Create the observed PyMC variable ``name`` (inside a model context).

        ``mu`` is the mean (from ``eta`` through the link when omitted; binomial-logit
        uses ``eta`` itself as ``logit_p``), ``observed`` from :meth:`observed_values`
        (or a ``pm.Data``), ``trials`` the binomial trials (Bernoulli when None),
        ``weights`` gaussian precision weights, ``params`` the tensors named in
        ``extra_params``.

        Examples
        --------
        >>> from bayesmixed.families import get_family
        >>> import numpy as np, pymc as pm
        >>> with pm.Model() as m:
        ...     _ = get_family("poisson").pymc_likelihood("y", eta=np.zeros(2), observed=np.array([0, 1]))
        >>> round(float(m.compile_logp()({})), 6)
        -2.0
        """
        import pymc as pm

        dist, kw = self._pymc_args(mu, eta, trials, weights, params)
        return getattr(pm, dist)(name, **kw, observed=observed, dims=dims)

    def pymc_logp(self, value, mu=None, *, eta=None, trials=None, weights=None, params: dict | None = None):
        """Tensor log density of ``value`` (as :meth:`pymc_likelihood`, without a model variable)."""
        import pymc as pm

        dist, kw = self._pymc_args(mu, eta, trials, weights, params)
        return pm.logp(getattr(pm, dist).dist(**kw), value)

    # ---- results -----------------------------------------------------------------------
    @property
    def display_name(self) -> str:
        """The family as lme4's summary prints it (``Gamma``; glmer.nb's ``Negative Binomial(k)``)."""
        return self.name

    def latent_variance(self, eta_mean: Array, var_random: Array) -> Array:
        """Nakagawa & Schielzeth's distribution-specific variance on the link scale (for R²).

        ``eta_mean`` is the mean fixed-part linear predictor, ``var_random`` the variance
        of the random part (arrays of draws are fine).

        Examples
        --------
        >>> from bayesmixed.families import get_family
        >>> round(float(get_family("binomial").latent_variance(0.0, 1.0)), 4)     # pi^2 / 3
        3.2899
        """
        raise NotImplementedError(f"Nakagawa's R² is not implemented for {self.name}({self.link.name})")

    @property
    def mean_label(self) -> str:
        """How plots name the predicted mean (an axis label).

        Examples
        --------
        >>> from bayesmixed.families import get_family
        >>> get_family("binomial").mean_label, get_family("poisson").mean_label, get_family("gaussian").mean_label
        ('predicted probability', 'expected count', 'prediction')
        """
        if self.uses_trials:
            return "predicted probability"
        return self._mean_label
