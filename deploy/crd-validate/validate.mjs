// Reads a JSON array of Kubernetes objects on stdin; validates every
// monitoring.coreos.com/v1 ServiceMonitor and PrometheusRule against its CRD schema.
// Prints one line per object; exits 1 if any is invalid.
import { ServiceMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const kinds = { ServiceMonitor, PrometheusRule };
let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = 0;
for (const obj of JSON.parse(input)) {
  const Model = obj.apiVersion === "monitoring.coreos.com/v1" ? kinds[obj.kind] : undefined;
  if (!Model) continue;
  try {
    new Model(obj).validate();
    console.log(`valid ${obj.kind} ${obj.metadata.name}`);
  } catch (e) {
    failed += 1;
    console.log(`INVALID ${obj.kind} ${obj.metadata.name}: ${e.message}`);
  }
}
process.exit(failed ? 1 : 0);
