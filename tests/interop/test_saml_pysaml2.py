"""pysaml2's Saml2Client (the SP side of SATOSA and djangosaml2) against our SAML IdP.

The SP is ``tests/interop/saml/pysaml2_sp.py`` in its own process, checking signatures and
decrypting with the xmlsec1 program, the path independent of our in-process signer. The
scenarios are shared with the Lasso SP (``SpScenarios`` in ``tests/interop/saml/conftest.py``).
"""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from lxml import etree

from tests.interop.saml.conftest import (  # noqa: F401 - fixtures
    SpScenarios,
    saml_browser_fixture,
    saml_idp_fixture,
    saml_sps_fixture,
)

pytestmark = pytest.mark.interop

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"


class TestPysaml2Sp(SpScenarios):
    kind = "pysaml2"


def test_idp_metadata_signature_verifies_with_xmlsec1(saml_idp, tmp_path):
    """pysaml2 loads unsigned metadata as readily as signed (its issue #1037), so check the
    signature of what the SPs were given with the xmlsec1 program against the signing
    certificate the document names."""
    document = etree.parse(str(saml_idp.metadata_file))
    ns = {"md": MD_NS, "ds": DS_NS}
    assert document.getroot().find("ds:Signature", ns) is not None, "metadata is not signed"
    certs = document.getroot().xpath(
        "md:IDPSSODescriptor/md:KeyDescriptor[not(@use) or @use='signing']"
        "//ds:X509Certificate/text()",
        namespaces=ns,
    )
    assert certs, "no signing certificate in the IdP metadata"
    pem = tmp_path / "idp-signing.pem"
    body = "\n".join(textwrap.wrap("".join(certs[0].split()), 64))
    pem.write_text(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")

    done = subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--pubkey-cert-pem",
            str(pem),
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor",
            str(saml_idp.metadata_file),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    assert "OK" in done.stderr, done.stderr
