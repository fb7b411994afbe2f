"""Lasso (the SAML library of mod_auth_mellon) against our SAML IdP.

The SP is ``tests/interop/saml/lasso_sp.py``, run by Debian's ``/usr/bin/python3`` (Lasso's
binding is the ``python3-lasso`` package); Lasso checks signatures, Redirect-binding query
signatures and decrypts assertions itself, through libxmlsec1. The scenarios are shared with
the pysaml2 SP (``SpScenarios`` in ``tests/interop/saml/conftest.py``).
"""

from __future__ import annotations

import pytest

from tests.interop.saml.conftest import (  # noqa: F401 - fixtures
    SpScenarios,
    saml_browser_fixture,
    saml_idp_fixture,
    saml_sps_fixture,
)

pytestmark = pytest.mark.interop


class TestLassoSp(SpScenarios):
    kind = "lasso"
