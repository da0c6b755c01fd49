#!/usr/bin/env python3
"""Tests of helm/cwmp-stream, run by scripts/test in a virtualenv.

- Helm's own SDK (helm-python-sdk) lints the chart strictly with every
  ci/*-values.yaml and renders each of them.
- kubernetes-validate checks every rendered manifest strictly, offline.
- ServiceMonitor and PrometheusRule are checked against the Prometheus Operator CRD
  schemas (deploy/crd-validate, node).
- The rendered configuration is accepted by `cwmp-stream check-config`.
- Each values scenario produces what it must.

Usage: chart-test.py CWMP_STREAM_BINARY
"""

import json
import re
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "cwmp-stream"
KUBE_VERSION = "1.30.0"
BINARY = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "debug" / "cwmp-stream")

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def scenarios():
    return sorted((CHART / "ci").glob("*-values.yaml"))


def render(values):
    chart = helm.Chart.load(str(CHART))
    try:
        files = chart.render(values, name="demo", namespace="cwmp", is_install=True)
    finally:
        chart.close()
    objects = []
    for path, text in sorted(files.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append((path, doc))
    return objects


def lint(values, name):
    report = helm.lint(str(CHART), values, strict=True, namespace="cwmp", kube_version="v" + KUBE_VERSION)
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
    check(not problems, f"{name}: helm lint --strict: {problems}")


def validate_k8s(objects, name):
    for path, obj in objects:
        if obj.get("apiVersion", "").startswith(("monitoring.coreos.com/", "kafka.strimzi.io/")):
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            check(False, f"{name}: {path} {obj.get('kind')}: {e.message}")


def validate_crds(objects, name):
    crs = [o for _, o in objects if o.get("apiVersion", "").startswith("monitoring.coreos.com/")]
    if not crs:
        return 0
    result = subprocess.run(
        ["node", str(ROOT / "deploy" / "crd-validate" / "validate.mjs")],
        input=json.dumps(crs), capture_output=True, text=True, cwd=ROOT / "deploy" / "crd-validate",
    )
    check(result.returncode == 0, f"{name}: CRD validation: {result.stdout}{result.stderr}")
    return len(crs)


def check_config(objects, name):
    maps = [o for _, o in objects if o["kind"] == "ConfigMap" and "cwmp-stream.toml" in o.get("data", {})]
    check(len(maps) == 1, f"{name}: one configuration ConfigMap")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(maps[0]["data"]["cwmp-stream.toml"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWMP__")}
    # The environment a pod gets: plain values as rendered, Secret references as a
    # placeholder (the chart-test has no Secret values), so that the check sees what
    # the service will see (librdkafka refuses SASL without credentials, say).
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for e in container.get("env", []):
                if e["name"].startswith("CWMP__"):
                    env[e["name"]] = e.get("value", "from-a-secret")
    result = subprocess.run([BINARY, "check-config", f.name], capture_output=True, text=True, env=env)
    os.unlink(f.name)
    check(result.returncode == 0, f"{name}: check-config refused the rendered config: {result.stderr}")
    return result.stdout


def by_kind(objects, kind):
    return [o for _, o in objects if o["kind"] == kind]


def workloads(objects):
    return by_kind(objects, "Deployment") + by_kind(objects, "StatefulSet")


def common_assertions(objects, name, values):
    for d in workloads(objects):
        meta = d["metadata"]["name"]
        selector = d["spec"]["selector"]["matchLabels"]
        check("helm.sh/chart" not in selector, f"{name}: {meta}: no helm.sh/chart in the selector")
        check("app.kubernetes.io/component" in selector, f"{name}: {meta}: component in the selector")
        pod = d["spec"]["template"]["spec"]
        check(pod["securityContext"].get("runAsNonRoot") is True, f"{name}: {meta}: runAsNonRoot")
        check(pod["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: {meta}: seccomp")
        c = pod["containers"][0]
        sc = c["securityContext"]
        check(sc.get("readOnlyRootFilesystem") is True, f"{name}: {meta}: read-only root")
        check(sc.get("allowPrivilegeEscalation") is False, f"{name}: {meta}: no privilege escalation")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: {meta}: drop ALL")
        check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}: {meta}: liveness on /healthz")
        check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: {meta}: readiness on /readyz")
        drain_ms = max(values.get("config", {}).get("ingest", {}).get("drainTimeoutMs", 20000),
                       values.get("config", {}).get("detect", {}).get("drainTimeoutMs", 20000))
        check(pod["terminationGracePeriodSeconds"] * 1000 > drain_ms, f"{name}: {meta}: grace period above the drain bound")
        check("resources" not in c or name != "default", f"{name}: {meta}: resources unset by default")
    for kind in ("Service", "Deployment", "StatefulSet"):
        for o in by_kind(objects, kind):
            labels = o["metadata"]["labels"]
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                        "app.kubernetes.io/managed-by", "helm.sh/chart"):
                check(key in labels, f"{name}: {kind} {o['metadata']['name']}: label {key}")


def scenario_assertions(objects, name, config_text):
    kinds = sorted({o["kind"] for _, o in objects})
    deployments = {o["metadata"]["name"]: o for o in workloads(objects)}
    if name == "default":
        check(len(deployments) == 3, f"default: three workloads, got {sorted(deployments)}")
        kinds_of = {n: d["kind"] for n, d in deployments.items()}
        check(kinds_of == {"demo-cwmp-stream-ingest": "Deployment",
                           "demo-cwmp-stream-detect-worker": "StatefulSet",
                           "demo-cwmp-stream-detect-fleet": "StatefulSet"},
              f"default: ingest a Deployment, the detect stages StatefulSets (static membership), got {kinds_of}")
        for optional in ("ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler", "NetworkPolicy", "Secret"):
            check(optional not in kinds, f"default: no {optional} by default")
        check(not [o for o in by_kind(objects, "ConfigMap") if o["metadata"].get("labels", {}).get("grafana_dashboard")],
              "default: no dashboards ConfigMap")
        # Disruption budgets by default, only where more than one replica runs, and never
        # holding a drain on an unready consumer.
        pdbs = {o["metadata"]["name"]: o["spec"] for o in by_kind(objects, "PodDisruptionBudget")}
        check(sorted(pdbs) == ["demo-cwmp-stream-detect-worker", "demo-cwmp-stream-ingest"],
              f"default: PDBs for the workloads with two replicas only, got {sorted(pdbs)}")
        check(all(p.get("unhealthyPodEvictionPolicy") == "AlwaysAllow" for p in pdbs.values()),
              "default: PDBs let an unready pod be evicted")
        images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments.values()}
        check(images == {"cwmp-stream:0.1.0"}, f"default: image from repository and appVersion, got {images}")
        # Release-scoped consumer groups: two releases never share one.
        for line in ('group_id = "demo-cwmp-stream-ingest"', 'group_id = "demo-cwmp-stream-detect"',
                     'fleet_group_id = "demo-cwmp-stream-detect-fleet"'):
            check(line in config_text, f"default: release-scoped group: {line}")
        reachable(config_text)
        args = {n: d["spec"]["template"]["spec"]["containers"][0]["args"] for n, d in deployments.items()}
        check(args.get("demo-cwmp-stream-detect-worker", [])[-2:] == ["--stage", "worker"], f"default: worker stage {args}")
        for n, d in deployments.items():
            env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])}
            if d["kind"] == "Deployment":
                check("CWMP__KAFKA__GROUP_INSTANCE_ID" not in env, f"default: {n}: a Deployment's pod names are not stable, so no static membership")
            else:
                check(env.get("CWMP__KAFKA__GROUP_INSTANCE_ID") == "$(POD_NAME)",
                      f"default: {n}: a StatefulSet's pods are static group members")
                check(d["spec"].get("serviceName") == n, f"default: {n}: serviceName names its Service")
        # Without static membership the detect stages are Deployments and dynamic members.
        dynamic = {"detectWorker": {"staticMembership": False}, "detectFleet": {"staticMembership": False}}
        for o in workloads(render(dynamic)):
            env = {e["name"] for e in o["spec"]["template"]["spec"]["containers"][0].get("env", [])}
            check(o["kind"] == "Deployment" and "CWMP__KAFKA__GROUP_INSTANCE_ID" not in env,
                  f"staticMembership false: {o['metadata']['name']} is a Deployment without group.instance.id")
        check(args.get("demo-cwmp-stream-detect-fleet", [])[-2:] == ["--stage", "fleet"], f"default: fleet stage {args}")
    if name == "full":
        for kind in ("ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "NetworkPolicy", "Secret"):
            check(kind in kinds, f"full: {kind} rendered")
        check(len(by_kind(objects, "HorizontalPodAutoscaler")) == 2, "full: HPAs for ingest and detect-worker")
        for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
            check(hpa["spec"]["maxReplicas"] <= 12, f"full: {hpa['metadata']['name']} max replicas within partitions")
            down = hpa["spec"].get("behavior", {}).get("scaleDown", {})
            check(down.get("stabilizationWindowSeconds", 0) >= 300 and down.get("policies", [{}])[0].get("value") == 1,
                  f"full: {hpa['metadata']['name']}: scale-down one pod at a time after a calm, got {down}")
        images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments.values()}
        check(images == {"registry.example.net/noc/cwmp-stream@sha256:" + "0123456789abcdef" * 4},
              f"full: global.imageRegistry and image.digest make the reference, got {images}")
        network_policies(objects)
        topics = {t["spec"]["topicName"]: t for t in by_kind(objects, "KafkaTopic")}
        check(sorted(topics) == sorted(["cwmp.informs.raw", "cwmp.events", "cwmp.informs.dlq", "cwmp.aggregates", "cwmp.alerts",
                                        "cwmp.detect-state", "cwmp.detect-fleet-state"]),
              f"full: a KafkaTopic per topic, got {sorted(topics)}")
        for n, source in (("cwmp.detect-state", "cwmp.events"), ("cwmp.detect-fleet-state", "cwmp.aggregates")):
            state, of = topics.get(n, {}).get("spec", {}), topics.get(source, {}).get("spec", {})
            check(state.get("config", {}).get("cleanup.policy") == "compact" and "retention.ms" not in state.get("config", {}) and state.get("config", {}).get("segment.ms") == "3600000",
                  f"full: {n}: compacted, without retention, an hourly segment roll")
            check(state.get("partitions") == of.get("partitions"), f"full: {n}: as many partitions as {source}")
        for n, t in topics.items():
            check(t["metadata"]["labels"].get("strimzi.io/cluster") == "noc-kafka", f"full: {n}: the Strimzi cluster label")
            check(t["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep", f"full: {n}: kept on uninstall")
            check(t["spec"]["replicas"] == 3 and t["spec"]["config"]["min.insync.replicas"] == "2", f"full: {n}: replication")
        check(topics.get("cwmp.informs.raw", {}).get("spec", {}).get("partitions") == 12
              and topics.get("cwmp.aggregates", {}).get("spec", {}).get("partitions") == 4,
              "full: topic partitions from values partitions")
        notes_checks()
        for d in deployments.values():
            check("replicas" not in d["spec"] or d["metadata"]["name"].endswith("fleet"),
                  f"full: {d['metadata']['name']}: replicas left to the HPA")
        dash = [o for o in by_kind(objects, "ConfigMap") if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
        check(len(dash) == 1 and len(dash[0]["data"]) == 3, "full: one dashboards ConfigMap with three dashboards")
        for key, text in (dash[0]["data"].items() if dash else []):
            check("__inputs" not in json.loads(text), f"full: {key}: no __inputs")
        rule = by_kind(objects, "PrometheusRule")
        if rule:
            source = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())
            got = {r.get("alert") or r["record"]: r for g in rule[0]["spec"]["groups"] for r in g["rules"]}
            want = {r.get("alert") or r["record"]: r for g in source["groups"] for r in g["rules"]}
            check(set(got) == set(want) - {"CwmpRebootLoops"},
                  f"full: the PrometheusRule has rules.yml's rules less the disabled one: {set(want) ^ set(got)}")
            for n, r in got.items():
                check(r["expr"] == want[n]["expr"], f"full: {n}: the expression of rules.yml")
                if "alert" in r:
                    check(r["labels"].get("team") == "noc" and r["labels"]["severity"] == want[n]["labels"]["severity"],
                          f"full: {n}: additionalRuleLabels added, its own labels kept {r['labels']}")
                    check(r["annotations"]["runbook_url"] == "https://wiki.example.net/cwmp/runbooks#" + n.lower(),
                          f"full: {n}: runbook_url on the configured base {r['annotations']['runbook_url']}")
        check('"security.protocol" = "SASL_SSL"' in config_text, "full: passthrough properties in the config")
        for line in ['"fetch.max.bytes" = "52428800"', '"batch.size" = "1000000"', '"linger.ms" = "10"']:
            check(line in config_text, f"full: whole numbers render as integers: {line}")
        check("min_devices = 100" in config_text, "full: detector rules in the config")
        env = deployments["demo-cwmp-stream-ingest"]["spec"]["template"]["spec"]["containers"][0]["env"]
        names = {e["name"] for e in env}
        check({"CWMP__KAFKA__CLIENT__SASL_USERNAME", "CWMP__KAFKA__CLIENT__SASL_PASSWORD"} <= names, "full: SASL from the Secret")
        check("not-a-real-password" not in config_text, "full: no secret in the ConfigMap")
        check("[ingest.sessions]" in config_text and "max_entries = 50000" in config_text,
              "full: ingest.sessions in the config")
        check("[detect.rules.rollout_failure]" in config_text, "full: rollout_failure rule in the config")
        # commonLabels on every object; scheduling chart-wide, a workload's own winning.
        for _, o in objects:
            check(o["metadata"].get("labels", {}).get("team") == "noc",
                  f"full: commonLabels on {o['kind']} {o['metadata']['name']}")
        for n, d in deployments.items():
            spec = d["spec"]["template"]["spec"]
            fleet = n.endswith("fleet")
            check(spec.get("priorityClassName") == ("cwmp-critical" if fleet else "cwmp-high"),
                  f"full: {n}: priorityClassName {spec.get('priorityClassName')}")
            check((spec.get("nodeSelector") == {"pool": "stateful"}) == fleet, f"full: {n}: its own nodeSelector")
            tsc = spec.get("topologySpreadConstraints") or [{}]
            own = tsc[0].get("labelSelector", {}).get("matchLabels", {})
            check(own == d["spec"]["selector"]["matchLabels"],
                  f"full: {n}: a spread constraint without labelSelector selects its own pods {own}")
        # A rotated password the chart manages rolls every workload.
        sums = {n: d["spec"]["template"]["metadata"]["annotations"].get("checksum/secret")
                for n, d in deployments.items()}
        check(all(sums.values()), f"full: every workload carries the Secret's checksum {sums}")
        rotated = yaml.safe_load((CHART / "ci" / "full-values.yaml").read_text())
        rotated["kafka"]["auth"]["password"] = "rotated-password"
        after = {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"].get("checksum/secret")
                 for o in workloads(render(rotated))}
        check(all(after[n] != sums[n] for n in sums), "full: a new password changes the pods' checksum")
    if name == "exactly-once":
        check(list(deployments) == ["demo-cwmp-stream-ingest"], f"exactly-once: ingest only, got {list(deployments)}")
        check(deployments["demo-cwmp-stream-ingest"]["kind"] == "StatefulSet",
              "exactly-once: ingest is a StatefulSet (stable transactional ids)")
        check('delivery = "exactly-once"' in config_text, "exactly-once: delivery in the config")
        env = deployments["demo-cwmp-stream-ingest"]["spec"]["template"]["spec"]["containers"][0]["env"]
        check(any(e["name"] == "CWMP__INGEST__TRANSACTIONAL_ID" for e in env), "exactly-once: a transactional id per pod")
        check(any(e["name"] == "CWMP__KAFKA__GROUP_INSTANCE_ID" and e.get("value") == "$(POD_NAME)" for e in env),
              "exactly-once: the StatefulSet's pods are static group members")
    if name == "detect-exactly-once":
        detect = {n: d for n, d in deployments.items() if "detect" in n}
        check(len(detect) == 2, f"detect-exactly-once: both detect workloads, got {list(detect)}")
        check(re.search(r'\[detect\][^\[]*delivery = "exactly-once"', config_text) is not None,
              "detect-exactly-once: delivery in [detect]")
        for n, d in detect.items():
            env = d["spec"]["template"]["spec"]["containers"][0]["env"]
            check(any(e["name"] == "CWMP__DETECT__TRANSACTIONAL_ID" and e.get("value") == "$(POD_NAME)" for e in env),
                  f"detect-exactly-once: {n}: a transactional id per pod")
    if name == "tls":
        mounts = {}
        for n, d in deployments.items():
            spec = d["spec"]["template"]["spec"]
            c = spec["containers"][0]
            vols = {v["name"] for v in spec["volumes"]}
            mounts[n] = {m["mountPath"] for m in c["volumeMounts"]}
            check({"kafka-ca", "kafka-client"} <= vols, f"tls: {n}: extraVolumes {vols}")
            env = {e["name"]: e.get("value") for e in c["env"]}
            check(env.get("TZ") == "UTC", f"tls: {n}: chart-wide extraEnv")
            check(("CWMP__INGEST__MAX_IN_FLIGHT" in env) == n.endswith("ingest"), f"tls: {n}: the workload's own extraEnv")
        for key in ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location"):
            path = next((line.split(" = ")[1].strip('"') for line in config_text.splitlines()
                         if line.startswith(f'"{key}"')), "")
            for n, m in mounts.items():
                check(any(path.startswith(x + "/") for x in m), f"tls: {n}: {key} {path!r} is on a mounted volume {m}")
    if name == "existing-secret":
        check("Secret" not in kinds, "existing-secret: no Secret created")
        for d in deployments.values():
            check("checksum/secret" not in d["spec"]["template"]["metadata"]["annotations"],
                  f"existing-secret: {d['metadata']['name']}: no checksum of a Secret the chart does not own")
        for d in deployments.values():
            env = d["spec"]["template"]["spec"]["containers"][0]["env"]
            refs = [e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e.get("valueFrom", {})]
            check(refs and all(r["name"] == "kafka-credentials" for r in refs), f"existing-secret: {d['metadata']['name']} uses it")
        check(all(n.startswith("cwmp-") for n in deployments), f"existing-secret: fullnameOverride {list(deployments)}")


def reachable(config_text):
    """Every service setting is reachable from values: the default render sets every key
    the service has (the chart's own ones too), with the service's defaults, and the
    values schema admits every detector rule key."""
    import tomllib
    defaults = tomllib.loads(subprocess.run([BINARY, "check-config", "/dev/null"], capture_output=True,
                                            text=True, check=True).stdout)
    rendered = tomllib.loads(config_text)
    chart_owned = {"kafka.brokers", "kafka.group_instance_id", "ingest.group_id", "detect.group_id", "detect.fleet_group_id", "log.format",
                   "detect.stage", "ingest.transactional_id", "detect.transactional_id"}

    def walk(d, r, path):
        for key, value in d.items():
            here = f"{path}{key}"
            if here in ("kafka.client", "kafka.consumer", "kafka.producer", "detect.rules") or here in chart_owned:
                continue
            if isinstance(value, dict):
                walk(value, r.get(key, {}), here + ".")
            else:
                check(key in r, f"default: {here} is not reachable from values")
                check(key not in r or r[key] == value, f"default: {here} = {r.get(key)!r}, the service's default is {value!r}")
    walk(defaults, rendered, "")
    schema = json.loads((CHART / "values.schema.json").read_text())
    rules = schema["properties"]["config"]["properties"]["detect"]["properties"]["rules"]
    check(rules.get("additionalProperties") is False, "values.schema.json: unknown rule keys are refused")
    for key, value in defaults["detect"]["rules"].items():
        check(key in rules["properties"], f"values.schema.json: detect rule {key} missing")
        if isinstance(value, dict) and key in rules["properties"]:
            inner = rules["properties"][key]
            check(set(inner["properties"]) == set(value) and inner.get("additionalProperties") is False,
                  f"values.schema.json: detect rule {key}: keys {sorted(inner['properties'])} against {sorted(value)}")


def selects(selector, labels):
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        if e["operator"] == "In" and labels.get(e["key"]) not in e["values"]:
            return False
    return True


def network_policies(objects):
    """The workloads' policy must not select `helm test` pods (it would cut their egress
    to the workloads); the test pods get their own policy allowing exactly that, and
    ingress to the workloads admits them when metricsFrom is restricted."""
    policies = by_kind(objects, "NetworkPolicy")
    tests = [o for _, o in objects if o["kind"] == "Pod" and
             o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    check(len(tests) == 3, f"full: a helm test pod per workload, got {len(tests)}")
    for pod in tests:
        labels = pod["metadata"]["labels"]
        chosen = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        check(len(chosen) == 1 and chosen[0]["metadata"]["name"].endswith("-test"),
              f"full: test pod {pod['metadata']['name']} is selected by {[p['metadata']['name'] for p in chosen]}")
        for p in chosen:
            egress = p["spec"].get("egress", [])
            check(any(r.get("ports", [{}])[0].get("port") == 9464 for r in egress),
                  f"full: test pod egress to the metrics port under {p['metadata']['name']}")
        for w in workloads(objects):
            wlabels = w["spec"]["template"]["metadata"]["labels"]
            main = [p for p in policies if selects(p["spec"]["podSelector"], wlabels)]
            check(len(main) == 1, f"full: {w['metadata']['name']} selected by one policy")
            sources = [f for p in main for r in p["spec"].get("ingress", []) for f in r.get("from", [])]
            check(any("podSelector" in f and selects(f["podSelector"], labels) for f in sources),
                  f"full: {w['metadata']['name']} admits the test pod {pod['metadata']['name']}")


def rules_checks():
    """Every alert has a severity, a runbook in docs/runbooks.md, and aggregates by
    (namespace, job) so that two releases never merge (absent() has no labels to keep)."""
    import re
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    anchors = {re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
               for h in re.findall(r"^## (.+)$", runbooks, re.M)}
    source = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())
    alerts = [r for g in source["groups"] for r in g["rules"] if "alert" in r]
    check(len(alerts) >= 15, f"rules.yml: {len(alerts)} alerts")
    for r in alerts:
        n = r["alert"]
        check(r.get("labels", {}).get("severity") in ("critical", "warning", "info"), f"rules.yml: {n}: severity")
        url = r.get("annotations", {}).get("runbook_url", "")
        check(url.endswith("docs/runbooks.md#" + n.lower()) and n.lower() in anchors,
              f"rules.yml: {n}: runbook_url {url!r} and a section in docs/runbooks.md")
        expr = " ".join(r["expr"].split())
        if not expr.startswith("absent("):
            groupings = re.findall(r"\bby \(([^)]*)\)", expr)
            check(groupings and all({"namespace", "job"} <= {x.strip() for x in g.split(",")} for g in groupings)
                  or expr.startswith("cwmp:"),
                  f"rules.yml: {n}: every aggregation by (namespace, job): {expr}")
    # A release without a workload has no absent() alert for it.
    objects = render({"prometheusRule": {"enabled": True}, "detectWorker": {"enabled": False}})
    names = {r.get("alert") for o in by_kind(objects, "PrometheusRule") for g in o["spec"]["groups"] for r in g["rules"]}
    check("CwmpDetectWorkerAbsent" not in names and "CwmpIngestAbsent" in names,
          "a release without detect workers has no CwmpDetectWorkerAbsent")
    monitors = render({"serviceMonitor": {"enabled": True}})
    relabel = [r for o in by_kind(monitors, "ServiceMonitor") for e in o["spec"]["endpoints"] for r in e.get("relabelings", [])]
    check(any(r.get("targetLabel") == "workload" for r in relabel), "ServiceMonitor gives targets the workload label")


def notes_checks():
    """NOTES.txt names only objects the release has, for every workload combination."""
    import itertools
    import re
    for ingest, worker, fleet, delivery in itertools.product([True, False], [True, False], [True, False],
                                                             ["at-least-once", "exactly-once"]):
        values = {"ingest": {"enabled": ingest}, "detectWorker": {"enabled": worker},
                  "detectFleet": {"enabled": fleet}, "config": {"ingest": {"delivery": delivery}}}
        chart = helm.Chart.load(str(CHART))
        try:
            files = chart.render(values, name="demo", namespace="cwmp", is_install=True)
        finally:
            chart.close()
        notes = next((t for p, t in files.items() if p.endswith("NOTES.txt")), None)
        name = f"NOTES ingest={ingest} worker={worker} fleet={fleet} {delivery}"
        check(notes is not None, f"{name}: rendered")
        if notes is None:
            continue
        objects = []
        for path, text in files.items():
            if path.endswith((".yaml", ".yml")):
                objects += [d for d in yaml.safe_load_all(text) if d]
        names = {(o["kind"], o["metadata"]["name"]) for o in objects}
        kinds = {"deploy": "Deployment", "sts": "StatefulSet", "svc": "Service"}
        for kind, obj in re.findall(r"\b(deploy|sts|svc)/([a-z0-9-]+)", notes):
            check((kinds[kind], obj) in names, f"{name}: names {kind}/{obj}, which the release does not have")
        for component in ("ingest", "detect-worker", "detect-fleet"):
            on = {"ingest": ingest, "detect-worker": worker, "detect-fleet": fleet}[component]
            check((f"  {component} " in notes) == on, f"{name}: lists {component} only when it runs")
        if not (ingest or worker or fleet):
            check("nothing runs" in notes, f"{name}: says nothing runs")


def copies_match():
    check((CHART / "files" / "rules.yml").read_bytes() == (ROOT / "deploy" / "prometheus" / "rules.yml").read_bytes(),
          "helm/cwmp-stream/files/rules.yml differs from deploy/prometheus/rules.yml")
    for src in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"):
        copy = CHART / "files" / "dashboards" / src.name
        check(copy.exists() and copy.read_bytes() == src.read_bytes(), f"helm/cwmp-stream/files/dashboards/{src.name} differs from deploy/grafana")


def compose_checks():
    # No Docker here: check that the compose file parses and points at files that exist.
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("kafka", "ingest", "detect", "simulator", "prometheus", "grafana"):
        check(name in services, f"compose: service {name}")
    check("KRaft" in (ROOT / "deploy" / "compose.yaml").read_text() or
          services["kafka"]["environment"].get("KAFKA_PROCESS_ROLES") == "broker,controller", "compose: Kafka in KRaft mode")
    for svc in services.values():
        for volume in svc.get("volumes", []):
            src = volume.split(":")[0]
            check((ROOT / "deploy" / src).exists(), f"compose: volume source {src} exists")
    check((ROOT / "deploy" / "docker" / "Dockerfile").read_text().count("USER 65532") == 1, "Dockerfile: non-root user")


def refusals():
    # The chart refuses an autoscaler that could only add idle consumers.
    try:
        render({"ingest": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 50}}})
        check(False, "maxReplicas above the partitions must be refused")
    except helm.HelmError as e:
        check("partitions" in str(e), f"a clear refusal, got {e}")
    # Render-time guardrails: each refused with a message naming the value.
    for values, words in [
        ({"ingest": {"replicaCount": 13}}, "ingest.replicaCount (13) is more than the partitions"),
        ({"detectFleet": {"replicaCount": 5}}, "detectFleet.replicaCount (5) is more than the partitions"),
        ({"detectWorker": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}}},
         "detectWorker.resources.requests.cpu is not set"),
        ({"config": {"detect": {"drainTimeoutMs": 40000}}}, "terminationGracePeriodSeconds (30s) must be above"),
    ]:
        try:
            render(values)
            check(False, f"{values} must be refused")
        except helm.HelmError as e:
            check(words in str(e), f"{values}: a clear refusal naming the value, got {e}")
    for values, what in [
        ({"config": {"detect": {"rules": {"boot_storm": {"min_device": 10}}}}}, "an unknown rule key"),
        ({"config": {"detect": {"rules": {"allowed_latenes_ms": 10}}}}, "an unknown rule"),
        ({"config": {"ingest": {"inputTopc": "x"}}}, "an unknown service key"),
        ({"image": {"digest": "latest"}}, "a digest that is not sha256"),
    ]:
        report = helm.lint(str(CHART), values, strict=True)
        check(report.get("errors") or any(m.get("severity", 0) >= 3 for m in report.get("messages", [])),
              f"values.schema.json refuses {what}")
    # The schema refuses a typo'd delivery mode.
    report = helm.lint(str(CHART), {"config": {"ingest": {"delivery": "at-most-once"}}}, strict=True)
    check(report.get("errors") or any(m.get("severity", 0) >= 3 for m in report.get("messages", [])),
          "values.schema.json refuses an unknown delivery mode")


