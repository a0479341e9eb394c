{{/*
Guards for values that the schema cannot judge alone (relations between keys). Each message names
the keys involved and says what to do. Included once, from deployment.yaml; helm renders every
template, so a guard fails any install, upgrade, template or lint.
*/}}
{{- define "triton.validate" -}}
{{- $v := .Values }}

{{- if not $v.modelRepository }}
{{- fail "modelRepository is required: the S3 location of the Triton model repository, e.g. --set modelRepository=s3://BUCKET/PREFIX" }}
{{- end }}

{{- range $arg := $v.server.extraArgs }}
{{- range $flag := list "--model-repository" "--model-store" "--model-control-mode" "--load-model" "--strict-readiness" "--exit-on-error" "--exit-timeout-secs" "--log-format" "--log-verbose" "--http-port" "--grpc-port" "--metrics-port" }}
{{- if or (eq $arg $flag) (hasPrefix (printf "%s=" $flag) $arg) }}
{{- fail (printf "server.extraArgs: %q is set by the chart; use the matching value instead (modelRepository, models, server.exitOnError, server.exitTimeoutSeconds, server.log; the container ports are fixed at 8000/8001/8002)" $arg) }}
{{- end }}
{{- end }}
{{- end }}

{{- if ge (add (int $v.preStopSleepSeconds) (int $v.server.exitTimeoutSeconds)) (int $v.terminationGracePeriodSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds (%d) + server.exitTimeoutSeconds (%d), or Triton is killed before in-flight requests finish" (int $v.terminationGracePeriodSeconds) (int $v.preStopSleepSeconds) (int $v.server.exitTimeoutSeconds)) }}
{{- end }}

{{- if $v.autoscaling.enabled }}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d)" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and (eq $v.autoscaling.engine "hpa") (lt (int $v.autoscaling.minReplicas) 1) }}
{{- fail "autoscaling.minReplicas must be at least 1 with autoscaling.engine hpa (an HPA does not scale to zero)" }}
{{- end }}
{{- if and (eq $v.autoscaling.engine "hpa") (kindIs "invalid" $v.autoscaling.targetCPUUtilizationPercentage) }}
{{- fail "autoscaling.engine hpa needs autoscaling.targetCPUUtilizationPercentage (or autoscaling.engine keda: Triton's queue time)" }}
{{- end }}
{{- if eq $v.autoscaling.engine "keda" }}
{{- if not $v.autoscaling.keda.serverAddress }}
{{- fail "autoscaling.engine keda needs autoscaling.keda.serverAddress: the Prometheus that scrapes the Triton pods (or autoscaling.engine hpa: CPU)" }}
{{- end }}
{{- if lt (int $v.autoscaling.minReplicas) 1 }}
{{- fail "autoscaling.minReplicas must be at least 1 with autoscaling.engine keda: with no pod there is no queue time to scale up on; to scale the release to zero set autoscaling.keda.pausedReplicas: 0" }}
{{- end }}
{{- end }}
{{- end }}

{{- $creds := $v.aws.staticCredentials }}
{{- if $creds.enabled }}
{{- if $creds.existingSecret }}
{{- if or $creds.accessKeyId $creds.secretAccessKey $creds.sessionToken }}
{{- fail "aws.staticCredentials: set either existingSecret or accessKeyId/secretAccessKey/sessionToken, not both" }}
{{- end }}
{{- else if or (not $creds.accessKeyId) (not $creds.secretAccessKey) }}
{{- fail "aws.staticCredentials.enabled is true but aws.staticCredentials.accessKeyId and aws.staticCredentials.secretAccessKey are not both set (or name a Secret in aws.staticCredentials.existingSecret); prefer IRSA: serviceAccount.irsaRoleArn" }}
{{- end }}
{{- if and $v.serviceAccount.irsaRoleArn (not $creds.allowWithIrsa) }}
{{- fail "aws.staticCredentials.enabled together with serviceAccount.irsaRoleArn: the AWS SDK prefers the static keys, so the IRSA role would go unused; drop one (IRSA preferred) or set aws.staticCredentials.allowWithIrsa=true" }}
{{- end }}
{{- else if or $creds.accessKeyId $creds.secretAccessKey $creds.sessionToken $creds.existingSecret }}
{{- fail "aws.staticCredentials holds keys or existingSecret but aws.staticCredentials.enabled is false: they would be ignored; remove them (IRSA preferred) or set aws.staticCredentials.enabled=true" }}
{{- end }}

{{- if and $v.serviceAccount.irsaRoleArn (hasKey $v.serviceAccount.annotations "eks.amazonaws.com/role-arn") }}
{{- fail "serviceAccount.annotations sets eks.amazonaws.com/role-arn and serviceAccount.irsaRoleArn is set too: use serviceAccount.irsaRoleArn only" }}
{{- end }}

{{- if eq (int $v.gpu.count) 0 }}
{{- if $v.instanceType }}
{{- fail (printf "gpu.count is 0 but instanceType pins %q: a GPU-less Triton must not be placed on GPU nodes (the image sets NVIDIA_VISIBLE_DEVICES=all and would use GPUs the scheduler gave to other pods); clear instanceType or request GPUs" $v.instanceType) }}
{{- end }}
{{- range $v.tolerations }}
{{- if eq (default "" .key) "nvidia.com/gpu" }}
{{- fail "gpu.count is 0 but tolerations tolerate the nvidia.com/gpu taint: a GPU-less Triton must not be placed on GPU nodes (the image sets NVIDIA_VISIBLE_DEVICES=all and would use GPUs the scheduler gave to other pods); set tolerations: [] for a CPU-only deployment (models with instance_group KIND_CPU)" }}
{{- end }}
{{- end }}
{{- end }}

{{- range $part := list "requests" "limits" }}
{{- $given := index (default (dict) (index (default (dict) $v.resources) $part)) "nvidia.com/gpu" }}
{{- if and (not (kindIs "invalid" $given)) (ne (toString $given) (toString (int $v.gpu.count))) }}
{{- fail (printf "resources.%s sets nvidia.com/gpu to %v but gpu.count is %d: the chart puts gpu.count into requests and limits; set the GPU count in gpu.count and remove nvidia.com/gpu from resources" $part $given (int $v.gpu.count)) }}
{{- end }}
{{- end }}

{{- range $name := list "startupProbe" "livenessProbe" "readinessProbe" }}
{{- with index $v $name }}
{{- $probe := . }}
{{- $handlers := list }}
{{- range $h := list "exec" "grpc" "httpGet" "tcpSocket" }}
{{- if not (kindIs "invalid" (index $probe $h)) }}
{{- $handlers = append $handlers $h }}
{{- end }}
{{- end }}
{{- if gt (len $handlers) 1 }}
{{- fail (printf "%s has %d handlers (%s) and Kubernetes allows one: helm merges your %s over the chart's default (httpGet), so set the ones you do not want to null, e.g. %s.httpGet: null" $name (len $handlers) (join ", " $handlers) $name $name) }}
{{- else if eq (len $handlers) 0 }}
{{- fail (printf "%s has no handler: set one of exec, grpc, httpGet, tcpSocket, or %s: null to remove the probe" $name $name) }}
{{- end }}
{{- end }}
{{- end }}

{{- if $v.podDisruptionBudget.enabled }}
{{- $min := $v.podDisruptionBudget.minAvailable }}
{{- $max := $v.podDisruptionBudget.maxUnavailable }}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "invalid" $max)) }}
{{- fail "podDisruptionBudget: set only one of podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable (the other null)" }}
{{- end }}
{{- if and (kindIs "invalid" $min) (kindIs "invalid" $max) }}
{{- fail "podDisruptionBudget.enabled needs podDisruptionBudget.minAvailable or podDisruptionBudget.maxUnavailable" }}
{{- end }}
{{- end }}

