"""The response distributions: one :class:`~bayesmixed.families.base.Family` subclass each."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from bayesmixed.families.base import Family, _weighted, _ylogy

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
    _mean_label = "expected count"

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
