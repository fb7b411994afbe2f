"""In-process XML signature and encryption, checked against the real ``xmlsec1`` program."""

from __future__ import annotations

import copy
import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from sso.errors import SsoError
from sso.security import xmldsig
from sso.security.xmldsig import XmlEncryptionError, XmlSignatureError

XMLSEC1 = "/usr/bin/xmlsec1"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = xmldsig.DSIG_NS
XENC = xmldsig.XENC_NS

RESPONSE = f"""<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="resp1" Version="2.0"
 IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://idp.test/</saml:Issuer><samlp:Status>
<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
<saml:Assertion ID="assn1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">
<saml:Issuer>https://idp.test/</saml:Issuer><saml:Subject><saml:NameID>alice</saml:NameID>
</saml:Subject><saml:AttributeStatement><saml:Attribute Name="mail"><saml:AttributeValue>
alice@example.org</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>
</saml:Assertion></samlp:Response>""".encode()


@dataclass(frozen=True)
class Party:
    key_pem: bytes
    cert_pem: bytes
    key_file: Path
    cert_file: Path


def _party(directory: Path, name: str) -> Party:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / f"{name}.key").write_bytes(key_pem)
    (directory / f"{name}.crt").write_bytes(cert_pem)
    return Party(key_pem, cert_pem, directory / f"{name}.key", directory / f"{name}.crt")


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def idp(keydir: Path) -> Party:
    return _party(keydir, "idp")


@pytest.fixture(scope="module")
def attacker(keydir: Path) -> Party:
    return _party(keydir, "attacker")


