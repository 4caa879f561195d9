"""Offline checks of the deployment files (run by scripts/validate-infra, in its virtualenv).

Every check reads files only; nothing is fetched. Prints one line per failure and exits 1 if
there was any. What each part checks:

- every YAML, JSON and TOML file under infra/ and docker-compose.yml parses;
- docker-compose.yml against the Compose Specification's JSON schema (Compose v2 semantics;
  scripts/lib/schemas/compose-spec.json, vendored from github.com/compose-spec/compose-spec),
  plus the rules of this deployment: every Switchboard service has its command, health check,
  limits and restart policy, no default service depends on a profiled one, bind mounts exist;
- the Dockerfile parses (BuildKit's own parser) and has its stages, a non-root user, the
  entrypoint, command and health check;
- the ECS task and service definitions against the ECS API's request shapes (botocore's
  service model: RegisterTaskDefinition, CreateService), plus health checks, logs and
  Secrets Manager references;
- the Railway and Fly files name every service, their commands and health checks;
- every kustomization lists files that exist (resources, configMapGenerator files), and every
  manifest beside it is listed (the Kubernetes schemas themselves are checked by
  kubernetes-validate, from the shell script);
- each service receives exactly the secrets it reads (SECRETS_READ) in compose, Kubernetes and
  ECS, and the api its PUBLIC_URL.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"gateway": 8080, "api": 8081, "agent-worker": 8082, "ledger": 8083, "mock-llm": 8090}
failures: list[str] = []


def fail(where: Path | str, message: str) -> None:
    where = where.relative_to(ROOT) if isinstance(where, Path) else where
    failures.append(f"{where}: {message}")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- well-formed ------------------------------------------------------------------------------


def load_all() -> dict[Path, list]:
    """Parses every config file; returns the YAML and JSON documents by path."""
    docs: dict[Path, list] = {}
    files = sorted(p for p in (ROOT / "infra").rglob("*") if p.is_file())
    files.append(ROOT / "docker-compose.yml")
    for path in files:
        try:
            if path.suffix in (".yml", ".yaml"):
                docs[path] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            elif path.suffix == ".json":
                docs[path] = [json.loads(path.read_text())]
            elif path.suffix == ".toml":
                tomllib.loads(path.read_text())
        except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
            fail(path, f"does not parse: {e}")
    return docs


# --- docker-compose.yml -----------------------------------------------------------------------


def check_compose() -> None:
    import jsonschema

    path = ROOT / "docker-compose.yml"
    doc = yaml.safe_load(path.read_text())
    schema = json.loads((ROOT / "scripts/lib/schemas/compose-spec.json").read_text())
    for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        fail(path, f"Compose Specification: {where}: {error.message}")

    services = doc.get("services", {})
    for name in (*SERVICES, "postgres", "redis", "migrate", "seed", "pgbouncer",
                 "otel-collector", "jaeger", "prometheus", "grafana", "backup"):
        if name not in services:
            fail(path, f"no service {name}")
    for name, port in SERVICES.items():
        svc = services.get(name, {})
        if svc.get("command") != ["serve", name]:
            fail(path, f"{name}: command must be [serve, {name}]")
        if str(svc.get("environment", {}).get("PORT")) != str(port):
            fail(path, f"{name}: PORT must be {port} (the health check probes it)")
        if "/health" not in json.dumps(svc.get("healthcheck", {})):
            fail(path, f"{name}: no health check on /health")
        if svc.get("restart") != "unless-stopped":
            fail(path, f"{name}: restart must be unless-stopped")
        if not svc.get("deploy", {}).get("resources", {}).get("limits"):
            fail(path, f"{name}: no deploy.resources.limits")
        if svc.get("env_file") != ".env":
            fail(path, f"{name}: env_file must be .env")
    for name in ("redis",):
        if "--appendonly" not in services.get(name, {}).get("command", []):
            fail(path, "redis: AOF (--appendonly yes) is off")
    for one_shot in ("migrate", "seed"):
        if services.get(one_shot, {}).get("restart") != "no":
            fail(path, f"{one_shot}: a one-shot must have restart: \"no\"")

    # Compose v2 refuses to start a default service that depends on one whose profile is off.
    for name, svc in services.items():
        if svc.get("profiles"):
            continue
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, (list, dict)) else []:
            if services.get(dep, {}).get("profiles"):
                fail(path, f"{name} depends on {dep}, which is only in a profile")

    # Bind mounts must exist. infra/monitoring/ is written by the monitoring work; until it is
    # merged, its absence is reported but not fatal.
    monitoring_present = (ROOT / "infra/monitoring").exists()
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if not source.startswith("."):
                continue
            if not (ROOT / source).exists():
                if source.startswith("./infra/monitoring") and not monitoring_present:
                    print(f"note: {name} mounts {source}, not here yet (infra/monitoring/ is absent)")
                else:
                    fail(path, f"{name} mounts {source}, which does not exist")


# --- Dockerfile -------------------------------------------------------------------------------


def check_dockerfile() -> None:
    import dockerfile

    path = ROOT / "Dockerfile"
    try:
        commands = dockerfile.parse_file(str(path))
    except dockerfile.GoParseError as e:
        fail(path, f"does not parse: {e}")
        return
    stages = [c.value[2].lower() for c in commands if c.cmd == "FROM" and len(c.value) == 3]
    if stages != ["web", "build", "runtime"]:
        fail(path, f"stages must be web, build, runtime; found {stages}")
    final = commands[max(i for i, c in enumerate(commands) if c.cmd == "FROM"):]
    by_cmd: dict[str, list] = {}
    for c in final:
        by_cmd.setdefault(c.cmd, []).append(c)
    users = by_cmd.get("USER", [])
    if not users or users[-1].value[0].split(":")[0] in ("root", "0"):
        fail(path, "the runtime stage must end as a non-root USER")
    if [c.value for c in by_cmd.get("ENTRYPOINT", [])] != [("switchboard",)] or not by_cmd[
        "ENTRYPOINT"
    ][0].json:
        fail(path, 'ENTRYPOINT must be ["switchboard"]')
    if [c.value for c in by_cmd.get("CMD", [])] != [("serve", "all")]:
        fail(path, 'CMD must be ["serve", "all"]')
    if not any("/health" in c.original for c in by_cmd.get("HEALTHCHECK", [])):
        fail(path, "no HEALTHCHECK on /health")
    text = path.read_text()
    if "cargo build --release --locked -p switchboard" not in text:
        fail(path, "the build stage must run cargo build --release --locked -p switchboard")
    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("target", ".git", ".env"):
        if needed not in ignore:
            fail(ROOT / ".dockerignore", f"must exclude {needed}")


# --- ECS --------------------------------------------------------------------------------------


def check_ecs() -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("ecs")
    register = model.operation_model("RegisterTaskDefinition").input_shape
    create = model.operation_model("CreateService").input_shape
    validator = ParamValidator()
    base = ROOT / "infra/ecs"

    families = set()
    for name in (*SERVICES, "migrate"):
        path = base / "task-definitions" / f"{name}.json"
        if not path.exists():
            fail(path, "missing")
            continue
        td = json.loads(path.read_text())
        report = validator.validate(td, register)
        if report.has_errors():
            fail(path, "not a valid RegisterTaskDefinition request: " + report.generate_report())
            continue
        families.add(td["family"])
        if "FARGATE" not in td.get("requiresCompatibilities", []):
            fail(path, "must require FARGATE")
        for c in td["containerDefinitions"]:
            if c.get("logConfiguration", {}).get("logDriver") != "awslogs":
                fail(path, f"{c['name']}: no awslogs log configuration")
            if c.get("user", "").split(":")[0] in ("", "root", "0"):
                fail(path, f"{c['name']}: must run as the image's non-root user")
            for s in c.get("secrets", []):
                if not s["valueFrom"].startswith("arn:aws:secretsmanager:"):
                    fail(path, f"{c['name']}: secret {s['name']} is not a Secrets Manager ARN")
            env = {e["name"] for e in c.get("environment", [])}
            leaked = env & {"DATABASE_URL", "DATABASE_SYSTEM_URL", "DATABASE_OWNER_URL",
                            "REDIS_URL", "JWT_SECRET", "ENCRYPTION_MASTER_KEY"}
            if leaked:
                fail(path, f"{c['name']}: {sorted(leaked)} must come from secrets, not environment")
            if name == "migrate":
                if c.get("command") != ["migrate"]:
                    fail(path, "command must be [migrate]")
            else:
                if c.get("command") != ["serve", name]:
                    fail(path, f"command must be [serve, {name}]")
                if "/health" not in json.dumps(c.get("healthCheck", {})):
                    fail(path, f"{c['name']}: no health check on /health")
                if "DATABASE_OWNER_URL" in {s["name"] for s in c.get("secrets", [])}:
                    fail(path, "only migrate may receive DATABASE_OWNER_URL")

    for name in SERVICES:
        path = base / "services" / f"{name}.json"
        if not path.exists():
            fail(path, "missing")
            continue
        sd = json.loads(path.read_text())
        report = validator.validate(sd, create)
        if report.has_errors():
            fail(path, "not a valid CreateService request: " + report.generate_report())
        elif sd["taskDefinition"] not in families:
            fail(path, f"task definition {sd['taskDefinition']} is not defined here")


# --- Railway and Fly --------------------------------------------------------------------------


def check_railway() -> None:
    for name in SERVICES:
        path = ROOT / "infra/railway" / name / "railway.json"
        if not path.exists():
            fail(path, "missing")
            continue
        doc = json.loads(path.read_text())
        build, deploy = doc.get("build", {}), doc.get("deploy", {})
        if build.get("builder") != "DOCKERFILE" or not (ROOT / build.get("dockerfilePath", "-")).exists():
            fail(path, "must build with the repository's Dockerfile")
        if deploy.get("startCommand") != f"switchboard serve {name}":
            fail(path, f"startCommand must be 'switchboard serve {name}'")
        if deploy.get("healthcheckPath") != "/health":
            fail(path, "healthcheckPath must be /health")


def check_fly() -> None:
    path = ROOT / "infra/fly/fly.toml"
    doc = tomllib.loads(path.read_text())
    commands = sorted(doc.get("processes", {}).values())
    if commands != sorted(f"serve {s}" for s in SERVICES):
        fail(path, f"processes must serve each of the five services; found {commands}")
    if doc.get("deploy", {}).get("release_command") != "migrate":
        fail(path, "release_command must be migrate")
    checked = set()
    for check in doc.get("http_service", {}).get("checks", []):
        if check.get("path") == "/health":
            checked.update(doc["http_service"].get("processes", []))
    for service in doc.get("services", []):
        if any(c.get("path") == "/health" for c in service.get("http_checks", [])):
            checked.update(service.get("processes", []))
    for check in doc.get("checks", {}).values():
        if check.get("path") == "/health":
            checked.update(check.get("processes", []))
    missing = set(doc.get("processes", {})) - checked
    if missing:
        fail(path, f"no /health check for process groups {sorted(missing)}")
    dockerfile = path.parent / doc.get("build", {}).get("dockerfile", "-")
    if not dockerfile.exists():
        fail(path, "build.dockerfile does not point at the Dockerfile")


# --- Kubernetes kustomizations ----------------------------------------------------------------


def check_kustomizations() -> None:
    for path in sorted((ROOT / "infra/k8s").rglob("kustomization.yaml")):
        doc = yaml.safe_load(path.read_text())
        listed = set(doc.get("resources", []))
        for resource in listed:
            if not (path.parent / resource).exists():
                fail(path, f"lists {resource}, which does not exist")
        for generator in doc.get("configMapGenerator", []):
            for entry in generator.get("files", []):
                source = entry.split("=", 1)[-1]
                if not (path.parent / source).is_file():
                    fail(path, f"configMapGenerator {generator.get('name')} reads {source}, which does not exist")
        for manifest in path.parent.glob("*.yaml"):
            if manifest.name in ("kustomization.yaml", "secret.yaml") or ".template." in manifest.name:
                continue
            if manifest.name not in listed:
                fail(path, f"does not list {manifest.name}")


# --- which secrets each service receives -----------------------------------------------------

STORES = {"DATABASE_URL", "DATABASE_SYSTEM_URL", "REDIS_URL"}
# What each process reads, from the code: the platform secrets as `Service::secret_needs`
# (services/switchboard/src/cli.rs) says (sb-config does not ask a process for the others);
# mock-llm keeps no state; only migrate has the owner's URL.
SECRETS_READ = {
    "gateway": STORES | {"ENCRYPTION_MASTER_KEY"},
    "api": STORES | {"JWT_SECRET", "ENCRYPTION_MASTER_KEY"},
    "agent-worker": STORES,
    "ledger": STORES,
    "mock-llm": set(),
    "migrate": {"DATABASE_URL", "DATABASE_SYSTEM_URL", "DATABASE_OWNER_URL"},
}
SECRET_NAMES = STORES | {"JWT_SECRET", "ENCRYPTION_MASTER_KEY", "ENCRYPTION_PREVIOUS_KEYS",
                         "DATABASE_OWNER_URL"}


def compare_secrets(path: Path, who: str, given: set[str]) -> None:
    wanted = SECRETS_READ[who]
    if given - wanted:
        fail(path, f"{who} receives {sorted(given - wanted)}, which it does not read")
    if wanted - given:
        fail(path, f"{who} does not receive {sorted(wanted - given)}, which it needs")


def check_secrets() -> None:
    """Each service gets only the secrets it reads, so a compromised ledger or agent-worker
    holds no key that signs sessions or opens tenants' provider credentials."""
    # Compose: env_file passes all of .env (the secrets included) into every container; a
    # service is without one only when its environment blanks it.
    path = ROOT / "docker-compose.yml"
    services = yaml.safe_load(path.read_text()).get("services", {})
    for who in (*SERVICES, "migrate"):
        env = services.get(who, {}).get("environment", {})
        from_env_file = {"JWT_SECRET", "ENCRYPTION_MASTER_KEY", "ENCRYPTION_PREVIOUS_KEYS"}
        given = {s for s in from_env_file if env.get(s) != ""}
        given |= {s for s in STORES | {"DATABASE_OWNER_URL"} if env.get(s) not in (None, "")}
        if "ENCRYPTION_PREVIOUS_KEYS" in given and "ENCRYPTION_MASTER_KEY" in SECRETS_READ[who]:
            given.discard("ENCRYPTION_PREVIOUS_KEYS")
        compare_secrets(path, who, given)
    if services.get("api", {}).get("environment", {}).get("PUBLIC_URL") is None:
        fail(path, "api: PUBLIC_URL is not set (links in account e-mail start with it)")

    # Kubernetes: the secretKeyRefs of each workload's containers.
    manifests = {who: ROOT / "infra/k8s" / f"{who}.yaml" for who in SERVICES}
    manifests["migrate"] = ROOT / "infra/k8s/migrate/job.yaml"
    for who, path in manifests.items():
        given: set[str] = set()
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("Deployment", "Job", "StatefulSet"):
                continue
            spec = doc["spec"]["template"]["spec"]
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                for e in c.get("env", []):
                    if "secretKeyRef" in e.get("valueFrom", {}):
                        given.add(e["name"])
                if any("secretRef" in f for f in c.get("envFrom", [])):
                    fail(path, f"{who}: envFrom a Secret gives it every secret; name each one")
        compare_secrets(path, who, given)
    configmap = yaml.safe_load((ROOT / "infra/k8s/configmap.yaml").read_text())
    if not configmap.get("data", {}).get("PUBLIC_URL"):
        fail(ROOT / "infra/k8s/configmap.yaml", "PUBLIC_URL is not set")

    # ECS: each task definition's secrets.
    for who in SECRETS_READ:
        path = ROOT / "infra/ecs/task-definitions" / f"{who}.json"
        td = json.loads(path.read_text())
        for c in td["containerDefinitions"]:
            compare_secrets(path, who, {s["name"] for s in c.get("secrets", [])})
            if who == "api" and "PUBLIC_URL" not in {e["name"] for e in c.get("environment", [])}:
                fail(path, "api: PUBLIC_URL is not set")

    # Fly: one app, whose secrets reach every process group; PUBLIC_URL in [env].
    fly = tomllib.loads((ROOT / "infra/fly/fly.toml").read_text())
    if not fly.get("env", {}).get("PUBLIC_URL"):
        fail(ROOT / "infra/fly/fly.toml", "[env] has no PUBLIC_URL")


