#!/usr/bin/env python3
"""Prepares and runs the secretexec benchmark workloads; called by bench/run.

Every workload is a list of commands measured side by side in one hyperfine
invocation, with the floor (`/usr/bin/env true`) always among them. For each
command the script first runs it once (a probe): a secretexec command whose
backend is not built in yet is recorded as "pending: <branch> not merged", any
other failure as "failed: <first line of stderr>", and the workload goes on
with the commands that work. Then it checks that the command really delivers
the variables (the final `true` replaced by `env`), times everything with
hyperfine, and measures peak RSS with /usr/bin/time.

Writes one JSON file per workload into --out; bench/report.py turns them
into docs/benchmarks.md. Standard library only.
"""

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

FLOOR = "/usr/bin/env true"

# Which branch brings which capability, for "pending: <branch> not merged".
BRANCH_OF = {
    "vault": "vault",
    "azure-keyvault": "azure",
    "sops": "sops",
    "age": "sops",
    "supervise": "supervise",
}


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Cmd:
    """One command of a workload.

    role: "floor", "secretexec" or "peer". verify: replace the last `true`
    by `env` and check the expected variables (False for commands whose child
    is fixed in a config file, like the agent). runs/warmup: overrides for
    slow peers.
    """

    def __init__(self, name, command, role, verify=True, needs=None, runs=None, warmup=None, note=None, missing=None):
        self.name = name
        self.command = command
        self.role = role
        # True: derive the check from the command; a string: the command that prints the child's env.
        self.verify = verify
        self.needs = needs or []
        self.runs = runs
        self.warmup = warmup
        self.note = note
        self.estimate = 0.0
        self.status = "ok" if not missing else "missing"
        self.reason = missing


class Workload:
    def __init__(
        self, wid, title, what, cmds, expect=None, env=None, notes=None, unavailable=None, mapping=None, server=None,
        server_floor=None,
    ):
        self.id = wid
        # "openbao" or "azure": the server whose CPU time per run is measured too.
        self.server = server
        # Vault paths read once per round by openbao_server_floor.
        self.server_floor = server_floor
        self.mapping = mapping
        self.title = title
        self.what = what
        self.cmds = [Cmd("floor", FLOOR, "floor", verify=False)] + cmds
        self.expect = expect or {}
        self.env = env or {}
        self.notes = notes or []
        # Set when the whole workload cannot run here (e.g. no Azure test server yet).
        self.unavailable = unavailable


# ---------------------------------------------------------------- helpers


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def gen_vars(prefix, n):
    """n variables with random, shell- and dotenv-safe values."""
    return {f"{prefix}{i:04d}": secrets.token_hex(16) for i in range(1, n + 1)}


def dotenv(vars_):
    return "".join(f"{k}={v}\n" for k, v in vars_.items())


def run(argv, env=None, timeout=120, **kw):
    return subprocess.run(argv, env=env, capture_output=True, timeout=timeout, **kw)


def toml_str(s):
    return json.dumps(str(s))


def split(command):
    return shlex.split(command)


# ---------------------------------------------------------------- capability probes


class Binary:
    def __init__(self, path, work):
        self.path = path
        self.work = work
        self._kinds = {}
        self._supervise = None

    def knows_source(self, kind):
        """True when `type = kind` is accepted (the backend is built in)."""
        if kind not in self._kinds:
            probe = write(os.path.join(self.work, f"probe-{kind}.toml"), f'[sources.p]\ntype = "{kind}"\n', 0o600)
            out = run([self.path, "check", "-c", probe], env=base_env())
            self._kinds[kind] = f"unknown source type {json.dumps(kind)}" not in out.stderr.decode(errors="replace")
        return self._kinds[kind]

    def knows_supervise(self):
        if self._supervise is None:
            out = run([self.path, "--help"], env=base_env())
            text = out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")
            self._supervise = re.search(r"^\s+supervise\b", text, re.M) is not None
        return self._supervise


# Every command runs with this environment (plus the workload's credentials):
# a standard PATH, so `true` is found the way a service manager would find it.
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_env(extra=None):
    env = {"PATH": STD_PATH}
    env.update({k: os.environ[k] for k in ("HOME", "LANG", "TZ") if k in os.environ})
    env.update(extra or {})
    return env


# ---------------------------------------------------------------- workloads


TELLER_MISSING = "not installed here: see \"Peers not measured here\" (`BENCH_BUILD_TELLER=1` builds it)"


def teller_cmd(ctx, d, providers, verify=True):
    """teller 2.x `run`: a .teller.yml with the given providers, then `teller run -- true`."""
    if not ctx.teller:
        return Cmd("teller 2.0.7", "", "peer", missing=TELLER_MISSING)
    cfg = write(os.path.join(d, "teller.yml"), json.dumps({"providers": providers}, indent=1), 0o600)
    # teller runs its command through duct with a Path, which is not looked up on PATH.
    return Cmd("teller 2.0.7", f"{ctx.teller} -c {cfg} run -- /usr/bin/true", "peer", verify=verify)


