{{/*
Expand the name of the chart.
*/}}
{{- define "cwmp-stream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name (63 characters at most, the DNS limit).
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "cwmp-stream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the chart label.
*/}}
{{- define "cwmp-stream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "cwmp-stream.labels" -}}
helm.sh/chart: {{ include "cwmp-stream.chart" . }}
{{ include "cwmp-stream.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cwmp-stream
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels (stable across upgrades: no chart version here).
*/}}
{{- define "cwmp-stream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cwmp-stream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one workload: pass (dict "ctx" $ "component" "ingest").
*/}}
{{- define "cwmp-stream.componentLabels" -}}
{{ include "cwmp-stream.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "cwmp-stream.componentSelectorLabels" -}}
{{ include "cwmp-stream.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The service account to use.
*/}}
{{- define "cwmp-stream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cwmp-stream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret holding the Kafka SASL credentials.
*/}}
{{- define "cwmp-stream.kafkaSecretName" -}}
{{- if .Values.kafka.auth.existingSecret }}
{{- .Values.kafka.auth.existingSecret }}
{{- else }}
{{- printf "%s-kafka" (include "cwmp-stream.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The workloads: component name → (values key, command line).
*/}}
{{- define "cwmp-stream.workloads" -}}
ingest:
  values: ingest
  args: ["ingest", "--config", "/etc/cwmp-stream/cwmp-stream.toml"]
detect-worker:
  values: detectWorker
  args: ["detect", "--config", "/etc/cwmp-stream/cwmp-stream.toml", "--stage", "worker"]
detect-fleet:
  values: detectFleet
  args: ["detect", "--config", "/etc/cwmp-stream/cwmp-stream.toml", "--stage", "fleet"]
{{- end }}

{{/*
The workload kind: ingest with exactly-once delivery is a StatefulSet (stable
transactional ids); so are the detect workloads with staticMembership (stable pod
names are stable group.instance.ids); everything else is a Deployment.
*/}}
{{- define "cwmp-stream.workloadKind" -}}
{{- if and (eq .component "ingest") (eq .ctx.Values.config.ingest.delivery "exactly-once") -}}
StatefulSet
{{- else if and (eq .component "detect-worker") .ctx.Values.detectWorker.staticMembership -}}
StatefulSet
{{- else if and (eq .component "detect-fleet") .ctx.Values.detectFleet.staticMembership -}}
StatefulSet
{{- else -}}
Deployment
{{- end -}}
{{- end }}

{{/*
The image reference: [registry/]repository, then @digest when set, else :tag (the
chart's appVersion by default). global.imageRegistry (umbrella charts) wins over
image.registry.
*/}}
{{- define "cwmp-stream.image" -}}
{{- $registry := dig "imageRegistry" "" (.Values.global | default dict) | default .Values.image.registry -}}
{{- $ref := .Values.image.repository -}}
{{- if $registry }}{{ $ref = printf "%s/%s" (trimSuffix "/" $registry) $ref }}{{ end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $ref .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{/*
The replicas a workload runs at least: its replicaCount, or the autoscaler's floor.
Pass (dict "v" <workload values>).
*/}}
{{- define "cwmp-stream.minReplicas" -}}
{{- if and .v.autoscaling .v.autoscaling.enabled -}}
{{- .v.autoscaling.minReplicas | int -}}
{{- else -}}
{{- .v.replicaCount | int -}}
{{- end -}}
{{- end }}

{{/*
The partitions a workload consumes (its useful parallelism).
Pass (dict "ctx" $ "component" "ingest").
*/}}
{{- define "cwmp-stream.partitions" -}}
{{- $p := .ctx.Values.partitions -}}
{{- if eq .component "ingest" -}}{{ $p.raw | int }}
{{- else if eq .component "detect-worker" -}}{{ $p.events | int }}
{{- else -}}{{ $p.aggregates | int }}
{{- end -}}
{{- end }}

{{/*
Render-time guardrails of one workload: what would otherwise start pods that sit idle,
cannot drain, or never schedule. Pass (dict "ctx" $ "component" "ingest" "key" "ingest").
*/}}
{{- define "cwmp-stream.guardrails" -}}
{{- $v := index .ctx.Values .key -}}
{{- $partitions := include "cwmp-stream.partitions" . | int -}}
{{- $autoscaled := and $v.autoscaling $v.autoscaling.enabled -}}
{{- if and (not $autoscaled) (gt (int $v.replicaCount) $partitions) -}}
{{- fail (printf "%s.replicaCount (%d) is more than the partitions it consumes (%d, values partitions): extra replicas would sit idle" .key (int $v.replicaCount) $partitions) -}}
{{- end -}}
{{- if $autoscaled -}}
{{- if gt (int $v.autoscaling.maxReplicas) $partitions -}}
{{- fail (printf "%s.autoscaling.maxReplicas (%d) is more than the partitions it consumes (%d): extra replicas would sit idle" .key (int $v.autoscaling.maxReplicas) $partitions) -}}
{{- end -}}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) -}}
{{- fail (printf "%s.autoscaling.minReplicas (%d) is above maxReplicas (%d)" .key (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if not (dig "requests" "cpu" "" ($v.resources | default dict)) -}}
{{- fail (printf "%s.autoscaling is enabled but %s.resources.requests.cpu is not set: a CPU utilization target needs a CPU request" .key .key) -}}
{{- end -}}
{{- end -}}
{{- $drain := ternary .ctx.Values.config.ingest.drainTimeoutMs .ctx.Values.config.detect.drainTimeoutMs (eq .component "ingest") | int -}}
{{- if le (mul (int $v.terminationGracePeriodSeconds) 1000) $drain -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%ds) must be above the drain bound config.%s.drainTimeoutMs (%dms), or SIGKILL cuts the drain short" .key (int $v.terminationGracePeriodSeconds) (ternary "ingest" "detect" (eq .component "ingest")) $drain) -}}
{{- end -}}
{{- end }}

{{/*
A list setting of a workload: the chart-wide list, then the workload's own.
Pass (dict "ctx" $ "v" <workload values> "key" "extraEnv").
*/}}
{{- define "cwmp-stream.concat" -}}
{{- $all := concat (index .ctx.Values .key | default list) (index .v .key | default list) -}}
{{- if $all }}{{ toYaml $all }}{{ end -}}
{{- end }}

{{/*
A TOML value: whole numbers as integers (YAML numbers reach templates as floats, and
20000 must not render as 2e+04), everything else as JSON, which TOML reads the same
for strings, numbers, booleans and arrays of them.
*/}}
{{- define "cwmp-stream.tomlValue" -}}
{{- if kindIs "float64" . -}}
{{- include "cwmp-stream.number" . -}}
{{- else -}}
{{- toJson . -}}
{{- end -}}
{{- end }}

{{/*
A scalar as text, a whole number without exponent or fraction (5.24288e+07 is
52428800): for TOML values and for librdkafka properties, which take strings.
*/}}
{{- define "cwmp-stream.number" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end }}

{{/*
The scalar keys of a values map as TOML lines (camelCase → snake_case), skipping
the keys in "skip". Pass (dict "map" … "skip" (list …)).
*/}}
{{- define "cwmp-stream.tomlKeys" -}}
{{- range $k, $v := .map }}
{{- if not (or (kindIs "map" $v) (has $k $.skip)) }}
{{ $k | snakecase }} = {{ include "cwmp-stream.tomlValue" $v }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A consumer group: the configured one, or one scoped to the release.
Pass (dict "ctx" $ "id" <value> "suffix" "ingest").
*/}}
{{- define "cwmp-stream.groupId" -}}
{{- .id | default (printf "%s-%s" (include "cwmp-stream.fullname" .ctx) .suffix) -}}
{{- end }}
