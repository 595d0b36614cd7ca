{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "ssa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name: the release name when it already says the chart's name. */}}
{{- define "ssa.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "ssa.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ssa.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ssa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ssa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ssa.labels" -}}
{{ include "ssa.selectorLabels" . }}
app.kubernetes.io/part-of: spark-shuffle-agent
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The agent image: tag defaults to appVersion, a digest wins over the tag. */}}
{{- define "ssa.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "ssa.appKeySecret" -}}
{{- default (printf "%s-app-key" (include "ssa.fullname" .)) .Values.appKey.existingSecret -}}
{{- end -}}

{{/* The agent's container securityContext: its own uid, nothing else. */}}
{{- define "ssa.agentSecurityContext" -}}
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
A monitoring object is rendered when its value says true, or when it is null (the default) and
the cluster serves the CRD. Arguments: (list $ .Values.metrics.x "monitoring.coreos.com/v1/Kind").
*/}}
{{- define "ssa.monitoringEnabled" -}}
{{- $ctx := index . 0 -}}{{- $v := index . 1 -}}{{- $api := index . 2 -}}
{{- if kindIs "bool" $v.enabled -}}
{{- if $v.enabled }}true{{ end -}}
{{- else if $ctx.Capabilities.APIVersions.Has $api -}}
true
{{- end -}}
{{- end -}}

{{/* The Secret's key: kept from the live object on upgrade, random on first install. */}}
{{- define "ssa.appKeyValue" -}}
{{- $live := lookup "v1" "Secret" .Release.Namespace (include "ssa.appKeySecret" .) -}}
{{- if and $live $live.data (index $live.data "key") -}}
{{- index $live.data "key" -}}
{{- else -}}
{{- randAlphaNum 64 | b64enc -}}
{{- end -}}
{{- end -}}

{{/*
Executor pod annotations for node autoscalers (README, "Autoscalers"): the executor's local
volumes (emptyDir/hostPath) would keep cluster-autoscaler from removing the node; with the agent
its committed outputs are in the store, so evicting it costs no recomputation.
*/}}
{{- define "ssa.executorAnnotations" -}}
{{- $a := dict -}}
{{- if .Values.executor.safeToEvict -}}
{{- $_ := set $a "cluster-autoscaler.kubernetes.io/safe-to-evict" "true" -}}
{{- end -}}
{{- if .Values.executor.doNotDisrupt -}}
{{- $_ := set $a "karpenter.sh/do-not-disrupt" "true" -}}
{{- end -}}
{{- $a = merge $a .Values.executor.podAnnotations -}}
{{- if $a -}}
annotations:
  {{- toYaml $a | nindent 2 }}
{{- end -}}
{{- end -}}
