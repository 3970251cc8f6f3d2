"""Response families and link functions, shared by the likelihood and Bayesian engines.

Each family is a subclass of :class:`Family` that carries its behaviour: variance
function, unit deviance, R's ``aic``, starting values and IRLS pieces, pointwise log
density, simulation, its auxiliary parameters and its PyMC likelihood, plus small
integer ``code``\\ s (family and link) that the compiled kernels switch on. Adding a
family is one new class here (with its entry in ``_CLASSES``) and its tests; no other
module needs to branch on family names.
``get_family("binomial", link="probit")`` validates names and lists the valid choices
in its error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from scipy import special, stats

from bayesmixed.errors import DesignError
from bayesmixed.links import LINKS, Link

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

    # --- added by plots
    @property
    def mean_label(self) -> str:
        """How plots name the predicted mean (an axis label).

        Examples
        --------
        >>> get_family("binomial").mean_label, get_family("poisson").mean_label, get_family("gaussian").mean_label
        ('predicted probability', 'expected count', 'prediction')
        """
        if self.uses_trials:
            return "predicted probability"
        return "expected count" if isinstance(self, _Counts) else "prediction"


class Gaussian(Family):
    """Normal response; ``sigma`` is the residual sd (``dispersion`` in logpdf/simulate)."""

    links, default_link = ("identity", "log", "inverse"), "identity"
    code, canonical_link, extra_params = 4, "identity", ("sigma",)
    has_dispersion = pymc_weights = True
    bambi_name = "gaussian"

    @property
    def is_gaussian_identity(self) -> bool:
        return self.link.name == "identity"

    def variance(self, mu):
        return np.ones_like(mu)

    def dvariance(self, mu):
        return np.zeros_like(mu)

    def dev_resids(self, y, mu, wt):
        return wt * (y - mu) ** 2

    def aic(self, y, n, mu, wt, dev):
        nobs = y.size
        return float(nobs * (np.log(2 * np.pi * dev / nobs) + 1) + 2 - np.sum(np.log(wt[wt > 0])))

    def logpdf(self, y, mu, wt=None, trials=None, dispersion=None, eta=None):
        sigma = dispersion if wt is None else dispersion / np.sqrt(wt)
        return stats.norm.logpdf(y, self._np_mean(mu, eta), sigma)

    def simulate(self, mu, rng, trials=None, dispersion=None, wt=None):
        return rng.normal(mu, dispersion if wt is None else dispersion / np.sqrt(wt))

    def dispersion_from_sigma(self, sigma):
        return float(sigma)

    def prior_location(self, y, weights, offset):
        return float(np.average(y - offset, weights=weights)) if self.is_gaussian_identity else 0.0

    def aux_priors(self, sd_y):
        return {"sigma": ("Exponential", {"lam": 1.0 / sd_y}, "rate 1/sd(y)")}

    def _pymc_dist(self, mu, eta, trials, weights, params):
        sigma = params["sigma"]
        return "Normal", {"mu": self._mean(mu, eta),
                          "sigma": sigma / np.sqrt(weights) if weights is not None else sigma}


class Binomial(Family):
    """Binomial proportions of ``trials`` (Bernoulli 0/1 without trials)."""

    links, default_link = ("logit", "probit", "cloglog"), "logit"
    code, canonical_link = 0, "logit"
    uses_trials = pymc_weights = True
    bambi_name = "binomial"
    _support = "0/1 (or proportions with weights=trials)"

    def variance(self, mu):
        return mu * (1 - mu)

    def dvariance(self, mu):
        return 1 - 2 * mu

    def dev_resids(self, y, mu, wt):
        return 2 * wt * (_ylogy(y, mu) + _ylogy(1 - y, 1 - mu))

    def aic(self, y, n, mu, wt, dev):
        m = n if np.any(n > 1) else wt
        k = np.round(m * y)
        m = np.round(m)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = (special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
                  + special.xlogy(k, mu) + special.xlog1py(m - k, -mu))
            terms = np.where(m > 0, wt / np.where(m > 0, m, 1) * ll, 0.0)
        return float(-2 * terms.sum())

    def _outside(self, y):
        return (y < 0) | (y > 1)

    def mu_start(self, y, wt):
        return (wt * y + 0.5) / (wt + 1)

    def observed_values(self, y, trials=None):
        return y.astype(np.int64) if trials is None else np.round(y * trials).astype(np.int64)

    def logpdf(self, y, mu, wt=None, trials=None, dispersion=None, eta=None):
        s = self.observed_values(y, trials)
        n = np.ones_like(y, dtype=np.int64) if trials is None else np.asarray(trials)
        if eta is not None and self.link.name == "logit":
            # s*eta - n*log(1+e^eta) + log C(n, s): stable for any eta
            logc = special.gammaln(n + 1) - special.gammaln(s + 1) - special.gammaln(n - s + 1)
            return _weighted(s * eta - n * np.logaddexp(0.0, eta) + logc, wt)
        return _weighted(stats.binom.logpmf(s, n, self._np_mean(mu, eta)), wt)

    def simulate(self, mu, rng, trials=None, dispersion=None, wt=None):
        n = np.ones(mu.shape[-1], dtype=np.int64) if trials is None else np.asarray(trials, dtype=np.int64)
        return rng.binomial(n, mu) / np.where(n > 0, n, 1)       # proportions, as design.y

    def prior_location(self, y, weights, offset):
        pbar = float(np.average(y, weights=weights)) if weights.sum() > 0 else 0.5
        pbar = min(max(pbar, 0.01), 0.99)
        return float(self.link.linkfun(np.array([pbar]))[0])

    def bambi_family(self, has_trials):
        return "binomial" if has_trials else "bernoulli"

    def _pymc_dist(self, mu, eta, trials, weights, params):
        kw = {"logit_p": eta} if self.link.name == "logit" and eta is not None else {"p": self._mean(mu, eta)}
        return ("Bernoulli", kw) if trials is None else ("Binomial", {"n": trials, **kw})


class _LogMeanPrior:
    """Intercept prior at log(mean y) for the log link of a positive-mean family."""

    def prior_location(self, y, weights, offset):
        if self.link.name != "log":
            return 0.0
        ybar = float(np.mean(y))
        return float(np.log(ybar)) if ybar > 0 else 0.0


class _Counts(_LogMeanPrior, Family):
    """Shared by the count families: support, start and integer observations."""

    _support = "non-negative whole counts"

    def _outside(self, y):
        return (y < 0) | (y != np.round(y))

    def mu_start(self, y, wt):
        return y + 0.1

    def observed_values(self, y, trials=None):
        return y.astype(np.int64)


class Poisson(_Counts):
    """Poisson counts."""

    links, default_link = ("log", "identity", "sqrt"), "log"
    code, canonical_link = 1, "log"
    bambi_name = "poisson"

    def variance(self, mu):
        return mu

    def dvariance(self, mu):
        return np.ones_like(mu)

    def dev_resids(self, y, mu, wt):
        return 2 * wt * (_ylogy(y, mu) - (y - mu))

    def aic(self, y, n, mu, wt, dev):
        ll = special.xlogy(y, mu) - mu - special.gammaln(y + 1)
        return float(-2 * np.sum(ll * wt))

    def logpdf(self, y, mu, wt=None, trials=None, dispersion=None, eta=None):
        return _weighted(stats.poisson.logpmf(y, self._np_mean(mu, eta)), wt)

    def simulate(self, mu, rng, trials=None, dispersion=None, wt=None):
        return rng.poisson(mu).astype(float)

    def _pymc_dist(self, mu, eta, trials, weights, params):
        return "Poisson", {"mu": self._mean(mu, eta)}


class NegativeBinomial(_Counts):
    """Negative binomial counts, Var = mu + mu^2 / k with size k (``shape``; PyMC's ``alpha``)."""

    links, default_link = ("log",), "log"
    code, canonical_link, extra_params = 3, None, ("alpha",)
    bambi_name = "negativebinomial"

    def variance(self, mu):
        return mu + mu**2 / self._shape()

    def dvariance(self, mu):
        return 1 + 2 * mu / self._shape()

    def dev_resids(self, y, mu, wt):
        k = self._shape()
        # MASS::negative.binomial(theta)$dev.resids
        return 2 * wt * (_ylogy(y, mu) - (y + k) * np.log((y + k) / (mu + k)))

    def aic(self, y, n, mu, wt, dev):
        k = self._shape()
        ll = (special.gammaln(k + y) - special.gammaln(k) - special.gammaln(y + 1) + k * np.log(k)
              + special.xlogy(y, mu + (y == 0)) - (k + y) * np.log(k + mu))
        return float(-2 * np.sum(ll * wt))

    def logpdf(self, y, mu, wt=None, trials=None, dispersion=None, eta=None):
        alpha = self._shape() if dispersion is None else dispersion
        return _weighted(stats.nbinom.logpmf(y, alpha, alpha / (alpha + self._np_mean(mu, eta))), wt)

    def simulate(self, mu, rng, trials=None, dispersion=None, wt=None):
        alpha = self._shape() if dispersion is None else dispersion
        return rng.negative_binomial(alpha, alpha / (alpha + mu)).astype(float)

    def aux_priors(self, sd_y):
        return {"alpha": ("Exponential", {"lam": 1.0}, "NB size (reciprocal dispersion), rstanarm's")}

    def _pymc_dist(self, mu, eta, trials, weights, params):
        return "NegativeBinomial", {"mu": self._mean(mu, eta), "alpha": params["alpha"]}


class Gamma(_LogMeanPrior, Family):
    """Positive continuous response, Var = mu^2 / shape."""

    links, default_link = ("log", "inverse", "identity"), "inverse"
    code, canonical_link, extra_params = 2, "inverse", ("shape",)
    has_dispersion = True
    bambi_name = "gamma"
    _support = "positive"

    def variance(self, mu):
        return mu**2

    def dvariance(self, mu):
        return 2 * mu

    def dev_resids(self, y, mu, wt):
        return -2 * wt * (np.log(y / mu) - (y - mu) / mu)

    def aic(self, y, n, mu, wt, dev):
        disp = dev / np.sum(wt)
        a = 1 / disp
        ll = (a - 1) * np.log(y) - y / (mu * disp) - special.gammaln(a) - a * np.log(mu * disp)
        return float(-2 * np.sum(ll * wt) + 2)

    def _outside(self, y):
        return y <= 0

    def mu_start(self, y, wt):
        return np.where(y > 0, y, 0.1)

    def logpdf(self, y, mu, wt=None, trials=None, dispersion=None, eta=None):
        return _weighted(stats.gamma.logpdf(y, a=dispersion, scale=self._np_mean(mu, eta) / dispersion), wt)

    def simulate(self, mu, rng, trials=None, dispersion=None, wt=None):
        return rng.gamma(dispersion, mu / dispersion)

    def dispersion_from_sigma(self, sigma):
        return 1.0 / float(sigma) ** 2

    def aux_priors(self, sd_y):
        return {"shape": ("Exponential", {"lam": 1.0}, "gamma shape, rstanarm's")}

    def _pymc_dist(self, mu, eta, trials, weights, params):
        shape = params["shape"]
        return "Gamma", {"alpha": shape, "beta": shape / self._mean(mu, eta)}


_CLASSES: dict[str, type[Family]] = {"gaussian": Gaussian, "binomial": Binomial, "poisson": Poisson,
                                     "gamma": Gamma, "negativebinomial": NegativeBinomial}
# name: (canonical/default link, allowed links)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {n: (c.default_link, c.links) for n, c in _CLASSES.items()}
_ALIASES = {"normal": "gaussian", "bernoulli": "binomial", "negbinomial": "negativebinomial",
            "negative_binomial": "negativebinomial", "nb": "negativebinomial", "Gamma": "gamma"}


def get_family(family: str | Family = "gaussian", link: str | None = None, *,
               shape: float | None = None) -> Family:
    """Return the :class:`Family` for a name such as ``"binomial"`` and an optional link.

    ``shape`` fixes the negative-binomial size k (otherwise the GLMM engine estimates
    it, as ``glmer.nb`` does).

    Examples
    --------
    >>> get_family("binomial", link="probit").link.name
    'probit'
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        family = family.name
    if not isinstance(family, str):
        raise DesignError(f"family must be a string such as 'binomial', got {family!r}")
    name = _ALIASES.get(family, family.lower())
    name = _ALIASES.get(name, name)
    if name not in FAMILIES:
        raise DesignError(
            f"unknown family {family!r}; valid families are: {', '.join(FAMILIES)}"
        )
    default, allowed = FAMILIES[name]
    link = default if link is None else link
    if link not in allowed:
        raise DesignError(
            f"link {link!r} is not available for family {name!r}; valid links are: "
            f"{', '.join(allowed)}"
        )
    return _CLASSES[name](name, LINKS[link], default, shape)


GAUSSIAN = get_family("gaussian")
