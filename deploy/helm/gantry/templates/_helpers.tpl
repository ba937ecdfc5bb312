{{/* The chart's name, or nameOverride. */}}
{{- define "gantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name for every object, at most 63 characters less room for suffixes. */}}
{{- define "gantry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gantry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "gantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one role: call with (dict "ctx" $ "component" "control-plane"). */}}
{{- define "gantry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gantry.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gantry.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The in-cluster name of the cluster listener's Service; its certificate carries it. */}}
{{- define "gantry.clusterHost" -}}
{{ include "gantry.fullname" . }}-cluster.{{ .Release.Namespace }}.svc
{{- end -}}

{{- define "gantry.clusterEndpoint" -}}
{{- .Values.controlPlane.clusterEndpoint | default (printf "https://%s:%v" (include "gantry.clusterHost" .) .Values.controlPlane.service.cluster.port) -}}
{{- end -}}

{{/* The Secret and key holding the PostgreSQL URL, empty for SQLite. */}}
{{- define "gantry.databaseSecret" -}}
{{- if .Values.controlPlane.database.existingSecret -}}
{{ .Values.controlPlane.database.existingSecret }}
{{- else if .Values.controlPlane.database.url -}}
{{ include "gantry.fullname" . }}-database
{{- end -}}
{{- end -}}

{{- define "gantry.databaseSecretKey" -}}
{{- if .Values.controlPlane.database.existingSecret -}}
{{ .Values.controlPlane.database.existingSecretKey }}
{{- else -}}
database-url
{{- end -}}
{{- end -}}

{{- define "gantry.adminTokenSecret" -}}
{{- if .Values.controlPlane.adminToken.existingSecret -}}
{{ .Values.controlPlane.adminToken.existingSecret }}
{{- else if .Values.controlPlane.adminToken.value -}}
{{ include "gantry.fullname" . }}-admin-token
{{- end -}}
{{- end -}}

{{- define "gantry.adminTokenSecretKey" -}}
{{- if .Values.controlPlane.adminToken.existingSecret -}}
{{ .Values.controlPlane.adminToken.existingSecretKey }}
{{- else -}}
admin-token
{{- end -}}
{{- end -}}

{{- define "gantry.runtimeCertificateSecret" -}}
{{ .Values.runtime.certificate.existingSecret | default (printf "%s-runtime-certificate" (include "gantry.fullname" .)) }}
{{- end -}}

{{- define "gantry.runtimeControlPlane" -}}
{{- .Values.runtime.controlPlane | default (printf "%s:%v" (include "gantry.clusterHost" .) .Values.controlPlane.service.cluster.port) -}}
{{- end -}}

{{/* A map of labels as GANTRY_LABEL's comma-separated k=v list, in key order. */}}
{{- define "gantry.labelList" -}}
{{- $items := list -}}
{{- range $k, $v := . -}}
{{- $items = append $items (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $items -}}
{{- end -}}
