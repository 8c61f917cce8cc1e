{{/* Names, labels and the image, shared by every template. */}}

{{- define "kstash.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name (`kstash` for a release named kstash), at most 63 characters. */}}
{{- define "kstash.fullname" -}}
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

{{- define "kstash.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kstash.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kstash.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kstash.labels" -}}
helm.sh/chart: {{ include "kstash.chart" . }}
{{ include "kstash.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kstash
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "kstash.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kstash.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "kstash.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* The executor ClusterRoles the operator binds per namespace (names as in KubeStash), and the
     cluster-wide catalog reader it binds per executor ServiceAccount. */}}
{{- define "kstash.executorClusterRoles" -}}
- kubestash-backup-job
- kubestash-restore-job
- kubestash-cron-job
- kubestash-storage-initializer-job
- kubestash-retention-policy-job
- kubestash-backend-job
- kstash-catalog-reader
{{- end }}