# --- egress of the services that call out on tenants' behalf ----------------------------------


def egress_allows(policy: dict, ip: str, port: int) -> bool:
    """Whether `policy` lets its pods reach ip:port. Pod and namespace selectors are taken to
    match any address in the cluster (private ones), so the answer errs towards allowed."""
    import ipaddress

    address = ipaddress.ip_address(ip)
    for rule in policy["spec"].get("egress", []):
        ports = rule.get("ports")
        if ports is not None and not any(p.get("port") == port for p in ports):
            continue
        for peer in rule.get("to", [{}]):
            block = peer.get("ipBlock")
            if block is None:
                if address.is_private:
                    return True
                continue
            network = ipaddress.ip_network(block["cidr"])
            if address.version != network.version or address not in network:
                continue
            if not any(address in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


def check_egress() -> None:
    """The attacks the egress policies stop (SSRF through a provider entry): the gateway may
    reach public HTTPS, never the metadata endpoint or the platform's own services; the
    agent-worker reaches nothing on the internet."""
    path = ROOT / "infra/k8s/networkpolicies.yaml"
    policies = {d["metadata"]["name"]: d for d in yaml.safe_load_all(path.read_text()) if d}
    expectations = {
        "gateway-egress": [
            ("1.1.1.1", 443, True),
            ("2606:4700::1111", 443, True),
            ("169.254.169.254", 80, False),
            ("fd00:ec2::254", 80, False),
            ("10.0.0.7", 8083, False),
            ("10.0.0.7", 443, False),
            ("172.20.0.3", 8081, False),
            ("127.0.0.1", 8080, False),
            ("10.0.0.9", 5432, True),
        ],
        "agent-worker-egress": [
            ("1.1.1.1", 443, False),
            ("169.254.169.254", 80, False),
            ("10.0.0.7", 8083, False),
            ("10.0.0.9", 6379, True),
        ],
    }
    for name, cases in expectations.items():
        policy = policies.get(name)
        if policy is None:
            fail(path, f"has no NetworkPolicy {name}")
            continue
        for ip, port, allowed in cases:
            if egress_allows(policy, ip, port) != allowed:
                verb = "must reach" if allowed else "must not reach"
                fail(path, f"{name}: its pods {verb} {ip}:{port}")


def main() -> int:
    load_all()
    for check in (check_compose, check_dockerfile, check_ecs, check_railway, check_fly,
                  check_kustomizations, check_egress, check_secrets):
        try:
            check()
        except Exception as e:  # a check that crashes is a failure, with its reason
            fail(check.__name__, f"{type(e).__name__}: {e}")
    for line in failures:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
