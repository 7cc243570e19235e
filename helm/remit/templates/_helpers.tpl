{{/* Names, labels and derived settings shared by every template. */}}

{{- define "remit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "remit.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "remit.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "remit.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "remit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "remit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "remit.consentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "remit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: consent
{{- end -}}

{{- define "remit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "remit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: remit
{{- end -}}

{{- define "remit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "remit.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image, by digest when one is given. */}}
{{- define "remit.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The sidecar image: the operator's unless overridden. */}}
{{- define "remit.gatewayImage" -}}
{{- if or .Values.gateway.image.repository .Values.gateway.image.tag -}}
{{- $repo := default .Values.image.repository .Values.gateway.image.repository -}}
{{- printf "%s:%s" $repo (default (default .Chart.AppVersion .Values.image.tag) .Values.gateway.image.tag) -}}
{{- else -}}
{{- include "remit.image" . -}}
{{- end -}}
{{- end -}}

{{/* "true" when kopf peering runs: asked for, or needed by more than one replica. */}}
{{- define "remit.peering" -}}
{{- if or .Values.peering.enabled (gt (int .Values.operator.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{- define "remit.webhookService" -}}
{{- printf "%s-webhook" (include "remit.fullname" .) -}}
{{- end -}}

{{- define "remit.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "remit.fullname" .) -}}
{{- end -}}

{{- define "remit.signingSecret" -}}
{{- default .Values.signingKey.secretName .Values.signingKey.existingSecret -}}
{{- end -}}

{{/* "true" when the operator keeps the webhook certificate (not cert-manager, not the chart). */}}
{{- define "remit.operatorTls" -}}
{{- if and .Values.webhook.tls.operatorManaged (not .Values.webhook.tls.certManager.enabled) -}}true{{- end -}}
{{- end -}}

{{- define "remit.webhookConfiguration" -}}
{{- printf "%s-%s" (include "remit.fullname" .) .Release.Namespace -}}
{{- end -}}