def xmlsec1(*args: str | Path, data: bytes, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    source = tmp_path / "in.xml"
    source.write_bytes(data)
    return subprocess.run(
        [XMLSEC1, *map(str, args), str(source)], capture_output=True, check=False, timeout=30
    )


def xmlsec1_verify(data: bytes, cert: Path, node: str, node_id: str, tmp_path: Path) -> bool:
    result = xmlsec1(
        "--verify",
        "--enabled-reference-uris",
        "empty,same-doc",
        "--enabled-key-data",
        "raw-x509-cert",
        "--pubkey-cert-pem",
        cert,
        "--id-attr:ID",
        node,
        "--node-id",
        node_id,
        data=data,
        tmp_path=tmp_path,
    )
    return result.returncode == 0


def signed_response(party: Party) -> bytes:
    """Assertion signed, then the response around it, as an IdP sends them."""
    signed = xmldsig.sign(RESPONSE, party.key_pem, party.cert_pem, "assn1")
    return xmldsig.sign(signed, party.key_pem, party.cert_pem, "resp1")


def signature_template(element_id: str, method: str, digest: str) -> str:
    return (
        f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>'
        f'<ds:CanonicalizationMethod Algorithm="{xmldsig.EXC_C14N}"/>'
        f'<ds:SignatureMethod Algorithm="{method}"/><ds:Reference URI="#{element_id}">'
        f'<ds:Transforms><ds:Transform Algorithm="{xmldsig.ENVELOPED_SIGNATURE}"/>'
        f'<ds:Transform Algorithm="{xmldsig.EXC_C14N}"/></ds:Transforms>'
        f'<ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue/></ds:Reference>'
        "</ds:SignedInfo><ds:SignatureValue/></ds:Signature>"
    )


def with_template(document: bytes, between: str, template: str) -> bytes:
    """Insert ``template`` where ``between`` ("</a><b>") is, between its two tags."""
    first, second = between.split("><", 1)
    old = f"{first}><{second}".encode()
    assert old in document
    return document.replace(old, f"{first}>{template}<{second}".encode(), 1)


def tree(document: bytes) -> etree._Element:
    return etree.fromstring(document)


# --- libxml2 -------------------------------------------------------------------------------


def test_lxml_and_xmlsec_share_libxml2() -> None:
    xmldsig.check_libxml2()


def test_errors_are_sso_errors() -> None:
    assert issubclass(XmlSignatureError, SsoError)
    assert issubclass(XmlEncryptionError, SsoError)


# --- Signing -------------------------------------------------------------------------------


def test_signature_verifies_with_xmlsec1(idp: Party, tmp_path: Path) -> None:
    document = signed_response(idp)
    assert xmlsec1_verify(document, idp.cert_file, f"{SAMLP}:Response", "resp1", tmp_path)
    assert xmlsec1_verify(document, idp.cert_file, f"{SAML}:Assertion", "assn1", tmp_path)


def test_added_signature_sits_after_issuer_with_strong_algorithms(idp: Party) -> None:
    root = tree(signed_response(idp))
    assertion = root.find(f"{{{SAML}}}Assertion")
    for element in (root, assertion):
        assert element[0].tag == f"{{{SAML}}}Issuer"
        assert element[1].tag == f"{{{DS}}}Signature"
    signature = root[1]
    assert signature.find(f".//{{{DS}}}SignatureMethod").get("Algorithm") == xmldsig.RSA_SHA256
    assert signature.find(f".//{{{DS}}}DigestMethod").get("Algorithm") == xmldsig.SHA256
    certificate = signature.find(f".//{{{DS}}}X509Certificate").text
    assert certificate == xmldsig.certificate_base64(idp.cert_pem)


def test_existing_template_is_filled_in_not_duplicated(idp: Party, tmp_path: Path) -> None:
    template = signature_template("assn1", xmldsig.RSA_SHA512, xmldsig.SHA512).replace(
        "</ds:SignedInfo><ds:SignatureValue/>",
        "</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate>"
        f"{xmldsig.certificate_base64(idp.cert_pem)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>",
    )
    document = with_template(RESPONSE, "</saml:Issuer><saml:Subject>", template)
    document = document.replace(b"</saml:Issuer><ds:Sig", b"</saml:Issuer>\n<ds:Sig")
    signed = xmldsig.sign(document, idp.key_pem, idp.cert_pem, "assn1")
    assertion = tree(signed).find(f"{{{SAML}}}Assertion")
    assert len(assertion.findall(f"{{{DS}}}Signature")) == 1
    assert len(assertion.findall(f".//{{{DS}}}X509Certificate")) == 1
    method = assertion.find(f".//{{{DS}}}SignatureMethod").get("Algorithm")
    assert method == xmldsig.RSA_SHA512
    assert xmlsec1_verify(signed, idp.cert_file, f"{SAML}:Assertion", "assn1", tmp_path)
    xmldsig.verify(signed, [idp.cert_pem], element_id="assn1")


def test_sign_refuses_unknown_id_and_foreign_template(idp: Party) -> None:
    with pytest.raises(XmlSignatureError):
        xmldsig.sign(RESPONSE, idp.key_pem, idp.cert_pem, "nope")
    foreign = signature_template("resp1", xmldsig.RSA_SHA256, xmldsig.SHA256)
    document = with_template(RESPONSE, "</saml:Issuer><saml:Subject>", foreign)
    with pytest.raises(XmlSignatureError, match="reference"):
        xmldsig.sign(document, idp.key_pem, idp.cert_pem, "assn1")


# --- Verification: what passes --------------------------------------------------------------


def test_verify_returns_the_signed_element(idp: Party) -> None:
    document = signed_response(idp)
    response = xmldsig.verify(document, [idp.cert_pem], element_tag=f"{{{SAMLP}}}Response")
    assert response.get("ID") == "resp1"
    assertion = xmldsig.verify(
        document, [idp.cert_pem], element_id="assn1", element_tag=f"{{{SAML}}}Assertion"
    )
    assert assertion.findtext(f".//{{{SAML}}}NameID") == "alice"


def test_xmlsec1_signature_verifies_in_process(idp: Party, tmp_path: Path) -> None:
    template = signature_template("resp1", xmldsig.RSA_SHA256, xmldsig.SHA256)
    document = with_template(RESPONSE, "</saml:Issuer><samlp:Status>", template)
    result = xmlsec1(
        "--sign",
        "--privkey-pem",
        idp.key_file,
        "--id-attr:ID",
        f"{SAMLP}:Response",
        "--node-id",
        "resp1",
        data=document,
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert xmldsig.verify(result.stdout, [idp.cert_pem], element_id="resp1").get("ID") == "resp1"


def test_each_certificate_is_tried(idp: Party, attacker: Party) -> None:
    document = signed_response(idp)
    xmldsig.verify(document, [attacker.cert_pem, idp.cert_pem], element_id="assn1")


# --- Verification: what is refused ---------------------------------------------------------


def test_no_certificate_refused(idp: Party) -> None:
    with pytest.raises(XmlSignatureError):
        xmldsig.verify(signed_response(idp), [])


def test_tampered_content_refused(idp: Party) -> None:
    document = signed_response(idp).replace(b"<saml:NameID>alice<", b"<saml:NameID>admin<")
    with pytest.raises(XmlSignatureError, match="not valid"):
        xmldsig.verify(document, [idp.cert_pem], element_id="assn1")
    with pytest.raises(XmlSignatureError, match="not valid"):
        xmldsig.verify(document, [idp.cert_pem], element_id="resp1")


def test_tampered_signature_value_refused(idp: Party) -> None:
    root = tree(signed_response(idp))
    value = root.find(f"{{{DS}}}Signature/{{{DS}}}SignatureValue")
    text = value.text.strip()
    value.text = ("B" if text[0] == "A" else "A") + text[1:]
    with pytest.raises(XmlSignatureError, match="not valid"):
        xmldsig.verify(etree.tostring(root), [idp.cert_pem], element_id="resp1")


def test_wrong_certificate_refused(idp: Party, attacker: Party) -> None:
    with pytest.raises(XmlSignatureError, match="not valid"):
        xmldsig.verify(signed_response(idp), [attacker.cert_pem], element_id="assn1")


def test_key_from_keyinfo_never_used(idp: Party, attacker: Party) -> None:
    """The attacker signs with their own key and embeds their own certificate."""
    forged = xmldsig.sign(
        RESPONSE.replace(b">alice<", b">admin<"), attacker.key_pem, attacker.cert_pem, "assn1"
    )
    embedded = tree(forged).find(f".//{{{DS}}}X509Certificate").text
    assert embedded == xmldsig.certificate_base64(attacker.cert_pem)
    with pytest.raises(XmlSignatureError, match="not valid"):
        xmldsig.verify(forged, [idp.cert_pem], element_id="assn1")


def test_wrapping_moved_assertion_with_evil_copy_refused(idp: Party) -> None:
    """The signed assertion hidden in Extensions, an evil one with the same ID in its place."""
    root = tree(xmldsig.sign(RESPONSE, idp.key_pem, idp.cert_pem, "assn1"))
    original = root.find(f"{{{SAML}}}Assertion")
    evil = copy.deepcopy(original)
    evil.find(f".//{{{SAML}}}NameID").text = "admin"
    evil.remove(evil.find(f"{{{DS}}}Signature"))
    extensions = etree.SubElement(root, f"{{{SAMLP}}}Extensions")
    root.replace(original, evil)
    extensions.append(original)
    root.insert(1, extensions)
    with pytest.raises(XmlSignatureError, match="duplicate ID"):
        xmldsig.verify(etree.tostring(root), [idp.cert_pem], element_id="assn1")


def test_duplicate_id_in_other_attribute_refused(idp: Party) -> None:
    document = signed_response(idp).replace(b"<samlp:Status>", b'<samlp:Status xml:id="assn1">', 1)
    with pytest.raises(XmlSignatureError, match="duplicate ID"):
        xmldsig.verify(document, [idp.cert_pem], element_id="assn1")


def test_reference_to_another_element_refused(idp: Party) -> None:
    """An evil assertion carrying the genuine assertion's signature, which names the genuine ID."""
    root = tree(xmldsig.sign(RESPONSE, idp.key_pem, idp.cert_pem, "assn1"))
    original = root.find(f"{{{SAML}}}Assertion")
    evil = copy.deepcopy(original)
    evil.set("ID", "evil1")
    evil.find(f".//{{{SAML}}}NameID").text = "admin"
    original.addprevious(evil)
    evil.remove(evil.find(f"{{{DS}}}Signature"))
    evil.insert(1, original.find(f"{{{DS}}}Signature"))
    with pytest.raises(XmlSignatureError, match="reference"):
        xmldsig.verify(etree.tostring(root), [idp.cert_pem], element_id="evil1")


def test_signature_must_be_a_direct_child(idp: Party) -> None:
    root = tree(signed_response(idp))
    signature = root.find(f"{{{DS}}}Signature")
    root.find(f"{{{SAMLP}}}Status").append(signature)
    with pytest.raises(XmlSignatureError, match="exactly one Signature"):
        xmldsig.verify(etree.tostring(root), [idp.cert_pem], element_id="resp1")


def test_empty_reference_only_for_the_root(idp: Party) -> None:
    template = signature_template("assn1", xmldsig.RSA_SHA256, xmldsig.SHA256)
    document = with_template(RESPONSE, "</saml:Issuer><saml:Subject>", template)
    signed = xmldsig.sign(document, idp.key_pem, idp.cert_pem, "assn1")
    signed = signed.replace(b'URI="#assn1"', b'URI=""')
    with pytest.raises(XmlSignatureError, match="reference"):
        xmldsig.verify(signed, [idp.cert_pem], element_id="assn1")


def test_element_tag_must_match(idp: Party) -> None:
    with pytest.raises(XmlSignatureError, match="not"):
        xmldsig.verify(
            signed_response(idp), [idp.cert_pem], element_id="assn1", element_tag="{urn:x}Other"
        )


def test_sha1_refused_unless_allowed(idp: Party) -> None:
    template = signature_template("assn1", xmldsig.RSA_SHA1, xmldsig.SHA1)
    document = with_template(RESPONSE, "</saml:Issuer><saml:Subject>", template)
    signed = xmldsig.sign(document, idp.key_pem, idp.cert_pem, "assn1")
    with pytest.raises(XmlSignatureError, match="rsa-sha1"):
        xmldsig.verify(signed, [idp.cert_pem], element_id="assn1")
    xmldsig.verify(signed, [idp.cert_pem], element_id="assn1", allow_sha1=True)


def test_sha1_digest_refused_with_strong_method(idp: Party) -> None:
    template = signature_template("assn1", xmldsig.RSA_SHA256, xmldsig.SHA1)
    document = with_template(RESPONSE, "</saml:Issuer><saml:Subject>", template)
    signed = xmldsig.sign(document, idp.key_pem, idp.cert_pem, "assn1")
    with pytest.raises(XmlSignatureError, match="digest"):
        xmldsig.verify(signed, [idp.cert_pem], element_id="assn1")


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (  # an XPath transform could pick what is digested
            f'<ds:Transform Algorithm="{xmldsig.EXC_C14N}"/>',
            '<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"/>',
            "transforms",
        ),
        (  # no enveloped-signature transform
            f'<ds:Transform Algorithm="{xmldsig.ENVELOPED_SIGNATURE}"/>',
            "",
            "transforms",
        ),
        (
            f'<ds:CanonicalizationMethod Algorithm="{xmldsig.EXC_C14N}"/>',
            '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>',
            "canonicalisation",
        ),
        ("</ds:SignatureValue>", "</ds:SignatureValue><ds:Object>x</ds:Object>", "Object"),
        ("<saml:NameID>alice", "<saml:NameID>alice<!-- -->", "comments"),
    ],
)
def test_signature_shape_refused(idp: Party, old: str, new: str, reason: str) -> None:
    template = signature_template("assn1", xmldsig.RSA_SHA256, xmldsig.SHA256)
    document = with_template(RESPONSE, "</saml:Issuer><saml:Subject>", template)
    signed = xmldsig.sign(document, idp.key_pem, idp.cert_pem, "assn1")
    assert old.encode() in signed
    with pytest.raises(XmlSignatureError, match=reason):
        xmldsig.verify(
            signed.replace(old.encode(), new.encode(), 1), [idp.cert_pem], element_id="assn1"
        )


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        "<!DOCTYPE r [<!ATTLIST saml:Assertion ID ID #IMPLIED>]>",
        '<!DOCTYPE r SYSTEM "http://attacker.test/evil.dtd">',
    ],
)
def test_doctype_refused(idp: Party, prolog: str) -> None:
    document = prolog.encode() + signed_response(idp).replace(b"alice<", b"&b;<", 1)
    with pytest.raises(XmlSignatureError, match="DOCTYPE|well-formed"):
        xmldsig.verify(document, [idp.cert_pem], element_id="assn1")
    with pytest.raises(XmlEncryptionError, match="DOCTYPE|well-formed"):
        xmldsig.decrypt_element(document, idp.key_pem)
    with pytest.raises(XmlSignatureError, match="DOCTYPE|well-formed"):
        xmldsig.sign(document, idp.key_pem, idp.cert_pem, "resp1")


