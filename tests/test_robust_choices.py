"""Unknown family, link, method, sampler, prior, na_action and control names list the valid choices."""

from __future__ import annotations


import pytest

import bayesmixed as bm

SS = bm.load_dataset("sleepstudy")
F = "Reaction ~ Days + (1 | Subject)"


def test_unknown_family_lists_families():
    with pytest.raises(bm.DesignError) as exc:
        bm.Model(F, SS, family="gausian")
    assert str(exc.value) == ("unknown family 'gausian'; valid families are: gaussian, binomial, "
                              "poisson, gamma, negativebinomial")


def test_family_aliases_and_case():
    assert bm.Model(F, SS, family="Gaussian").family.name == "gaussian"
    assert bm.Model(F, SS, family="normal").family.name == "gaussian"


def test_family_of_wrong_type():
    with pytest.raises(bm.DesignError, match="family must be a string such as 'binomial', got 3"):
        bm.Model(F, SS, family=3)


def test_unknown_link_lists_links_of_the_family():
    with pytest.raises(bm.DesignError) as exc:
        bm.Model(F, SS, link="logit")
    assert str(exc.value) == ("link 'logit' is not available for family 'gaussian'; valid links are: "
                              "identity, log, inverse")
    cbpp = bm.load_dataset("cbpp")
    with pytest.raises(bm.DesignError, match="valid links are: logit, probit, cloglog"):
        bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                 family="binomial", link="log")


def test_unknown_method_lists_methods():
    m = bm.Model(F, SS)
    with pytest.raises(bm.DesignError) as exc:
        m.fit(method="remll")
    assert str(exc.value) == "unknown method 'remll'; valid methods are: reml, ml, laplace, agq, nuts, map"


def test_gaussian_only_method_on_other_family():
    d = SS.copy()
    d["y"] = (d["Reaction"] > 300).astype(int)
    m = bm.Model("y ~ Days + (1 | Subject)", d, family="binomial")
    with pytest.raises(bm.DesignError, match="method='reml' is for gaussian models .* use method='laplace'"):
        m.fit(method="reml")




def test_unknown_sampler_lists_samplers():
    m = bm.Model(F, SS)
    with pytest.raises(bm.BayesMixedError) as exc:
        m.fit(method="nuts", sampler="stann", draws=5, tune=5, chains=1, progressbar=False)
    msg = str(exc.value)
    assert isinstance(exc.value, bm.DesignError)
    assert "unknown sampler 'stann'; valid samplers are: auto" in msg and "pymc" in msg


def test_unknown_prior_name_lists_valid_names():
    with pytest.raises(bm.DesignError) as exc:          # refused when the model is built
        bm.Model(F, SS, priors={"sd_Subjct": 1.0})
    msg = str(exc.value)
    assert "unknown prior name(s) ['sd_Subjct']" in msg
    assert "valid names for this model are:" in msg and "sd_Subject" in msg and "sigma" in msg


def test_predict_type_choices():
    fit = bm.Model(F, SS).fit()
    with pytest.raises(bm.DesignError, match="type must be 'link' or 'response', got 'resp'"):
        fit.predict(type="resp")


def test_unknown_fit_option_lists_valid_ones():
    m = bm.Model(F, SS)
    with pytest.raises(bm.DesignError) as exc:
        m.fit(REML=False)
    msg = str(exc.value)
    assert "fit(method='reml') got unknown option(s) ['REML']" in msg
    assert "use method='ml'" in msg and "valid options are: start" in msg
    with pytest.raises(bm.DesignError, match=r"got unknown option\(s\) \['draws'\]"):
        m.fit(method="ml", draws=100)


def test_unknown_glmm_option_lists_valid_ones():
    cbpp = bm.load_dataset("cbpp")
    m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    with pytest.raises(bm.DesignError) as exc:
        m.fit(method="agq", nagq=5)
    assert "got unknown option(s) ['nagq']" in str(exc.value) and "nAGQ" in str(exc.value)