{{- if $v.istio.enabled }}
{{- if and (not $v.istio.gateway.create) (not $v.istio.gateway.existing) }}
{{- fail "istio.gateway.create is false: name the gateway to attach to in istio.gateway.existing (namespace/name)" }}
{{- end }}
{{- $gw := $v.istio.gateway }}
{{- if and $gw.create (not $gw.https.enabled) (not $gw.http.enabled) }}
{{- fail "istio.gateway: neither istio.gateway.https.enabled nor istio.gateway.http.enabled: the Gateway would serve nothing" }}
{{- end }}
{{- if and $gw.create $gw.https.enabled (eq $gw.https.termination "gateway") (not $gw.https.credentialName) }}
{{- fail "istio.gateway.https.termination gateway needs istio.gateway.https.credentialName (a kubernetes.io/tls Secret in the ingress gateway's namespace), or termination loadBalancer (an NLB with an ACM certificate)" }}
{{- end }}
{{- if and $gw.create $gw.https.enabled (eq $gw.https.termination "loadBalancer") $gw.https.credentialName }}
{{- fail "istio.gateway.https.credentialName is set but termination is loadBalancer (the NLB's ACM certificate is used): leave it empty" }}
{{- end }}
{{- if and $gw.http.httpsRedirect (not $gw.https.enabled) }}
{{- fail "istio.gateway.http.httpsRedirect needs istio.gateway.https.enabled" }}
{{- end }}
{{- if and $gw.http.enabled $gw.https.enabled (eq (int $gw.http.port) (int $gw.https.port)) }}
{{- fail "istio.gateway.http.port and istio.gateway.https.port must differ" }}
{{- end }}
{{- end }}

{{- if and $v.metrics.podMonitor.enabled $v.metrics.serviceMonitor.enabled }}
{{- fail "metrics.podMonitor.enabled and metrics.serviceMonitor.enabled: enable one, or every series is scraped twice" }}
{{- end }}
{{- end }}