def main():
    copies_match()
    readme = subprocess.run([sys.executable, str(ROOT / "scripts" / "chart-readme.py"), "--check"],
                            capture_output=True, text=True)
    check(readme.returncode == 0, f"chart README: {readme.stderr.strip()}")
    compose_checks()
    crs = 0
    for path in scenarios():
        name = path.name[: -len("-values.yaml")]
        values = yaml.safe_load(path.read_text()) or {}
        lint(values, name)
        try:
            objects = render(values)
        except helm.HelmError as e:
            check(False, f"{name}: render failed: {e}")
            continue
        validate_k8s(objects, name)
        crs += validate_crds(objects, name)
        config_text = next(o["data"]["cwmp-stream.toml"] for _, o in objects
                           if o["kind"] == "ConfigMap" and "cwmp-stream.toml" in o.get("data", {}))
        check_config(objects, name)
        common_assertions(objects, name, values)
        scenario_assertions(objects, name, config_text)
        print(f"chart-test: {name}: {len(objects)} objects rendered and checked")
    check(crs >= 2, "the full scenario renders a ServiceMonitor and a PrometheusRule")
    refusals()
    rules_checks()
    if failures:
        print("chart-test: FAILED", file=sys.stderr)
        for f in failures:
            print("  - " + f, file=sys.stderr)
        sys.exit(1)
    print("chart-test: all checks passed")


if __name__ == "__main__":
    main()
