{{/*
Chart name, overridable with nameOverride. Truncated to 63 characters, the
limit of a DNS label and of a label value.
*/}}
{{- define "vardhub-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name used as the prefix of every namespaced resource and as
the name of the cluster-scoped RBAC objects. When the release name already
contains the chart name it is used alone, so `helm install vardhub-operator`
yields "vardhub-operator" rather than "vardhub-operator-vardhub-operator".
*/}}
{{- define "vardhub-operator.fullname" -}}
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
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "vardhub-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels shared by every resource of the chart.
*/}}
{{- define "vardhub-operator.labels" -}}
helm.sh/chart: {{ include "vardhub-operator.chart" . }}
{{ include "vardhub-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vardhub
app.kubernetes.io/component: operator
{{- end }}

{{/*
Labels that identify the operator pods. They are part of the Deployment's
immutable selector, so they must never change between chart versions.
*/}}
{{- define "vardhub-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vardhub-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "vardhub-operator.serviceAccountName" -}}
{{- .Values.serviceAccount.name }}
{{- end }}

{{/*
Container image reference. A digest, when given, pins the image and takes
precedence over the tag; otherwise the tag defaults to the chart's appVersion.
*/}}
{{- define "vardhub-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}