def test_undeclared_entity_refused(idp: Party) -> None:
    document = signed_response(idp).replace(b"alice<", b"&xxe;<", 1)
    with pytest.raises(XmlSignatureError, match="well-formed"):
        xmldsig.verify(document, [idp.cert_pem], element_id="assn1")


# --- Encryption ----------------------------------------------------------------------------


def encryption_methods(document: bytes) -> list[str]:
    return [m.get("Algorithm") for m in tree(document).iter(f"{{{XENC}}}EncryptionMethod")]


def test_encrypted_assertion_is_aes_gcm_and_rsa_oaep(idp: Party) -> None:
    encrypted = xmldsig.encrypt_assertion(signed_response(idp), idp.cert_pem)
    assert encryption_methods(encrypted) == [xmldsig.AES128_GCM, xmldsig.RSA_OAEP_MGF1P]
    root = tree(encrypted)
    wrapper = root.find(f"{{{SAML}}}EncryptedAssertion")
    assert wrapper[0].tag == f"{{{XENC}}}EncryptedData"
    assert root.find(f".//{{{SAML}}}Assertion") is None
    assert b"alice" not in encrypted


def test_decrypt_round_trip_keeps_signature(idp: Party) -> None:
    encrypted = xmldsig.encrypt_assertion(
        signed_response(idp), idp.cert_pem, algorithm="aes256-gcm"
    )
    assert encryption_methods(encrypted)[0] == xmldsig.AES256_GCM
    decrypted = xmldsig.decrypt_element(encrypted, idp.key_pem)
    assertion = xmldsig.verify(decrypted, [idp.cert_pem], element_id="assn1")
    assert assertion.getparent().tag == f"{{{SAML}}}EncryptedAssertion"


