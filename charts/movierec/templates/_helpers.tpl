{{/* Names, labels and the pieces shared by the ingest CronJob, its hook Job and the service. */}}

{{- define "movierec.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Base name of every object; DNS names are limited to 63 characters. */}}
{{- define "movierec.fullname" -}}
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

{{- define "movierec.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select a workload's pods: call with (dict "root" $ "component" "service"). */}}
{{- define "movierec.selectorLabels" -}}
app.kubernetes.io/name: {{ include "movierec.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of an object: call with (dict "root" $ "component" "service"). */}}
{{- define "movierec.labels" -}}
helm.sh/chart: {{ include "movierec.chart" .root }}
{{ include "movierec.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: movierec
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Image reference: call with (dict "root" $ "image" .Values.images.service). */}}
{{- define "movierec.image" -}}
{{- $repository := .image.repository }}
{{- with .root.Values.images.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- $ref := printf "%s:%s" $repository (.image.tag | default .root.Chart.AppVersion) }}
{{- with .image.digest }}
{{- $ref = printf "%s@%s" $ref . }}
{{- end }}
{{- $ref }}
{{- end }}

{{- define "movierec.serviceAccountName.service" -}}
{{- if .Values.service.serviceAccount.create }}
{{- default (printf "%s-service" (include "movierec.fullname" .)) .Values.service.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.service.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "movierec.serviceAccountName.ingest" -}}
{{- if .Values.ingest.serviceAccount.create }}
{{- default (printf "%s-ingest" (include "movierec.fullname" .)) .Values.ingest.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.ingest.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* QDRANT_API_KEY from the Secret; key is apiKeyKey (ingest) or readOnlyApiKeyKey (service). */}}
{{- define "movierec.qdrantApiKeyEnv" -}}
{{- if .root.Values.qdrant.existingSecret -}}
- name: QDRANT_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.qdrant.existingSecret | quote }}
      key: {{ .key | quote }}
{{- end }}
{{- end }}

{{/* Where the ingest reads a local dataset copy when dataset.existingClaim is set. */}}
{{- define "movierec.datasetMountPath" -}}
/data/movielens
{{- end }}

{{/* Where the ingest caches downloads (MOVIELENS_CACHE); writable, the root filesystem is not. */}}
{{- define "movierec.cacheMountPath" -}}
/var/cache/movierec
{{- end }}

{{/*
The ingest pod template, shared by the CronJob and the optional hook Job. The command is the
project's own CLI: `movierec ingest` waits for Qdrant with bounded retries (--wait), downloads and
verifies the dataset, and switches the collections in atomically.
*/}}
{{- define "movierec.ingest.podTemplate" -}}
metadata:
  labels:
    {{- include "movierec.labels" (dict "root" . "component" "ingest") | nindent 4 }}
    {{- with .Values.ingest.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.ingest.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "movierec.serviceAccountName.ingest" . }}
  automountServiceAccountToken: false
  restartPolicy: Never
  enableServiceLinks: false
  {{- with .Values.images.pullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . | quote }}
    {{- end }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: ingest
      image: {{ include "movierec.image" (dict "root" . "image" .Values.images.ingest) | quote }}
      imagePullPolicy: {{ .Values.images.pullPolicy }}
      command: ["movierec"]
      args:
        - ingest
        - --dataset
        - $(MOVIELENS_DATASET)
        - --wait
        - {{ .Values.ingest.waitForQdrantSeconds | int | quote }}
      envFrom:
        - configMapRef:
            name: {{ include "movierec.fullname" . }}-ingest
      env:
        {{- include "movierec.qdrantApiKeyEnv" (dict "root" . "key" .Values.qdrant.apiKeyKey) | nindent 8 }}
        {{- if .Values.ingest.dataset.existingClaim }}
        - name: MOVIELENS_DIR
          value: {{ include "movierec.datasetMountPath" . | quote }}
        {{- end }}
      {{- with .Values.containerSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.ingest.resources | nindent 8 }}
      volumeMounts:
        - name: cache
          mountPath: {{ include "movierec.cacheMountPath" . }}
        - name: tmp
          mountPath: /tmp
        {{- if .Values.ingest.dataset.existingClaim }}
        - name: dataset
          mountPath: {{ include "movierec.datasetMountPath" . }}
          readOnly: true
          {{- with .Values.ingest.dataset.subPath }}
          subPath: {{ . | quote }}
          {{- end }}
        {{- end }}
  volumes:
    - name: cache
      {{- if .Values.ingest.cache.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ .Values.ingest.cache.existingClaim | quote }}
      {{- else }}
      emptyDir:
        sizeLimit: {{ .Values.ingest.cache.sizeLimit }}
      {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- if .Values.ingest.dataset.existingClaim }}
    - name: dataset
      persistentVolumeClaim:
        claimName: {{ .Values.ingest.dataset.existingClaim | quote }}
        readOnly: true
    {{- end }}
  {{- with .Values.ingest.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.ingest.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.ingest.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Job spec shared by the CronJob's jobTemplate and the hook Job. */}}
{{- define "movierec.ingest.jobSpec" -}}
backoffLimit: {{ .Values.ingest.backoffLimit }}
activeDeadlineSeconds: {{ .Values.ingest.activeDeadlineSeconds }}
ttlSecondsAfterFinished: {{ .Values.ingest.ttlSecondsAfterFinished }}
# A drained or preempted node is not the ingest's fault: do not count it against backoffLimit.
podFailurePolicy:
  rules:
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
template:
  {{- include "movierec.ingest.podTemplate" . | nindent 2 }}
{{- end }}

{{/* NetworkPolicy egress rules shared by the workloads. */}}
{{- define "movierec.egress.dns" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicy.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.podLabels | nindent 10 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}
{{- define "movierec.egress.qdrant" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicy.qdrant.namespace }}
      podSelector:
        {{- with .Values.networkPolicy.qdrant.podLabels }}
        matchLabels:
          {{- toYaml . | nindent 10 }}
        {{- else }}
        {}
        {{- end }}
  ports:
    {{- range .Values.networkPolicy.qdrant.ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end }}

{{/* Labels of an alert: its severity plus metrics.prometheusRule.alertLabels. */}}
{{- define "movierec.alertLabels" -}}
labels:
  severity: {{ .severity }}
  {{- with .root.Values.metrics.prometheusRule.alertLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
