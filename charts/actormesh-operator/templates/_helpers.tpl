{{- define "actormesh-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "actormesh-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "actormesh-operator.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "actormesh-operator.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: the same as the kustomize install, so both select the same pods. */}}
{{- define "actormesh-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "actormesh-operator.name" . }}
{{- end -}}

{{- define "actormesh-operator.labels" -}}
{{ include "actormesh-operator.selectorLabels" . }}
app.kubernetes.io/part-of: actormesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "actormesh-operator.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{- define "actormesh-operator.validate" -}}
{{- if not (has .Values.rbacScope (list "cluster" "namespace")) -}}
{{- fail (printf "rbacScope must be cluster or namespace, not %q" .Values.rbacScope) -}}
{{- end -}}
{{- if not (has .Values.logFormat (list "json" "text")) -}}
{{- fail (printf "logFormat must be json or text, not %q" .Values.logFormat) -}}
{{- end -}}
{{- if and .Values.watchNamespace (eq .Values.rbacScope "cluster") -}}
{{- fail "watchNamespace needs rbacScope: namespace (with rbacScope: cluster the operator watches every namespace)" -}}
{{- end -}}
{{- end -}}
