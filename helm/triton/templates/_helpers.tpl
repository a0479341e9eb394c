{{/*
Names and labels, the way the Traefik and metrics-server charts build them.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "triton.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, else "<release>-<name>", or the release name
alone when it already contains the chart name. 63 characters at most (DNS label).
*/}}
{{- define "triton.fullname" -}}
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

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "triton.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the server. */}}
{{- define "triton.labels" -}}
helm.sh/chart: {{ include "triton.chart" . }}
{{ include "triton.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: inference-server
app.kubernetes.io/part-of: tritonfil
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of the helm test pod: deliberately not the selector labels, so the Service, the PDB and the
topology spread never count it as a server pod.
*/}}
{{- define "triton.testLabels" -}}
helm.sh/chart: {{ include "triton.chart" . }}
app.kubernetes.io/name: {{ include "triton.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: test
app.kubernetes.io/part-of: tritonfil
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: stable across upgrades (never the version). */}}
{{- define "triton.selectorLabels" -}}
app.kubernetes.io/name: {{ include "triton.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of the ServiceAccount the pods run as. */}}
{{- define "triton.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "triton.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Server image: repository@digest when a digest is given, else repository:tag (tag defaults to <appVersion>-py3). */}}
{{- define "triton.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default (printf "%s-py3" .Chart.AppVersion) .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the Secret with static AWS keys (existing or created). */}}
{{- define "triton.awsSecretName" -}}
{{- default (printf "%s-aws" (include "triton.fullname" .)) .Values.aws.staticCredentials.existingSecret }}
{{- end }}

{{/* Service DNS name inside the cluster. */}}
{{- define "triton.serviceHost" -}}
{{- printf "%s.%s.svc.cluster.local" (include "triton.fullname" .) .Release.Namespace }}
{{- end }}

{{/* Node selector: nodeSelector plus the instance type when pinned. */}}
{{- define "triton.nodeSelector" -}}
{{- $sel := deepCopy .Values.nodeSelector }}
{{- if .Values.instanceType }}
{{- $_ := set $sel "node.kubernetes.io/instance-type" .Values.instanceType }}
{{- end }}
{{- if $sel }}
{{- toYaml $sel }}
{{- end }}
{{- end }}

{{/*
Resources of the server container: `resources` as given, plus nvidia.com/gpu = gpu.count in requests
and limits when gpu.count > 0 (a different nvidia.com/gpu in `resources` is refused in _validate.tpl).
*/}}
{{- define "triton.resources" -}}
{{- $res := deepCopy (default (dict) .Values.resources) }}
{{- if gt (int .Values.gpu.count) 0 }}
{{- range $part := list "requests" "limits" }}
{{- $list := deepCopy (default (dict) (index $res $part)) }}
{{- $_ := set $list "nvidia.com/gpu" (toString (int $.Values.gpu.count)) }}
{{- $_ := set $res $part $list }}
{{- end }}
{{- end }}
{{- toYaml $res }}
{{- end }}

{{/*
topologySpreadConstraints as given, each entry completed the way the Traefik chart does: the selector
labels as `labelSelector` and `[pod-template-hash]` as `matchLabelKeys` where the entry has none.
*/}}
{{- define "triton.topologySpreadConstraints" -}}
{{- $out := list }}
{{- range .Values.topologySpreadConstraints }}
{{- $c := deepCopy . }}
{{- if kindIs "invalid" (index $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "triton.selectorLabels" $ | fromYaml)) }}
{{- end }}
{{- if kindIs "invalid" (index $c "matchLabelKeys") }}
{{- $_ := set $c "matchLabelKeys" (list "pod-template-hash") }}
{{- end }}
{{- $out = append $out $c }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* Gateway the VirtualService binds to: the one the chart creates, or the existing one. */}}
{{- define "triton.gatewayRef" -}}
{{- if .Values.istio.gateway.create }}
{{- printf "%s/%s" .Release.Namespace (include "triton.fullname" .) }}
{{- else }}
{{- .Values.istio.gateway.existing }}
{{- end }}
{{- end }}

{{/* Timeout and retries of a VirtualService route (Istio retries twice by default: attempts 0 turns that off). */}}
{{- define "triton.vsPolicy" -}}
{{- $vs := .Values.istio.virtualService -}}
timeout: {{ $vs.timeout }}
retries:
  attempts: {{ $vs.retries.attempts }}
  {{- if gt (int $vs.retries.attempts) 0 }}
  perTryTimeout: {{ $vs.retries.perTryTimeout }}
  retryOn: {{ $vs.retries.retryOn }}
  {{- end }}
{{- end }}

{{/*
The queue-time PromQL of the ScaledObject: autoscaling.keda.query, else files/queue-time.promql, as a
template (namespace, release name, window).
*/}}
{{- define "triton.queueTimeQuery" -}}
{{- tpl (default (.Files.Get "files/queue-time.promql") .Values.autoscaling.keda.query) . | trim }}
{{- end }}