def envfile_workload(ctx, n):
    d = ctx.dir(f"env{n}")
    vars_ = gen_vars("BENCH_VAR_", n)
    envf = write(os.path.join(d, "app.env"), dotenv(vars_))
    mapping = write(
        os.path.join(d, "secretexec.toml"),
        f'[sources.local]\ntype = "envfile"\npath = {toml_str(envf)}\n\n[[import]]\nref = "local:*"\n',
        0o644,
    )
    return Workload(
        f"envfile-{n}",
        f"env file, {n:,} variables",
        f"A 0600 dotenv file with {n:,} variables, imported whole (`[[import]] ref = \"local:*\"`).",
        [
            Cmd("secretexec", f"{ctx.bin} -c {mapping} -- true", "secretexec"),
            teller_cmd(ctx, d, {"dot": {"kind": "dotenv", "maps": [{"id": "app", "path": envf}]}}),
        ],
        expect=pick(vars_),
        mapping=mapping,
    )


def pick(vars_):
    """The first and last variable: enough to prove the whole set arrived."""
    keys = list(vars_)
    return {keys[0]: vars_[keys[0]], keys[-1]: vars_[keys[-1]]}


def sops_workload(ctx, n):
    d = ctx.dir(f"sops{n}")
    vars_ = gen_vars("BENCH_SOPS_", n)
    plain = write(os.path.join(d, "plain.env"), dotenv(vars_))
    enc = os.path.join(d, "secrets.enc.env")
    out = run(
        [ctx.sops, "encrypt", "--age", ctx.age_recipient, "--input-type", "dotenv", "--output-type", "dotenv", plain],
        env=base_env(),
    )
    if out.returncode != 0:
        raise SystemExit(f"sops encrypt failed: {out.stderr.decode(errors='replace')}")
    write(enc, out.stdout.decode())
    os.remove(plain)
    mapping = write(
        os.path.join(d, "secretexec.toml"),
        f'[sources.sealed]\ntype = "sops"\npath = {toml_str(enc)}\n\n[[import]]\nref = "sealed:*"\n',
        0o644,
    )
    env = {"SOPS_AGE_KEY_FILE": ctx.age_key}
    return Workload(
        f"sops-{n}",
        f"SOPS dotenv, {n} keys (age)",
        f"A SOPS-encrypted dotenv file with {n} keys, age recipient; every key imported "
        f"(`[[import]] ref = \"sealed:*\"`). Identity from `SOPS_AGE_KEY_FILE` for both tools.",
        [
            Cmd("secretexec", f"{ctx.bin} -c {mapping} -- true", "secretexec", needs=["sops"]),
            Cmd("sops exec-env", f"{ctx.sops} exec-env {enc} true", "peer"),
        ],
        expect=pick(vars_),
        env=env,
        notes=["`sops exec-env` runs its command through `/bin/sh -c`; that shell start is part of its cost."],
    )


def age_workload(ctx, n):
    d = ctx.dir(f"age{n}")
    vars_ = gen_vars("BENCH_AGE_", n)
    plain = write(os.path.join(d, "plain.env"), dotenv(vars_))
    enc = os.path.join(d, "secrets.env.age")
    out = run([ctx.age, "-r", ctx.age_recipient, "-o", enc, plain], env=base_env())
    if out.returncode != 0:
        raise SystemExit(f"age encrypt failed: {out.stderr.decode(errors='replace')}")
    os.chmod(enc, 0o600)
    os.remove(plain)
    lines = [f'[sources.agefile]\ntype = "age"\npath = {toml_str(enc)}\nidentity_file = {toml_str(ctx.age_key)}\n', "[env]"]
    lines += [f'{k} = "agefile:{k}"' for k in vars_]
    mapping = write(os.path.join(d, "secretexec.toml"), "\n".join(lines) + "\n", 0o644)
    pipeline = f'set -a; eval "$({ctx.age} -d -i {ctx.age_key} {enc})"; exec true'
    return Workload(
        f"age-{n}",
        f"age-encrypted dotenv, {n} keys",
        f"An age-encrypted dotenv file (X25519 recipient) with {n} keys, each mapped in `[env]`.",
        [
            Cmd("secretexec", f"{ctx.bin} -c {mapping} -- true", "secretexec", needs=["age"]),
            Cmd("age -d | sh (set -a; eval)", f"/bin/sh -c {shlex.quote(pipeline)}", "peer"),
        ],
        expect=pick(vars_),
        notes=[
            "The peer is the usual shell idiom: `/bin/sh -c 'set -a; eval \"$(age -d -i KEY FILE)\"; exec true'`"
            " (decrypt, export every line, exec). It needs a shell, so the shell start is part of its cost."
        ],
    )


