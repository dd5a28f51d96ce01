{{/* Names, labels and the pieces the Deployment and the migration Job share. */}}

{{- define "keygate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keygate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "keygate.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "keygate.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keygate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "keygate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The server pods; the migration Job's pods carry another component so that the Service,
     PodDisruptionBudget and NetworkPolicy never select them. */}}
{{- define "keygate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keygate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "keygate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "keygate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "keygate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the database URL: the user's, or the chart's own. Fails the render when
     neither is configured, rather than starting pods that cannot work. */}}
{{- define "keygate.databaseSecretName" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else if .Values.database.url -}}
{{- printf "%s-database" (include "keygate.fullname" .) -}}
{{- else -}}
{{- fail "keygate needs PostgreSQL: set database.existingSecret (a Secret holding the URL) or database.url" -}}
{{- end -}}
{{- end -}}

{{- define "keygate.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end -}}

{{/* The Secret holding the Redis URL, when Redis is configured: the user's, or the chart's own. */}}
{{- define "keygate.redisSecretName" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else if .Values.redis.url -}}
{{- printf "%s-redis" (include "keygate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "keygate.redisSecretKey" -}}
{{- if .Values.redis.existingSecret -}}{{ .Values.redis.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end -}}

{{/* Fails the render when several replicas would each count limits on their own, unless the
     user said that is what they want. */}}
{{- define "keygate.checkRedis" -}}
{{- $several := or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) -}}
{{- if and $several (not (include "keygate.redisSecretName" .)) (not .Values.redis.perReplicaLimits) -}}
{{- fail "keygate with more than one replica needs Redis for shared rate limits, quotas and concurrency slots: set redis.existingSecret (a Secret holding the URL) or redis.url, or redis.perReplicaLimits: true to let each replica count on its own" -}}
{{- end -}}
{{- end -}}

{{/* keygate's TOML config: the user's `config` plus what the chart owns. Helm reads every number
     as a float, and keygate rejects 10.0 where it wants an integer, so this writes TOML itself
     instead of using toToml. */}}
{{- define "keygate.config" -}}
{{- $config := deepCopy (default dict .Values.config) -}}
{{- $database := default dict (get $config "database") -}}
{{- $_ := set $database "run_migrations" (not .Values.migrations.enabled) -}}
{{- $_ = set $config "database" $database -}}
{{- if include "keygate.redisSecretName" . -}}
{{- $limits := default dict (get $config "limits") -}}
{{- $_ = set $limits "backend" "redis" -}}
{{- $_ = set $config "limits" $limits -}}
{{- end -}}
{{- if .Values.signingKeys.files -}}
{{- $oauth := default dict (get $config "oauth") -}}
{{- $files := list -}}
{{- range .Values.signingKeys.files -}}
{{- $files = append $files (printf "/etc/keygate/signing-keys/%s" .) -}}
{{- end -}}
{{- $_ = set $oauth "signing_key_files" $files -}}
{{- $_ = set $config "oauth" $oauth -}}
{{- end -}}
{{- if include "keygate.policyConfigMap" . -}}
{{- $envoy := default dict (get $config "envoy") -}}
{{- $_ = set $envoy "policy_file" (printf "%s/%s" (include "keygate.policyDir" .) .Values.policy.key) -}}
{{- $_ = set $config "envoy" $envoy -}}
{{- end -}}
{{- if .Values.tls.existingSecret -}}
{{- $tls := default dict (get $config "tls") -}}
{{- $dir := include "keygate.tlsDir" . -}}
{{- $_ = set $tls "cert_file" (printf "%s/tls.crt" $dir) -}}
{{- $_ = set $tls "key_file" (printf "%s/tls.key" $dir) -}}
{{- if .Values.tls.clientCA -}}
{{- $_ = set $tls "client_ca_file" (printf "%s/ca.crt" $dir) -}}
{{- end -}}
{{- $_ = set $config "tls" $tls -}}
{{- end -}}
{{- include "keygate.tomlTable" (dict "table" $config "prefix" "") -}}
{{- end -}}

{{- define "keygate.policyDir" -}}/etc/keygate/policy{{- end -}}
{{- define "keygate.tlsDir" -}}/etc/keygate/tls{{- end -}}

{{/* The ConfigMap holding the route policy, when there is one: the user's, or the chart's own
     (policy.inline). Fails the render when both are given. */}}
{{- define "keygate.policyConfigMap" -}}
{{- if and .Values.policy.inline .Values.policy.existingConfigMap -}}
{{- fail "set one of policy.inline (the chart makes the ConfigMap) and policy.existingConfigMap, not both" -}}
{{- else if .Values.policy.existingConfigMap -}}
{{- .Values.policy.existingConfigMap -}}
{{- else if .Values.policy.inline -}}
{{- printf "%s-policy" (include "keygate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Whether keygate's listeners speak TLS: from tls.existingSecret, or tls files the user wired
     through config and extraVolumes. */}}
{{- define "keygate.tlsOn" -}}
{{- if or .Values.tls.existingSecret (dig "tls" "cert_file" "" (default dict .Values.config)) -}}true{{- end -}}
{{- end -}}

{{/* Seconds Kubernetes waits between SIGTERM and SIGKILL: the drain delay, the grace period and
     10 s for the last writes, unless given; a given value that cannot hold the drain delay and
     the grace period fails the render rather than cutting calls on every rollout. */}}
{{- define "keygate.terminationGracePeriod" -}}
{{- $shutdown := dig "shutdown" dict (default dict .Values.config) -}}
{{- $drain := int (dig "drain_delay_secs" 0 $shutdown) -}}
{{- $grace := int (dig "grace_secs" 30 $shutdown) -}}
{{- $given := int .Values.terminationGracePeriodSeconds -}}
{{- if eq $given 0 -}}
{{- add $drain $grace 10 -}}
{{- else if lt $given (add $drain $grace) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must cover config.shutdown.drain_delay_secs (%d) plus config.shutdown.grace_secs (%d), or SIGKILL cuts calls on every rollout; set it to 0 to have it computed" $given $drain $grace) -}}
{{- else -}}
{{- $given -}}
{{- end -}}
{{- end -}}

{{/* One probe: native gRPC on the gRPC port, or with TLS on (native gRPC probes cannot speak
     it) `keygate healthcheck` run as the image's own binary, since distroless has no shell.
     .service is the grpc.health.v1 service asked about; "" is the server-wide status. */}}
{{- define "keygate.probe" -}}
{{- if include "keygate.tlsOn" .root -}}
exec:
  command: [keygate, healthcheck{{ with .service }}, --service, {{ . }}{{ end }}]
{{- else -}}
grpc:
  port: {{ .root.Values.ports.grpc }}
  {{- with .service }}
  service: {{ . }}
  {{- end }}
{{- end }}
{{ toYaml .timings }}
{{- end -}}

{{/* The data of the server's and the migration Job's ConfigMaps. */}}
{{- define "keygate.configData" -}}
keygate.toml: |
  {{- include "keygate.config" . | trim | nindent 2 }}
{{- end -}}

{{/* A table's plain keys first, then its sub-tables, as TOML requires. */}}
{{- define "keygate.tomlTable" -}}
{{- $prefix := .prefix -}}
{{- range $key, $value := .table }}
{{- if not (kindIs "map" $value) }}
{{ $key }} = {{ include "keygate.tomlValue" $value }}
{{- end }}
{{- end }}
{{- range $key, $value := .table }}
{{- if kindIs "map" $value }}

[{{ $prefix }}{{ $key }}]
{{- include "keygate.tomlTable" (dict "table" $value "prefix" (printf "%s%s." $prefix $key)) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "keygate.tomlValue" -}}
{{- if kindIs "slice" . -}}
[{{ range $i, $item := . }}{{ if $i }}, {{ end }}{{ include "keygate.tomlValue" $item }}{{ end }}]
{{- else if kindIs "string" . -}}
{{ toJson . }}
{{- else if kindIs "bool" . -}}
{{ . }}
{{- else if and (kindIs "float64" .) (eq (floor .) .) -}}
{{ int64 . }}
{{- else -}}
{{ . }}
{{- end -}}
{{- end -}}

{{/* Environment of every keygate container: where the config is, the listen addresses (the
     image sets them in ENV, which a config file cannot override), and the database URL. */}}
{{- define "keygate.env" -}}
- name: KEYGATE_CONFIG
  value: /etc/keygate/config/keygate.toml
{{- if .server }}
{{- /* The listen addresses, in the environment rather than the file: the image sets
       KEYGATE_GRPC_ADDR and KEYGATE_HTTP_ADDR in its ENV, which would win over the file. */}}
- name: KEYGATE_GRPC_ADDR
  value: {{ printf "0.0.0.0:%d" (int .root.Values.ports.grpc) | quote }}
- name: KEYGATE_HTTP_ADDR
  value: {{ printf "0.0.0.0:%d" (int .root.Values.ports.http) | quote }}
{{- /* /metrics on a port of its own, so that the public HTTP port (Ingress, HTTPRoute) never
       serves it. */}}
- name: KEYGATE_METRICS_ADDR
  value: {{ printf "0.0.0.0:%d" (int .root.Values.ports.metrics) | quote }}
{{- end }}
- name: KEYGATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ include "keygate.databaseSecretKey" .root }}
{{- end -}}

{{- define "keygate.configVolumeMount" -}}
- name: config
  mountPath: /etc/keygate/config
  readOnly: true
{{- end -}}

{{/* The HTTP paths the world may reach (the token and introspection endpoints, the JWKS and
     the authorization server metadata), for the Ingress and the HTTPRoute. Never /metrics. */}}
{{- define "keygate.publicPaths" -}}
{{- list "/oauth/token" "/oauth/introspect" "/.well-known/jwks.json" "/.well-known/oauth-authorization-server" | toJson -}}
{{- end -}}
