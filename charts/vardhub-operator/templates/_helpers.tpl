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

{{/*
Refuses an install that cannot work, naming what to create first (see README, "Before you
install"). The Secrets are looked up only when the chart talks to a cluster: `helm template`
and a client-side dry run cannot see them and skip that part.
*/}}
{{- define "vardhub-operator.checkPrerequisites" -}}
{{- $ns := .Release.Namespace }}
{{- with .Values.openbao }}
{{- if and .address (not .tokenSecret.name) (not .kubernetesAuth.role) }}
{{- fail "openbao.address is set but neither openbao.kubernetesAuth.role nor openbao.tokenSecret.name is: create the operator's role in OpenBao's Kubernetes auth method with the policy in openbao-policy.hcl and set openbao.kubernetesAuth.role; see the chart's README, \"Before you install\"" }}
{{- end }}
{{- if and .tokenSecret.name .kubernetesAuth.role }}
{{- fail "openbao.kubernetesAuth.role and openbao.tokenSecret are both set: choose one way for the operator to log in" }}
{{- end }}
{{- if and (or .tokenSecret.name .kubernetesAuth.role) (not .address) }}
{{- fail "openbao.kubernetesAuth or openbao.tokenSecret is set but openbao.address is not: set openbao.address to OpenBao's URL as pods reach it" }}
{{- end }}
{{- end }}
{{- with .Values.s3 }}
{{- if and .endpoint (not .credentialsSecret.name) }}
{{- fail "s3.endpoint is set but s3.credentialsSecret.name is not: create the operator's own S3 identity and a Secret with its keys, and set s3.credentialsSecret.name; see the chart's README, \"Before you install\"" }}
{{- end }}
{{- end }}
{{- if (lookup "v1" "Namespace" "" "kube-system") }}
{{- with .Values.openbao.tokenSecret }}
{{- if .name }}
{{- $secret := lookup "v1" "Secret" $ns .name }}
{{- if not $secret }}
{{- fail (printf "openbao.tokenSecret: Secret %s/%s does not exist; create it first (kubectl -n %s create secret generic %s --from-literal=%s=<token>)" $ns .name $ns .name (.key | default "token")) }}
{{- end }}
{{- if not (hasKey ($secret.data | default dict) (.key | default "token")) }}
{{- fail (printf "openbao.tokenSecret: Secret %s/%s has no key %q" $ns .name (.key | default "token")) }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.s3.credentialsSecret }}
{{- if .name }}
{{- $secret := lookup "v1" "Secret" $ns .name }}
{{- if not $secret }}
{{- fail (printf "s3.credentialsSecret: Secret %s/%s does not exist; create it first with the operator's S3 access key and secret key" $ns .name) }}
{{- end }}
{{- range $key := list (.accessKeyIdKey | default "accessKeyId") (.secretAccessKeyKey | default "secretAccessKey") }}
{{- if not (hasKey ($secret.data | default dict) $key) }}
{{- fail (printf "s3.credentialsSecret: Secret %s/%s has no key %q" $ns $.Values.s3.credentialsSecret.name $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The binding that enforces one of the operator's scope policies: (list $ "suffix").
*/}}
{{- define "vardhub-operator.scopeBinding" -}}
{{- $root := index . 0 }}
{{- $name := printf "%s-%s" (include "vardhub-operator.fullname" $root) (index . 1) }}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "vardhub-operator.labels" $root | nindent 4 }}
spec:
  policyName: {{ $name }}
  validationActions: [Deny]
{{- end }}