def vault_put(ctx, path, data):
    req = urllib.request.Request(
        f"{ctx.bao_addr}/v1/secret/data/{path}",
        data=json.dumps({"data": data}).encode(),
        headers={"X-Vault-Token": ctx.bao_token, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def agent_config(ctx, d, templates, child="true"):
    """OpenBao Agent in process-supervisor mode: env_template blocks + exec CHILD."""
    blocks = []
    for name, (path, field) in templates.items():
        tpl = '{{ with secret "secret/data/%s" }}{{ .Data.data.%s }}{{ end }}' % (path, field)
        blocks.append(f"env_template {json.dumps(name)} {{\n  contents = {json.dumps(tpl)}\n  error_on_missing_key = true\n}}\n")
    hcl = (
        f'vault {{\n  address = "{ctx.bao_addr}"\n}}\n\n'
        f'auto_auth {{\n  method "token_file" {{\n    config = {{\n      token_file_path = "{ctx.token_file}"\n    }}\n  }}\n}}\n\n'
        'template_config {\n  exit_on_retry_failure = true\n}\n\n'
        + "\n".join(blocks)
        + f'\nexec {{\n  command = ["{child}"]\n  restart_on_secret_changes = "never"\n}}\n'
    )
    return write(os.path.join(d, f"agent-{child}.hcl"), hcl, 0o600)


def vault_workloads(ctx):
    if not ctx.bao_addr:
        return []
    out = []
    env = {
        "VAULT_ADDR": ctx.bao_addr,
        "VAULT_TOKEN": ctx.bao_token,
        "BAO_ADDR": ctx.bao_addr,
        "BAO_TOKEN": ctx.bao_token,
    }
    # 1 path x 100 fields
    d = ctx.dir("vault-wide")
    fields = {f"field{i:03d}": secrets.token_hex(16) for i in range(1, 101)}
    vault_put(ctx, "bench/wide", fields)
    names = {f"BENCH_WIDE_{i:03d}": ("bench/wide", f"field{i:03d}") for i in range(1, 101)}
    mapping = write(
        os.path.join(d, "secretexec.toml"),
        f'[sources.vault]\ntype = "vault"\naddress = {toml_str(ctx.bao_addr)}\n\n[env]\n'
        + "".join(f'{k} = "vault:secret/{p}#{f}"\n' for k, (p, f) in names.items()),
        0o644,
    )
    agent = agent_config(ctx, d, names)
    agent_env = f"{ctx.bao} agent -config={agent_config(ctx, d, names, 'env')}"
    expect = {"BENCH_WIDE_001": fields["field001"], "BENCH_WIDE_100": fields["field100"]}
    out.append(
        Workload(
            "vault-1x100",
            "Vault (OpenBao): 1 path × 100 fields",
            "One KV v2 secret with 100 fields on an OpenBao 2.7.2 dev server on loopback (http); "
            "100 variables mapped from it. Token from `VAULT_TOKEN` (agent: `token_file` auto-auth).",
            [
                Cmd("secretexec", f"{ctx.bin} -c {mapping} -- true", "secretexec", needs=["vault"]),
                Cmd("bao agent (env_template + exec)", f"{ctx.bao} agent -config={agent}", "peer", verify=agent_env, warmup=1),
                teller_cmd(
                    ctx,
                    d,
                    {
                        "vault": {
                            "kind": "hashicorp",
                            "maps": [{"id": "wide", "path": "secret/bench/wide", "keys": {f: k for k, (_, f) in names.items()}}],
                        }
                    },
                ),
                Cmd("bao kv get", f"{ctx.bao} kv get -format=json -mount=secret bench/wide", "peer", verify=False),
            ],
            expect=expect,
            env=env,
            server="openbao",
            server_floor=["bench/wide"],
            notes=[
                "`bao kv get` only fetches and prints the secret as JSON (no child is started): "
                "it is the cost of one CLI read, the floor of any script built on the CLI.",
            ],
        )
    )
    # 100 paths x 1 field
    d = ctx.dir("vault-deep")
    values = {}
    for i in range(1, 101):
        v = secrets.token_hex(16)
        vault_put(ctx, f"bench/deep/p{i:03d}", {"value": v})
        values[i] = v
    names = {f"BENCH_DEEP_{i:03d}": (f"bench/deep/p{i:03d}", "value") for i in range(1, 101)}
    mapping = write(
        os.path.join(d, "secretexec.toml"),
        f'[sources.vault]\ntype = "vault"\naddress = {toml_str(ctx.bao_addr)}\n\n[env]\n'
        + "".join(f'{k} = "vault:secret/{p}#{f}"\n' for k, (p, f) in names.items()),
        0o644,
    )
    agent = agent_config(ctx, d, names)
    agent_env = f"{ctx.bao} agent -config={agent_config(ctx, d, names, 'env')}"
    script = "set -e\n" + "".join(
        f"export {k}=\"$({ctx.bao} kv get -mount=secret -field={f} {p})\"\n" for k, (p, f) in names.items()
    ) + 'exec "${1:-true}"\n'
    script_path = write(os.path.join(d, "kvget.sh"), script, 0o700)
    expect = {"BENCH_DEEP_001": values[1], "BENCH_DEEP_100": values[100]}
    out.append(
        Workload(
            "vault-100x1",
            "Vault (OpenBao): 100 paths × 1 field",
            "100 KV v2 secrets with one field each on the same server; 100 variables, one per path.",
            [
                Cmd("secretexec", f"{ctx.bin} -c {mapping} -- true", "secretexec", needs=["vault"]),
                Cmd("bao agent (env_template + exec)", f"{ctx.bao} agent -config={agent}", "peer", verify=agent_env, warmup=1),
                teller_cmd(
                    ctx,
                    d,
                    {
                        "vault": {
                            "kind": "hashicorp",
                            "maps": [
                                {"id": p.rsplit("/", 1)[1], "path": f"secret/{p}", "keys": {f: k}} for k, (p, f) in names.items()
                            ],
                        }
                    },
                ),
                Cmd(
                    "bao kv get ×100 (sh script)",
                    f"/bin/sh {script_path}",
                    "peer",
                    verify=f"/bin/sh {script_path} env",
                    warmup=0,
                    runs=ctx.slow_runs,
                ),
            ],
            mapping=mapping,
            expect=expect,
            env=env,
            server="openbao",
            server_floor=[p for (p, _) in names.values()],
            notes=[
                "The `bao kv get` peer is a shell script with one `export NAME=\"$(bao kv get -field=value …)\"` "
                "per path, then `exec true`: what a script built on the CLI does.",
            ],
        )
    )
    return out


AZURE_SDK_PEER = """\
import os, sys
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
url = os.environ["BENCH_AZ_URL"]
with open(os.environ["BENCH_AZ_SECRET_FILE"]) as f:
    secret = f.read().strip()
cred = ClientSecretCredential(os.environ["BENCH_AZ_TENANT"], os.environ["BENCH_AZ_CLIENT"], secret,
                              authority=url, disable_instance_discovery=True)
client = SecretClient(url, cred, verify_challenge_resource=False)
env = dict(os.environ)
for name in sys.argv[2:]:
    env[name.upper().replace("-", "_")] = client.get_secret(name).value
os.execvpe(sys.argv[1], [sys.argv[1]], env)
"""


def azure_workloads(ctx):
    out = []
    info = None
    if not ctx.azure_unavailable:
        with open(ctx.azure_info) as f:
            info = json.loads(f.readline())
    d = ctx.dir("azure")
    if info:
        secret_file = write(os.path.join(d, "client-secret"), info["client_secret"] + "\n")
        peer = write(os.path.join(d, "azure_sdk_peer.py"), AZURE_SDK_PEER, 0o644)
    for n in (1, 100):
        title = f"Azure Key Vault (test server): {n} secret{'s' if n > 1 else ''}"
        if not info:
            out.append(Workload(f"azure-{n}", title, "", [], unavailable=ctx.azure_unavailable))
            continue
        names = sorted(info["secrets"])[:n]
        mapping = write(
            os.path.join(d, f"secretexec-{n}.toml"),
            "[sources.kv]\n"
            'type = "azure-keyvault"\n'
            f"vault_url = {toml_str(info['url'])}\n"
            'credential = "client-secret"\n'
            f"tenant_id = {toml_str(info['tenant_id'])}\n"
            f"client_id = {toml_str(info['client_id'])}\n"
            f"client_secret_file = {toml_str(secret_file)}\n"
            f"authority_host = {toml_str(info['url'])}\n"
            f"ca_cert = {toml_str(info['ca_cert'])}\n\n[env]\n"
            + "".join(f'{name.upper().replace("-", "_")} = "kv:{name}"\n' for name in names),
            0o644,
        )
        expect = {names[0].upper().replace("-", "_"): info["secrets"][names[0]]}
        expect[names[-1].upper().replace("-", "_")] = info["secrets"][names[-1]]
        env = {
            "BENCH_AZ_URL": info["url"],
            "BENCH_AZ_TENANT": info["tenant_id"],
            "BENCH_AZ_CLIENT": info["client_id"],
            "BENCH_AZ_SECRET_FILE": secret_file,
            "REQUESTS_CA_BUNDLE": info["ca_cert"],
        }
        py = sys.executable
        out.append(
            Workload(
                f"azure-{n}",
                title,
                f"The Azure Key Vault + Entra ID test server of the integration tests "
                f"(`examples/azure_kv_server.rs`, HTTPS on loopback with a test CA) holding 100 secrets; "
                f"{n} of them mapped one by one in `[env]`. Client-secret credential: the Entra ID token "
                f"request, the Key Vault 401 challenge, then the reads.",
                [
                    Cmd("secretexec", f"{ctx.bin} -c {mapping} -- true", "secretexec", needs=["azure-keyvault"]),
                    Cmd(
                        "Python SDK (azure-identity + azure-keyvault-secrets)",
                        f"{py} {peer} true " + " ".join(names),
                        "peer",
                        verify=f"{py} {peer} env " + " ".join(names),
                    ),
                ],
                expect=expect,
                env=env,
                server="azure",
                notes=[
                    "The peer is a 15-line Python launcher on Microsoft's SDK "
                    "(`ClientSecretCredential` + `SecretClient.get_secret` per name, then `os.execvpe`): "
                    "the usual way to do this without a dedicated tool. Reads are sequential, as the SDK "
                    "client makes them. The Azure CLI (`az keyvault secret show`, PyPI `azure-cli`) is not "
                    "measured: it would be one ~1 s process per secret.",
                ],
            )
        )
    return out


def supervise_workload(ctx):
    d = ctx.dir("supervise")
    vars_ = gen_vars("BENCH_SUP_", 10)
    envf = write(os.path.join(d, "app.env"), dotenv(vars_))
    mapping = write(
        os.path.join(d, "secretexec.toml"),
        f'[sources.local]\ntype = "envfile"\npath = {toml_str(envf)}\n\n[[import]]\nref = "local:*"\n',
        0o644,
    )
    return Workload(
        "supervise",
        "supervise vs exec mode, `true`, 10 variables",
        "The env-file mapping with 10 variables; `secretexec -- true` (execve) against "
        "`secretexec supervise -- true` (spawn, wait, pass the exit code through).",
        [
            Cmd("secretexec (exec)", f"{ctx.bin} -c {mapping} -- true", "secretexec"),
            Cmd("secretexec supervise", f"{ctx.bin} supervise -c {mapping} -- true", "secretexec", needs=["supervise"]),
        ],
        expect=pick(vars_),
    )


# ---------------------------------------------------------------- running


class Ctx:
    def __init__(self, a):
        self.work = a.work
        self.bin = a.bin
        self.sops = a.sops
        self.bao = a.bao
        self.age = shutil.which("age") or "age"
        self.teller = a.teller
        self.bao_addr = a.bao_addr
        self.bao_token = a.bao_token
        self.token_file = a.bao_token_file
        self.slow_runs = a.slow_runs
        self.azure_unavailable = a.azure_unavailable
        self.azure_info = a.azure_info
        self.server_pids = {}
        for kv in a.server_pid or []:
            name, _, pid = kv.partition("=")
            self.server_pids[name] = int(pid)
        self.binary = Binary(a.bin, a.work)
        key = os.path.join(a.work, "age.key")
        out = run([shutil.which("age-keygen") or "age-keygen", "-o", key], env=base_env())
        if out.returncode != 0:
            raise SystemExit(f"age-keygen failed: {out.stderr.decode(errors='replace')}")
        os.chmod(key, 0o600)
        self.age_key = key
        with open(key) as f:
            self.age_recipient = re.search(r"public key: (age1\w+)", f.read(), re.I).group(1)

    def dir(self, name):
        p = os.path.join(self.work, name)
        os.makedirs(p, mode=0o700, exist_ok=True)
        return p


def first_line(b):
    for line in b.decode(errors="replace").splitlines():
        if line.strip():
            return line.strip()[:200]
    return "(no output)"


def probe(ctx, w, c, env):
    """Runs the command once; sets c.status/c.reason. Returns True when usable."""
    if c.status == "missing":
        return False
    for need in c.needs:
        known = ctx.binary.knows_supervise() if need == "supervise" else ctx.binary.knows_source(need)
        if not known:
            c.status, c.reason = "pending", f"pending: `{BRANCH_OF[need]}` not merged"
            return False
    t0 = time.monotonic()
    out = run(split(c.command), env=env, timeout=300)
    c.estimate = time.monotonic() - t0
    if out.returncode != 0:
        c.status, c.reason = "failed", f"failed (exit {out.returncode}): {first_line(out.stderr or out.stdout)}"
        return False
    if c.verify and w.expect:
        if isinstance(c.verify, str):
            words = split(c.verify)
        else:
            words = split(c.command)
            if words[-1] in ("true", "/usr/bin/true"):
                words[-1] = words[-1].replace("true", "env")
            else:  # sh -c '... exec true'
                words[-1] = re.sub(r"\btrue$", "env", words[-1])
        out = run(words, env=env, timeout=300)
        got = out.stdout.decode(errors="replace").splitlines()
        missing = [k for k, v in w.expect.items() if f"{k}={v}" not in got]
        if out.returncode != 0 or missing:
            c.status, c.reason = "failed", f"failed: child did not receive {', '.join(missing) or 'its variables'}"
            return False
    return True


def measure_rss(c, env, n):
    """Median peak RSS (KiB) and minor page faults over n runs of /usr/bin/time."""
    rss, faults = [], []
    for _ in range(n):
        out = subprocess.run(
            ["/usr/bin/time", "-f", "%M %R"] + split(c.command),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=300,
        )
        last = out.stderr.decode(errors="replace").strip().splitlines()[-1].split()
        rss.append(int(last[0]))
        faults.append(int(last[1]))
    return {"rss_kib": rss, "rss_median_kib": statistics.median(rss), "minor_faults_median": statistics.median(faults)}


def plan_groups(cmds, a):
    """Splits a workload's commands into hyperfine groups.

    Fast commands (estimated < 0.5 s, the floor among them) share one group,
    so they see the same load; their run count is set by the slowest of them
    (about 4 s of work each, at least --min-runs, at most --max-runs). Slow
    peers get their own group with --min-runs runs; a command with an explicit
    run count (a 10 s+ script) gets its own.
    """
    fast, slow, fixed = [], [], []
    for c in cmds:
        (fixed if c.runs else slow if c.estimate >= 0.5 else fast).append(c)
    groups = []
    if fast:
        est = max(c.estimate for c in fast)
        runs = max(a.min_runs, min(a.max_runs, int(4.0 / max(est, 1e-4))))
        groups.append((a.warmup, runs, fast))
    if slow:
        groups.append((1, a.min_runs, slow))
    for c in fixed:
        groups.append((c.warmup if c.warmup is not None else 1, c.runs, [c]))
    return groups


def hyperfine(w, cmds, env, json_path, a):
    """Times each group in rounds of hyperfine invocations and merges the runs.

    Rounds interleave the commands of a group coarsely (round 1: A×n, B×n;
    round 2: A×n, B×n; …), so a burst of load from other processes on the
    shared machine hits every command of the group, not only one. Each round
    has its own warm-up.
    """
    merged = {}
    for warmup, runs, group in plan_groups(cmds, a):
        rounds = max(1, min(a.rounds, runs // 5))
        per_round = [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]
        log(f"{w.id}: hyperfine {' | '.join(c.name for c in group)}: {runs} runs in {rounds} round(s)")
        for n in per_round:
            path = f"{json_path}.tmp"
            argv = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(n)]
            argv += ["--export-json", path]
            for c in group:
                argv += ["-n", c.name, c.command]
            subprocess.run(argv, env=env, check=True, stdout=sys.stderr)
            with open(path) as f:
                for r in json.load(f)["results"]:
                    m = merged.setdefault(r["command"], {"times": [], "user": [], "system": []})
                    m["times"] += r["times"]
                    m["user"].append((r["user"], len(r["times"])))
                    m["system"].append((r["system"], len(r["times"])))
            os.remove(path)
    out = {}
    for name, m in merged.items():
        t = m["times"]
        wmean = lambda xs: sum(v * k for v, k in xs) / sum(k for _, k in xs)  # noqa: E731
        out[name] = {
            "times": t,
            "median": statistics.median(t),
            "mean": statistics.fmean(t),
            "stddev": statistics.stdev(t) if len(t) > 1 else 0.0,
            "min": min(t),
            "max": max(t),
            "user": wmean(m["user"]),
            "system": wmean(m["system"]),
        }
    return out


# Workloads behind a target: their secretexec command also gets a syscall profile.
PROFILED = {"envfile-10", "sops-100", "vault-1x100", "vault-100x1", "azure-100"}


def run_workload(ctx, w, a):
    log(f"== {w.id}: {w.title}")
    rec = {"id": w.id, "title": w.title, "what": w.what, "notes": w.notes, "commands": []}
    rec["files"] = {}
    for c in w.cmds:
        # The mapping / agent / teller config each command reads (never the secret files).
        for word in split(c.command) if c.command else []:
            word = word.split("=", 1)[-1]
            if word.startswith(ctx.work) and word.endswith((".toml", ".hcl", ".yml", ".sh")):
                with open(word) as f:
                    rec["files"][word] = f.read().splitlines()
    if w.unavailable:
        rec["unavailable"] = w.unavailable
        return rec
    if w.server_floor:
        rec["server_floor"] = openbao_server_floor(ctx, w.server_floor)
    env = base_env(w.env)
    usable = [c for c in w.cmds if probe(ctx, w, c, env)]
    for c in w.cmds:
        if c.status != "ok":
            log(f"{w.id}: {c.name}: {c.reason}")
    timings = hyperfine(w, usable, env, os.path.join(a.out, f"{w.id}.hyperfine.json"), a) if usable else {}
    for c in w.cmds:
        entry = {"name": c.name, "role": c.role, "command": c.command, "status": c.status, "reason": c.reason}
        if c.status == "ok":
            r = timings[c.name]
            entry["hyperfine"] = r
            slow = r["median"] > 1.0
            entry["memory"] = measure_rss(c, env, min(a.rss_runs, 3) if slow else a.rss_runs)
            pid = ctx.server_pids.get(w.server) if w.server else None
            if pid and not c.runs:
                entry["server_cpu_ms"] = server_cpu(c, env, pid, 3 if slow else 20)
            if c.role == "secretexec" and w.id in PROFILED:
                entry["strace"] = strace_summary(c, env, os.path.join(a.out, f"strace-{w.id}.txt"))
        if c.runs:
            entry["runs_override"] = c.runs
        rec["commands"].append(entry)
    return rec


def proc_cpu_ticks(pid):
    """utime + stime of a whole process (exited threads included), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def smaps_by_mapping(pid):
    """Resident KiB per mapping (file path, [heap], [stack], anonymous) from /proc/PID/smaps."""
    out, name = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = head[5] if len(head) > 5 else "[anonymous]"
            elif head and head[0] == "Rss:":
                out[name] = out.get(name, 0) + int(head[1])
    return out


class IdleSupervisor:
    """`secretexec supervise --watch 5s -- sleep …` left alone for a minute.

    Runs in the background while the other workloads are timed (it only
    wakes every 5 s); a thread samples its CPU time (utime + stime of the
    whole process, exited worker threads included, from /proc/PID/stat) 2 s
    and 62 s after the start, and its memory at the second sample.
    """

    WINDOW = 60.0

    def __init__(self, ctx, label, mapping, env):
        import threading

        self.label = label
        self.argv = [ctx.bin, "supervise", "--watch", "5s", "-c", mapping, "--", "sleep", "600"]
        self.proc = subprocess.Popen(
            self.argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.rec = {"label": label, "command": " ".join(self.argv)}
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        try:
            time.sleep(2.0)
            t0, c0 = time.monotonic(), proc_cpu_ticks(self.proc.pid)
            time.sleep(self.WINDOW)
            t1, c1 = time.monotonic(), proc_cpu_ticks(self.proc.pid)
            self.rec["smaps"] = smaps_by_mapping(self.proc.pid)
            st = {}
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("VmRSS", "VmHWM", "Threads"):
                        st[k] = int(v.split()[0])
        except (OSError, ValueError) as e:
            self.rec["error"] = f"could not sample: {e}"
            return
        hz = os.sysconf("SC_CLK_TCK")
        self.rec.update(
            {
                "window_s": round(t1 - t0, 1),
                "cpu_ms": (c1 - c0) * 1000.0 / hz,
                "tick_ms": 1000.0 / hz,
                "rss_kib": st.get("VmRSS"),
                "hwm_kib": st.get("VmHWM"),
                "threads": st.get("Threads"),
            }
        )

    def finish(self):
        if self.thread.is_alive():
            log(f"idle supervise ({self.label}): waiting for the end of its 60 s window")
        self.thread.join()
        if self.proc.poll() is not None and "cpu_ms" not in self.rec:
            self.rec["error"] = f"exited early with {self.proc.returncode}: {first_line(self.proc.stderr.read())}"
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.rec


def server_cpu(c, env, pid, runs):
    """CPU time (ms) the server process spends per run of the command."""
    c0 = proc_cpu_ticks(pid)
    for _ in range(runs):
        subprocess.run(split(c.command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return (proc_cpu_ticks(pid) - c0) * 1000.0 / os.sysconf("SC_CLK_TCK") / runs


def openbao_server_floor(ctx, paths, reps=10):
    """Server CPU per round of reads over ONE keep-alive connection, no client work.

    The least the OpenBao server spends to answer these reads: a bound no
    client can beat on this machine (server CPU / nproc is a floor for wall time).
    """
    import http.client
    import urllib.parse

    pid = ctx.server_pids.get("openbao")
    if not pid:
        return None
    u = urllib.parse.urlsplit(ctx.bao_addr)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {"X-Vault-Token": ctx.bao_token}

    def one_round():
        for p in paths:
            conn.request("GET", f"/v1/secret/data/{p}", headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"server floor probe: GET {p} answered {r.status}")

    one_round()  # warm-up
    reps = max(reps, 1000 // len(paths))  # enough reads for the 10 ms tick to resolve
    c0, t0 = proc_cpu_ticks(pid), time.monotonic()
    for _ in range(reps):
        one_round()
    c1, t1 = proc_cpu_ticks(pid), time.monotonic()
    conn.close()
    return {
        "reads": len(paths),
        "server_cpu_ms": (c1 - c0) * 1000.0 / os.sysconf("SC_CLK_TCK") / reps,
        "wall_ms": (t1 - t0) * 1000.0 / reps,
        "nproc": os.cpu_count(),
    }


def strace_summary(c, env, path):
    """`strace -f -c` of one run: the syscall table as text."""
    if not shutil.which("strace"):
        return None
    run(["strace", "-f", "-c", "-o", path] + split(c.command), env=env)
    with open(path) as f:
        return f.read()


def callgrind_costs(path):
    """Self cost (instructions) per object and per (object, function) of a callgrind file."""
    names, fns = {}, {}
    ob, fn, skip = "?", "?", False
    per_ob, per_fn = {}, {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"(c?ob|c?fn)=\((\d+)\)(?: (.*))?", line)
            if m:
                kind, ident, name = m.groups()
                table = names if kind.endswith("ob") else fns
                if name:
                    table[ident] = name
                if kind == "ob":
                    ob = names[ident]
                elif kind == "fn":
                    fn = fns[ident]
                continue
            if line.startswith("calls="):
                skip = True  # the next cost line is the inclusive cost of that call
                continue
            if line and (line[0].isdigit() or line[0] in "+-*"):
                if skip:
                    skip = False
                    continue
                n = int(line.split()[-1])
                per_ob[ob] = per_ob.get(ob, 0) + n
                per_fn[(ob, fn)] = per_fn.get((ob, fn), 0) + n
    return per_ob, per_fn


def profile_envfile(ctx, a, w):
    """Where secretexec's time goes on the env-file workload, next to the floor.

    callgrind: instructions executed in user space before the final execve
    (--dump-before=execve; part 1 of the dump), by object and by function.
    strace -f -c: system calls of the whole chain.
    """
    env = base_env(w.env)
    sx = next(c for c in w.cmds if c.role == "secretexec")
    prof = {"workload": w.id, "strace": {}, "callgrind": {}}
    for c in (w.cmds[0], sx):
        if shutil.which("strace"):
            path = os.path.join(a.out, f"strace-{w.id}-{c.role}.txt")
            run(["strace", "-f", "-c", "-o", path] + split(c.command), env=env)
            with open(path) as f:
                prof["strace"][c.role] = f.read()
        if shutil.which("valgrind"):
            base = os.path.join(a.out, f"callgrind-{c.role}")
            run(
                ["valgrind", "--tool=callgrind", "--dump-before=execve", f"--callgrind-out-file={base}"]
                + split(c.command),
                env=env,
            )
            if os.path.exists(base + ".1"):
                per_ob, per_fn = callgrind_costs(base + ".1")
                top = sorted(per_fn.items(), key=lambda kv: -kv[1])[:12]
                prof["callgrind"][c.role] = {
                    "objects": per_ob,
                    "functions": [[ob, fn, n] for (ob, fn), n in top],
                }
    return prof


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--sops", required=True)
    p.add_argument("--bao", required=True)
    p.add_argument("--bao-addr")
    p.add_argument("--bao-token")
    p.add_argument("--bao-token-file")
    p.add_argument("--azure-unavailable")
    p.add_argument("--server-pid", action="append", help="NAME=PID of a server (openbao, azure)")
    p.add_argument("--azure-info", help="the first line the Azure test server printed (JSON)")
    p.add_argument("--teller", help="a teller 2.0.7 binary, when one is installed")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-runs", type=int, default=10)
    p.add_argument("--max-runs", type=int, default=200)
    p.add_argument("--slow-runs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rss-runs", type=int, default=5)
    p.add_argument("--only", help="comma-separated workload ids")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ctx = Ctx(a)

    workloads = [envfile_workload(ctx, 10), envfile_workload(ctx, 1000)]
    workloads += [sops_workload(ctx, 10), sops_workload(ctx, 100)]
    workloads += [age_workload(ctx, 100)]
    workloads += vault_workloads(ctx)
    workloads += azure_workloads(ctx)
    workloads += [supervise_workload(ctx)]
    if a.only:
        keep = set(a.only.split(","))
        workloads = [w for w in workloads if w.id in keep]

    idle = []
    if ctx.binary.knows_supervise() and (not a.only or "idle" in a.only.split(",")):
        env10 = next(w for w in workloads if w.id == "envfile-10")
        idle.append(IdleSupervisor(ctx, "env file, 10 variables", env10.mapping, base_env(env10.env)))
        deep = next((w for w in workloads if w.id == "vault-100x1"), None)
        if deep and ctx.binary.knows_source("vault"):
            idle.append(IdleSupervisor(ctx, "Vault, 100 paths", deep.mapping, base_env(deep.env)))

    for w in workloads:
        t0 = time.monotonic()
        rec = run_workload(ctx, w, a)
        rec["seconds"] = round(time.monotonic() - t0, 1)
        with open(os.path.join(a.out, f"{w.id}.json"), "w") as f:
            json.dump(rec, f, indent=1)
    env10 = next((w for w in workloads if w.id == "envfile-10"), None)
    if env10:
        with open(os.path.join(a.out, "profile-envfile-10.json"), "w") as f:
            json.dump(profile_envfile(ctx, a, env10), f, indent=1)
    with open(os.path.join(a.out, "idle.json"), "w") as f:
        json.dump([i.finish() for i in idle], f, indent=1)
    with open(os.path.join(a.out, "order.json"), "w") as f:
        json.dump([w.id for w in workloads], f)


if __name__ == "__main__":
    main()
