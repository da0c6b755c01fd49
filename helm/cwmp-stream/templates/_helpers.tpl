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
transactional ids); everything else is a Deployment.
*/}}
{{- define "cwmp-stream.workloadKind" -}}
{{- if and (eq .component "ingest") (eq .ctx.Values.config.ingest.delivery "exactly-once") -}}
StatefulSet
{{- else -}}
Deployment
{{- end -}}
{{- end }}
