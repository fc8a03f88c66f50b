"""Sealing a rendered letter with a PAdES signature over the whole PDF (pyHanko), the signing
key behind one interface, ``Sealer``; and checking such a seal (``check_signature``).

- ``Pkcs12Sealer``: the keys are PKCS#12 files in one directory: ``<nip>.p12`` for a signer
  with a personal certificate, else ``pemda.p12`` (one seal for the whole Pemda).
- ``DevelopmentSealer``: the same over a development CA that it makes itself
  (``ensure_development_ca``), issuing each signer's certificate on first use. For local use
  and tests only: nobody outside trusts that CA (``development_trust_root`` is its root).
- **Signing time.** It is the signature dictionary's ``/M``, inside the signed byte range, not
  a CMS signing-time attribute: PAdES forbids that attribute (ETSI EN 319 142-1) and pyHanko
  leaves it out. There is no timestamp (PAdES B-B), so a check made after the certificate has
  expired fails; production adds a timestamp authority (pyHanko's ``timestamper``).
- **BSrE or an HSM.** The national signature service (BSrE, BSSN) or an HSM keeps the private
  key; each is one more ``Sealer`` class, chosen by configuration. It wraps the remote call in
  a pyHanko ``Signer`` (a subclass whose ``async_sign_raw`` asks the service to sign a digest,
  ``ExternalSigner`` when the service answers later, ``pyhanko.sign.pkcs11`` for a PKCS#11
  HSM) and hands it to ``pades_seal``; a service that takes the PDF and returns it sealed makes
  ``seal`` that one call.
"""

import fcntl
import io
import os
import re
import tempfile
import weakref
from abc import ABC, abstractmethod
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

FIELD = "Segel"
NIP = re.compile(r"\d{18}")
PEMDA_FILE = "pemda.p12"
CA_CERT_FILE = "development-ca.pem"
CA_KEY_FILE = "development-ca.key"
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")   # id-kp-documentSigning
# the hex string of a signature dictionary's /Contents: the space reserved for the signature
SIGNATURE_CONTENTS = re.compile(rb"/Contents\s*<([0-9A-Fa-f]*)>")
_RESERVED = weakref.WeakKeyDictionary()  # signer -> hex digits its signature is given


class SealingError(Exception):
    """No usable key for the signer: no file, a wrong passphrase, a damaged file."""


class Sealer(ABC):
    @abstractmethod
    def seal(self, pdf, *, signer_name, signer_nip, reason, location):
        """The PDF with a PAdES signature covering all of it, by the signer's key."""


def pades_seal(pdf, signer, *, signer_name, reason, location):
    """``pdf`` signed by a pyHanko ``Signer`` in a new invisible field: PAdES, SHA-256.

    pyHanko sizes the space for the signature by first signing a dummy (with a margin of a
    half): about a third of a seal's CPU. The size depends on the signer's certificates, not
    on the letter, so a signer's first seal measures it and the next ones reserve the same;
    should a signature ever not fit (a signer that grew a longer chain), it is measured
    again."""
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD, name=signer_name, reason=reason, location=location,
        subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256")
    reserved = _RESERVED.get(signer)
    try:
        sealed = _sign(pdf, meta, signer, reserved)
    except SigningError:
        if reserved is None:
            raise
        reserved = None
        sealed = _sign(pdf, meta, signer, None)
    if reserved is None:
        _RESERVED[signer] = len(SIGNATURE_CONTENTS.findall(sealed)[-1])
    return sealed


def _sign(pdf, meta, signer, reserved):
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    return signers.PdfSigner(meta, signer=signer).sign_pdf(
        writer, bytes_reserved=reserved).getvalue()


class Pkcs12Sealer(Sealer):
    """Keys from ``<directory>/<nip>.p12``, else ``<directory>/pemda.p12``."""

    def __init__(self, directory, passphrase=None):
        self.directory = Path(directory)
        self.passphrase = passphrase
        # path -> (mtime, signer): a replaced file (a renewed certificate) is read again
        self._signers = {}

    def seal(self, pdf, *, signer_name, signer_nip, reason, location):
        return pades_seal(pdf, self._signer(signer_nip), signer_name=signer_name,
                          reason=reason, location=location)

    def _signer(self, nip):
        _require_nip(nip)
        for path in (self.directory / f"{nip}.p12", self.directory / PEMDA_FILE):
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            cached = self._signers.get(path)
            if cached is None or cached[0] != mtime:
                cached = self._signers[path] = (mtime, self._load(path))
            return cached[1]
        raise SealingError(f"no signing key for NIP {nip}: neither {nip}.p12 nor {PEMDA_FILE} "
                           f"in {self.directory}")

    def _load(self, path):
        try:
            return signers.SimpleSigner.load_pkcs12_data(
                path.read_bytes(), other_certs=(), passphrase=self.passphrase)
        except ValueError as error:
            raise SealingError(f"cannot load {path}: wrong passphrase or a damaged file") \
                from error


