"""PyInstaller runtime hook: use the host's CA bundle for HTTPS webhooks.

The executable carries the build machine's OpenSSL, which looks for CA
certificates where Debian keeps them (/usr/lib/ssl). On other distributions
that path doesn't exist and every https:// delivery would fail certificate
verification. Unless the user chose with SSL_CERT_FILE or SSL_CERT_DIR, the
first process settles where the certificates are and exports it: OpenSSL's
own default when it exists, else the first bundle found in the usual places
(the list Go's crypto/x509 probes). The spawned child processes inherit the
variable, so they skip the check (and the import of ssl).
"""

import os

_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/pki/tls/cacert.pem",  # OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # CentOS, RHEL 7
    "/etc/ssl/cert.pem",  # Alpine
)


def _choose_ca_certificates() -> None:
    if "SSL_CERT_FILE" in os.environ or "SSL_CERT_DIR" in os.environ:
        return
    import ssl

    defaults = ssl.get_default_verify_paths()  # cafile/capath are None when missing
    if defaults.cafile:
        os.environ["SSL_CERT_FILE"] = defaults.cafile
        return
    if defaults.capath and any(os.scandir(defaults.capath)):
        os.environ["SSL_CERT_DIR"] = defaults.capath
        return
    for bundle in _CA_BUNDLES:
        if os.path.isfile(bundle):
            os.environ["SSL_CERT_FILE"] = bundle
            return


_choose_ca_certificates()
