"""PyInstaller runtime hook: use the host's CA bundle for HTTPS webhooks.

The executable carries the build machine's OpenSSL, which looks for CA
certificates where Debian keeps them (/usr/lib/ssl). On other distributions
that path doesn't exist and every https:// delivery would fail certificate
verification. When the user hasn't chosen with SSL_CERT_FILE/SSL_CERT_DIR and
OpenSSL's own default is missing, point SSL_CERT_FILE at the first bundle
found in the usual places (the list Go's crypto/x509 probes). Spawned child
processes inherit the variable.
"""

import os
import ssl

_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/pki/tls/cacert.pem",  # OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # CentOS, RHEL 7
    "/etc/ssl/cert.pem",  # Alpine
)


def _use_host_ca_bundle() -> None:
    if "SSL_CERT_FILE" in os.environ or "SSL_CERT_DIR" in os.environ:
        return
    defaults = ssl.get_default_verify_paths()  # cafile/capath are None when missing
    if defaults.cafile or (defaults.capath and os.listdir(defaults.capath)):
        return
    for bundle in _CA_BUNDLES:
        if os.path.isfile(bundle):
            os.environ["SSL_CERT_FILE"] = bundle
            return


_use_host_ca_bundle()
