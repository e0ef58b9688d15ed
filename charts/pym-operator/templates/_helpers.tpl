{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "pym-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "pym-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else if hasPrefix (printf "%s-" .Release.Name) $name }}
{{- /* `helm install pym charts/pym-operator` → pym-operator, not pym-pym-operator */}}
{{- $name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of cluster-scoped objects: also unique across namespaces. */}}
{{- define "pym-operator.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "pym-operator.fullname" .) }}
{{- end }}

{{- define "pym-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the operator. */}}
{{- define "pym-operator.labels" -}}
{{ include "pym-operator.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object of the release, without the component. */}}
{{- define "pym-operator.commonLabels" -}}
helm.sh/chart: {{ include "pym-operator.chart" . }}
app.kubernetes.io/name: {{ include "pym-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pym
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator pods (immutable once installed). */}}
{{- define "pym-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pym-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The selector labels as `key=value,...`, sorted (--operator-pod-labels). */}}
{{- define "pym-operator.selectorLabelsFlag" -}}
{{- $labels := include "pym-operator.selectorLabels" . | fromYaml }}
{{- $pairs := list }}
{{- range $k := keys $labels | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%v" $k (index $labels $k)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{- define "pym-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pym-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespace the operator watches in scope=namespace. */}}
{{- define "pym-operator.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace }}
{{- end }}

{{- define "pym-operator.leaseName" -}}
{{- default (include "pym-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "pym-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Checks the schema cannot express (they need two values at once).
*/}}
{{- define "pym-operator.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: without a Lease every replica would reconcile the same PymServices" }}
{{- end }}
{{- if ge (int .Values.leaderElection.leaseGraceSeconds) (int .Values.leaderElection.leaseDurationSeconds) }}
{{- fail "leaderElection.leaseGraceSeconds must be less than leaderElection.leaseDurationSeconds" }}
{{- end }}
{{- if and (ne .Values.scope "namespace") .Values.watchNamespace }}
{{- fail "watchNamespace is only used with scope=namespace (set scope: namespace, or remove watchNamespace)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled=true (the ServiceMonitor selects that Service)" }}
{{- end }}
{{- end }}
