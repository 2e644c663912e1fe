{{/* Names, labels and the values several templates share. */}}

{{- define "cove.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name: the release name, with the chart's name appended unless it already holds it. */}}
{{- define "cove.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "cove.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cove.labels" -}}
helm.sh/chart: {{ include "cove.chart" . }}
{{ include "cove.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cove.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cove.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of one component: gateway, worker, postgresql, reservoir. */}}
{{- define "cove.componentSelector" -}}
{{ include "cove.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "cove.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "cove.gatewayService" -}}{{ include "cove.fullname" . }}-gateway{{- end }}
{{- define "cove.postgresqlService" -}}{{ include "cove.fullname" . }}-postgresql{{- end }}
{{- define "cove.reservoirService" -}}{{ include "cove.fullname" . }}-reservoir{{- end }}

{{/* The environment variable Kubernetes gives pods for a Service's cluster IP (the chart needs no cluster DNS). */}}
{{- define "cove.serviceHostVar" -}}
{{- printf "%s_SERVICE_HOST" (. | upper | replace "-" "_") }}
{{- end }}

{{- define "cove.adminTokenSecret" -}}
{{- .Values.adminToken.existingSecret | default (printf "%s-admin-token" (include "cove.fullname" .)) }}
{{- end }}

{{- define "cove.secretKeySecret" -}}
{{- .Values.secretKey.existingSecret | default (printf "%s-secret-key" (include "cove.fullname" .)) }}
{{- end }}

{{- define "cove.externalDatabase" -}}
{{- if .Values.database.external.existingSecret }}true{{ end }}
{{- end }}

{{/* Refuse combinations the schema cannot express, naming the value. */}}
{{- define "cove.validate" -}}
{{- if and (not (include "cove.externalDatabase" .)) (not .Values.database.bundled.enabled) }}
{{- fail "database: set database.external.existingSecret (a Secret with the PostgreSQL URL) or database.bundled.enabled=true" }}
{{- end }}
{{- if and (include "cove.externalDatabase" .) (not (lookup "v1" "Namespace" "" .Release.Namespace | empty)) (lookup "v1" "Secret" .Release.Namespace .Values.database.external.existingSecret | empty) }}
{{- fail (printf "database.external.existingSecret: Secret %q not found in namespace %q" .Values.database.external.existingSecret .Release.Namespace) }}
{{- end }}
{{- $names := dict }}
{{- range .Values.workerPools }}
{{- if hasKey $names .name }}{{ fail (printf "workerPools: the name %q is used twice" .name) }}{{ end }}
{{- $_ := set $names .name true }}
{{- if lt (int .maxWorkers) (int .minWorkers) }}
{{- fail (printf "workerPools[%s].maxWorkers (%v) is less than minWorkers (%v)" .name .maxWorkers .minWorkers) }}
{{- end }}
{{- if and .gpu (gt (int (.gpu.count | default 0)) 0) (not .gpu.type) }}
{{- fail (printf "workerPools[%s].gpu.type: required when gpu.count is %v" .name .gpu.count) }}
{{- end }}
{{- end }}
{{- if and (not .Values.worker.privileged) (eq .Values.worker.runtime "crun") }}
{{- fail "worker.privileged=false needs worker.runtime=process: crun inside a pod needs a privileged pod (docs/kubernetes.md)" }}
{{- end }}
{{- end }}