class DevelopmentSealer(Pkcs12Sealer):
    """Keys from the development CA in ``directory``, each signer's issued on first use."""

    def __init__(self, directory):
        super().__init__(directory, passphrase=None)
        ensure_development_ca(self.directory)

    def seal(self, pdf, *, signer_name, signer_nip, reason, location):
        self.key_file(signer_name, signer_nip)
        return super().seal(pdf, signer_name=signer_name, signer_nip=signer_nip, reason=reason,
                            location=location)

    def key_file(self, signer_name, signer_nip):
        """The signer's PKCS#12 file, issued by the development CA on the first call."""
        _require_nip(signer_nip)
        path = self.directory / f"{signer_nip}.p12"
        if not path.exists():
            with _exclusive(self.directory):
                if not path.exists():
                    _write_atomically(path, _issue(self.directory, signer_name, signer_nip))
        return path


def ensure_development_ca(directory):
    """The development CA's certificate file in ``directory``, made on the first call (EC P-256,
    ten years); the key beside it is readable by its owner only."""
    directory = Path(directory)
    cert_path = directory / CA_CERT_FILE
    if cert_path.exists():
        return cert_path
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _exclusive(directory):
        if not cert_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([
                x509.NameAttribute(NameOID.COMMON_NAME,
                                   "PAMONG DEVELOPMENT CA - NOT FOR PRODUCTION"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pamong development"),
            ])
            cert = (_certificate(name, name, key.public_key(), days=3650)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
                    .sign(key, hashes.SHA256()))
            key_pem = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
            # the certificate last: its presence says both files are complete
            _write_atomically(directory / CA_KEY_FILE, key_pem)
            _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def development_trust_root(directory):
    """The development CA's certificate as pyHanko's validation wants it (asn1crypto)."""
    return load_trust_roots(ensure_development_ca(directory))[0]


def load_trust_roots(path):
    """The certificates of a PEM file (a bundle: the roots a verification trusts, e.g. the
    national CA's), as pyHanko's validation wants them."""
    return [asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
            for cert in x509.load_pem_x509_certificates(Path(path).read_bytes())]


def sealed_by(pdf):
    """The subject of the certificate that made the PDF's (first) signature, as text."""
    signature = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_regular_signatures[0]
    return signature.signer_cert.subject.human_friendly


def check_signature(pdf, trust_roots):
    """What a verification page shows about ``pdf``'s (first) signature. Never raises: a file
    that is not a PDF, or a damaged one, is reported as unsigned with a ``problem``."""
    result = {"signed": False, "intact": False, "valid": False, "signer": None, "serial": None,
              "signed_at": None, "covers_whole_file": False, "problem": None}
    try:
        signatures = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_regular_signatures
    except Exception as error:  # anyone can upload anything here
        return result | {"problem": f"not a readable PDF: {error}"}
    if not signatures:
        return result | {"problem": "the PDF carries no signature"}
    context = ValidationContext(trust_roots=list(trust_roots), allow_fetching=False)
    try:
        status = validate_pdf_signature(signatures[0], context)
    except Exception as error:  # a malformed signature: pyHanko raises several kinds
        return result | {"signed": True, "problem": f"the signature cannot be read: {error}"}
    subject = status.signing_cert.subject.native
    intact = status.intact and status.valid
    covers_whole_file = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    if not status.intact:
        problem = "the document was changed after it was signed"
    elif not status.valid:
        problem = "the signature does not match the document"
    elif status.revoked:
        problem = "the signer's certificate is revoked"
    elif not status.trusted:
        problem = "the signer's certificate does not chain to a trusted root"
    elif not status.bottom_line:
        problem = "the file was changed after signing in a way the signature does not allow"
    elif not covers_whole_file:
        problem = "the file was updated after it was signed"
    else:
        problem = None
    return {"signed": True, "intact": intact, "valid": status.bottom_line,
            "signer": subject.get("common_name"), "serial": subject.get("serial_number"),
            "signed_at": status.signer_reported_dt, "covers_whole_file": covers_whole_file,
            "problem": problem}


def _require_nip(nip):
    # it becomes a file name: nothing but the 18 digits
    if not NIP.fullmatch(nip):
        raise SealingError(f"not a NIP (18 digits): {nip!r}")


def _issue(directory, signer_name, nip):
    """A passphrase-less PKCS#12 file for the signer, issued by the development CA: two years,
    for signing documents only."""
    ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())
    ca_key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, signer_name[:64]),   # X.509's upper bound
        x509.NameAttribute(NameOID.SERIAL_NUMBER, nip),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pamong development — not for production"),
    ])
    cert = (_certificate(subject, ca_cert.subject, key.public_key(), days=730)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True, content_commitment=True),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return pkcs12.serialize_key_and_certificates(
        nip.encode(), key, cert, [ca_cert], serialization.NoEncryption())


def _certificate(subject, issuer, public_key, days):
    now = datetime.now(UTC)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))   # tolerate a slightly slow clock
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False))


def _key_usage(**chosen):
    usages = ("digital_signature", "content_commitment", "key_encipherment",
              "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
              "encipher_only", "decipher_only")
    return x509.KeyUsage(**{usage: chosen.get(usage, False) for usage in usages})


@contextmanager
def _exclusive(directory):
    """One creator at a time, in other processes and in other threads of this one: each call
    opens the lock file anew and flock locks belong to the open file: the seal workers are
    processes of their own, and the upload check runs in eventlet's OS threads (tpool), where
    a green lock cannot wait."""
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write_atomically(path, data):
    """Readers see no file or the whole file, never half of one; created 0600 (mkstemp)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
