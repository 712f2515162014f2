{{/* Names, labels and the agent's command line. */}}

{{- define "execmon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "execmon.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "execmon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "execmon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "execmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "execmon.labels" -}}
helm.sh/chart: {{ include "execmon.chart" . }}
{{ include "execmon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: execmon
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "execmon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "execmon.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "execmon.policyConfigMapName" -}}
{{- if .Values.existingPolicyConfigMap -}}
{{- .Values.existingPolicyConfigMap -}}
{{- else -}}
{{- printf "%s-policies" (include "execmon.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "execmon.kafkaSecretName" -}}
{{- if .Values.kafka.sasl.existingSecret -}}
{{- .Values.kafka.sasl.existingSecret -}}
{{- else -}}
{{- printf "%s-kafka" (include "execmon.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "execmon.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
ConfigMap key of a policy path: keys cannot hold "/", so lists/x.txt is
stored as lists__x.txt and the volume's items map it back.
*/}}
{{- define "execmon.policyKey" -}}
{{- . | replace "/" "__" -}}
{{- end -}}

{{/* The Kafka credentials flag file (kafka.sasl.credentialsIn=flagfile). */}}
{{- define "execmon.kafkaFlagDir" -}}/run/execmon/kafka{{- end -}}
{{- define "execmon.kafkaFlagFile" -}}/run/execmon/kafka/credentials.flags{{- end -}}
{{- define "execmon.kafkaFlagsViaFile" -}}
{{- if and .Values.kafka.enabled .Values.kafka.sasl.enabled (eq .Values.kafka.sasl.credentialsIn "flagfile") }}true{{ end -}}
{{- end -}}

{{/* The credentials as env vars, from the Secret. */}}
{{- define "execmon.kafkaCredentialEnv" -}}
- name: KAFKA_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "execmon.kafkaSecretName" . }}
      key: {{ .Values.kafka.sasl.usernameKey }}
- name: KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "execmon.kafkaSecretName" . }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end -}}

{{/*
The init container's script: one --kafka_property line per credential
(absl flag file syntax), readable by root only. printf %s takes the values
verbatim.
*/}}
{{- define "execmon.kafkaFlagScript" -}}
set -eu
umask 077
printf -- '--kafka_property=sasl.username=%s\n--kafka_property=sasl.password=%s\n' "$KAFKA_USERNAME" "$KAFKA_PASSWORD" > {{ include "execmon.kafkaFlagFile" . }}
{{- end -}}

{{/* Where the policy directory is mounted in the agent container. */}}
{{- define "execmon.policyDir" -}}/etc/execmon/policies{{- end -}}
{{- define "execmon.kafkaCaDir" -}}/etc/execmon/kafka-ca{{- end -}}

{{/* security.protocol from the sasl/tls toggles. */}}
{{- define "execmon.kafkaSecurityProtocol" -}}
{{- $k := .Values.kafka -}}
{{- if and $k.sasl.enabled $k.tls.enabled -}}SASL_SSL
{{- else if $k.sasl.enabled -}}SASL_PLAINTEXT
{{- else if $k.tls.enabled -}}SSL
{{- else -}}PLAINTEXT
{{- end -}}
{{- end -}}

{{/*
Checks of value combinations that the schema cannot express. Included by
the DaemonSet, so `helm template` and `helm install` fail early with a
message saying what to change.
*/}}
{{- define "execmon.validate" -}}
{{- $v := .Values -}}
{{- if and $v.agent.bpfStats (not (or $v.securityContext.sysAdmin $v.securityContext.privileged)) -}}
{{- fail "agent.bpfStats needs CAP_SYS_ADMIN (the kernel allows BPF_ENABLE_STATS only with it): set securityContext.sysAdmin=true (or securityContext.privileged=true), or agent.bpfStats=false" -}}
{{- end -}}
{{- if and $v.kafka.enabled (empty $v.kafka.brokers) -}}
{{- fail "kafka.enabled=true needs kafka.brokers (HOST:PORT list)" -}}
{{- end -}}
{{- if and (eq $v.agent.output "none") (not $v.kafka.enabled) -}}
{{- fail "agent.output=none needs kafka.enabled=true: events would go nowhere" -}}
{{- end -}}
{{- if and $v.kafka.enabled (le (int $v.terminationGracePeriodSeconds) (int $v.kafka.flushTimeoutSeconds)) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than kafka.flushTimeoutSeconds (%v): the agent flushes Kafka after SIGTERM and is killed at the end of the grace period" $v.terminationGracePeriodSeconds $v.kafka.flushTimeoutSeconds) -}}
{{- end -}}
{{- if and $v.kafka.enabled $v.kafka.sasl.enabled (not $v.kafka.sasl.existingSecret) (or (not $v.kafka.sasl.username) (not $v.kafka.sasl.password)) -}}
{{- fail "kafka.sasl.enabled=true needs kafka.sasl.existingSecret, or kafka.sasl.username and kafka.sasl.password" -}}
{{- end -}}
{{- if and $v.kafka.enabled $v.kafka.sasl.enabled (not $v.kafka.sasl.existingSecret) (or (contains "," $v.kafka.sasl.username) (contains "," $v.kafka.sasl.password)) -}}
{{- fail "kafka.sasl.username/password: a comma cannot be passed through --kafka-property (it separates properties); choose credentials without one" -}}
{{- end -}}
{{- range $k, $_ := $v.kafka.properties -}}
{{- if has $k (list "bootstrap.servers" "sasl.username" "sasl.password" "sasl.mechanism" "sasl.mechanisms" "security.protocol") -}}
{{- fail (printf "kafka.properties.%s: set it with kafka.brokers / kafka.sasl / kafka.tls, not as a raw property" $k) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.agent.kubernetes "on") (not $v.serviceAccount.automountToken) -}}
{{- fail "agent.kubernetes=on needs the API token: serviceAccount.automountToken=true (and RBAC: rbac.create=true or your own binding)" -}}
{{- end -}}
{{- if and (eq $v.securityContext.seccompProfile.type "Localhost") (not $v.securityContext.seccompProfile.localhostProfile) -}}
{{- fail "securityContext.seccompProfile.type=Localhost needs securityContext.seccompProfile.localhostProfile" -}}
{{- end -}}
{{- if not $v.existingPolicyConfigMap -}}
{{- $seen := dict -}}
{{- range $path, $_ := $v.policies -}}
{{- $key := include "execmon.policyKey" $path -}}
{{- if hasKey $seen $key -}}
{{- fail (printf "policies: %q and %q map to the same ConfigMap key %q (\"/\" is stored as \"__\")" (get $seen $key) $path $key) -}}
{{- end -}}
{{- $_ := set $seen $key $path -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Policies (generated ConfigMap only) that kill on violation. */}}
{{- define "execmon.killPolicies" -}}
{{- if not .Values.existingPolicyConfigMap -}}
{{- range $path, $content := .Values.policies -}}
{{- if and (or (hasSuffix ".yaml" $path) (hasSuffix ".yml" $path)) (regexMatch "(?m)^\\s*action:\\s*[\"']?kill[\"']?\\s*(#.*)?$" $content) -}}
{{ $path }}{{ " " }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The agent's arguments (`execmon run ...`), one YAML list item each. */}}
{{- define "execmon.args" -}}
{{- $v := .Values -}}
{{- $a := $v.agent -}}
{{- $args := list "run" "--node=$(EXECMON_NODE_NAME)" -}}
{{- $args = append $args (printf "--output=%s" $a.output) -}}
{{- $args = append $args (printf "--log-level=%s" $a.logLevel) -}}
{{- $args = append $args (printf "--metrics-address=%s:%d" $v.metrics.listenAddress (int64 $v.metrics.port)) -}}
{{- $args = append $args (printf "--policies=%s" (include "execmon.policyDir" .)) -}}
{{- if $v.buildIdIndexes.volume -}}
{{- $args = append $args "--index=/etc/execmon/indexes" -}}
{{- end -}}
{{- $args = append $args (printf "--build-id-resolver=%s" $a.buildIdResolver) -}}
{{- $args = append $args (printf "--ring-buffer-mb=%d" (int64 $a.ringBufferMb)) -}}
{{- $args = append $args (printf "--cache-entries=%d" (int64 $a.cacheEntries)) -}}
{{- $args = append $args (printf "--pending-entries=%d" (int64 $a.pendingEntries)) -}}
{{- $args = append $args (printf "--cache-min-age=%s" $a.cacheMinAge) -}}
{{- $args = append $args (printf "--max-processes=%d" (int64 $a.maxProcesses)) -}}
{{- $args = append $args (printf "--max-policy-ids=%d" (int64 $a.maxPolicyIds)) -}}
{{- $args = append $args (printf "--snapshot=%t" $a.snapshot) -}}
{{- $args = append $args (printf "--bpf-stats=%t" $a.bpfStats) -}}
{{- with $a.cluster -}}
{{- $args = append $args (printf "--cluster=%s" .) -}}
{{- end -}}
{{- $args = append $args (printf "--kubernetes=%s" $a.kubernetes) -}}
{{- $args = append $args (printf "--pod-wait=%s" $a.podWait) -}}
{{- $args = append $args (printf "--pod-annotations=%t" $a.podAnnotations) -}}
{{- if $v.kafka.enabled -}}
{{- $k := $v.kafka -}}
{{- $args = append $args (printf "--kafka-brokers=%s" (join "," $k.brokers)) -}}
{{- $args = append $args (printf "--kafka-topic=%s" $k.topic) -}}
{{- $args = append $args (printf "--kafka-topic-by-type=%t" $k.topicByType) -}}
{{- $args = append $args (printf "--kafka-key=%s" $k.key) -}}
{{- $args = append $args (printf "--kafka-queue-max-events=%d" (int64 $k.queueMaxEvents)) -}}
{{- $args = append $args (printf "--kafka-queue-max-bytes=%d" (int64 $k.queueMaxBytes)) -}}
{{- $args = append $args (printf "--kafka-queue-max-age=%s" $k.queueMaxAge) -}}
{{- $args = append $args (printf "--kafka-flush-timeout=%ds" (int64 $k.flushTimeoutSeconds)) -}}
{{- $args = append $args (printf "--kafka-property=security.protocol=%s" (include "execmon.kafkaSecurityProtocol" .)) -}}
{{- if $k.sasl.enabled -}}
{{- $args = append $args (printf "--kafka-property=sasl.mechanism=%s" $k.sasl.mechanism) -}}
{{- if eq $k.sasl.credentialsIn "flagfile" -}}
{{- $args = append $args (printf "--flagfile=%s" (include "execmon.kafkaFlagFile" $)) -}}
{{- else -}}
{{- /* One flag per credential: within one flag a comma continues the list. */ -}}
{{- $args = append $args "--kafka-property=sasl.username=$(KAFKA_USERNAME)" -}}
{{- $args = append $args "--kafka-property=sasl.password=$(KAFKA_PASSWORD)" -}}
{{- end -}}
{{- end -}}
{{- if and $k.tls.enabled $k.tls.caSecret -}}
{{- $args = append $args (printf "--kafka-property=ssl.ca.location=%s/%s" (include "execmon.kafkaCaDir" .) $k.tls.caKey) -}}
{{- end -}}
{{- range $name, $val := $k.properties -}}
{{- if kindIs "float64" $val -}}{{- $val = int64 $val -}}{{- end -}}
{{- $args = append $args (printf "--kafka-property=%s=%v" $name $val) -}}
{{- end -}}
{{- end -}}
{{- range $v.extraArgs -}}
{{- $args = append $args . -}}
{{- end -}}
{{- range $args }}
- {{ . | quote }}
{{- end -}}
{{- end -}}