def test_xmlsec1_decrypts_our_encryption(idp: Party, tmp_path: Path) -> None:
    encrypted = xmldsig.encrypt_assertion(signed_response(idp), idp.cert_pem)
    result = xmlsec1("--decrypt", "--privkey-pem", idp.key_file, data=encrypted, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert xmlsec1_verify(result.stdout, idp.cert_file, f"{SAML}:Assertion", "assn1", tmp_path)


def test_template_structure_kept_but_3des_never_used(idp: Party) -> None:
    template = (
        f'<xenc:EncryptedData xmlns:xenc="{XENC}" Id="ED_1" Type="{xmldsig.TYPE_ELEMENT}">'
        f'<xenc:EncryptionMethod Algorithm="{xmldsig.TRIPLEDES_CBC}"/>'
        f'<ds:KeyInfo xmlns:ds="{DS}"><xenc:EncryptedKey Id="EK_1">'
        '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5"/>'
        "<ds:KeyInfo><ds:KeyName>sp-key</ds:KeyName></ds:KeyInfo>"
        "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>"
        "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"
    ).encode()
    document = RESPONSE.replace(b"<saml:Assertion ", b"<saml:EncryptedAssertion><saml:Assertion ")
    document = document.replace(
        b"</saml:Assertion>", b"</saml:Assertion></saml:EncryptedAssertion>"
    )
    xpath = "/*[local-name()='Response']/*[local-name()='EncryptedAssertion']/*"
    encrypted = xmldsig.encrypt_element(document, xpath, idp.cert_pem, template=template)
    assert encryption_methods(encrypted) == [xmldsig.AES128_GCM, xmldsig.RSA_OAEP_MGF1P]
    assert xmldsig.TRIPLEDES_CBC.encode() not in encrypted
    data = tree(encrypted).find(f".//{{{XENC}}}EncryptedData")
    assert data.get("Id") == "ED_1"
    assert data.find(f".//{{{XENC}}}EncryptedKey").get("Id") == "EK_1"
    assert data.findtext(f".//{{{DS}}}KeyName") == "sp-key"
    decrypted = xmldsig.decrypt_element(encrypted, idp.key_pem)
    assert tree(decrypted).findtext(f".//{{{SAML}}}NameID") == "alice"


def test_weak_algorithm_argument_refused(idp: Party) -> None:
    for algorithm in ("tripledes-cbc", xmldsig.TRIPLEDES_CBC, "aes128-cbc"):
        with pytest.raises(XmlEncryptionError, match="AES-GCM"):
            xmldsig.encrypt_assertion(RESPONSE, idp.cert_pem, algorithm=algorithm)


def test_xpath_must_select_one_element(idp: Party) -> None:
    with pytest.raises(XmlEncryptionError, match="exactly one"):
        xmldsig.encrypt_element(RESPONSE, "//*[local-name()='Issuer']", idp.cert_pem)


def _xmlsec1_encrypt(party: Party, data_alg: str, key_alg: str, tmp_path: Path) -> bytes:
    template = tmp_path / "template.xml"
    template.write_text(
        f'<xenc:EncryptedData xmlns:xenc="{XENC}" Type="{xmldsig.TYPE_ELEMENT}">'
        f'<xenc:EncryptionMethod Algorithm="{data_alg}"/><ds:KeyInfo xmlns:ds="{DS}">'
        f'<xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="{key_alg}"/>'
        "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>"
        "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"
    )
    session = {
        xmldsig.AES128_GCM: "aes-128",
        xmldsig.TRIPLEDES_CBC: "des-192",
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc": "aes-128",
    }[data_alg]
    data = tmp_path / "data.xml"
    data.write_bytes(RESPONSE)
    result = subprocess.run(
        [XMLSEC1, "--encrypt", "--pubkey-cert-pem", str(party.cert_file), "--session-key",
         session, "--xml-data", str(data), "--node-xpath",
         "/*[local-name()='Response']/*[local-name()='Assertion']", str(template)],
        capture_output=True, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_xmlsec1_encryption_decrypts_in_process(idp: Party, tmp_path: Path) -> None:
    encrypted = _xmlsec1_encrypt(idp, xmldsig.AES128_GCM, xmldsig.RSA_OAEP_MGF1P, tmp_path)
    decrypted = xmldsig.decrypt_element(encrypted, idp.key_pem)
    assert tree(decrypted).findtext(f".//{{{SAML}}}NameID") == "alice"


@pytest.mark.parametrize(
    ("data_alg", "key_alg", "reason"),
    [
        (xmldsig.TRIPLEDES_CBC, xmldsig.RSA_OAEP_MGF1P, "AES-GCM only"),
        ("http://www.w3.org/2001/04/xmlenc#aes128-cbc", xmldsig.RSA_OAEP_MGF1P, "AES-GCM only"),
        (xmldsig.AES128_GCM, "http://www.w3.org/2001/04/xmlenc#rsa-1_5", "RSA-OAEP"),
    ],
)
def test_weak_encryption_refused_on_decrypt(
    idp: Party, tmp_path: Path, data_alg: str, key_alg: str, reason: str
) -> None:
    encrypted = _xmlsec1_encrypt(idp, data_alg, key_alg, tmp_path)
    with pytest.raises(XmlEncryptionError, match=reason):
        xmldsig.decrypt_element(encrypted, idp.key_pem)


def test_decrypt_with_wrong_key_refused(idp: Party, attacker: Party) -> None:
    encrypted = xmldsig.encrypt_assertion(RESPONSE, idp.cert_pem)
    with pytest.raises(XmlEncryptionError):
        xmldsig.decrypt_element(encrypted, attacker.key_pem)


def test_tampered_ciphertext_refused(idp: Party) -> None:
    root = tree(xmldsig.encrypt_assertion(RESPONSE, idp.cert_pem))
    value = root.find(f".//{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    text = "".join(value.text.split())
    value.text = text[:40] + ("A" if text[40] != "A" else "B") + text[41:]
    with pytest.raises(XmlEncryptionError, match="decryption failed"):
        xmldsig.decrypt_element(etree.tostring(root), idp.key_pem)
