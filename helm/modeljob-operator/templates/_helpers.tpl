{{/* Names and labels shared by every template. */}}
{{- define "modeljob.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeljob.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "modeljob.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "modeljob.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "modeljob.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeljob.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modeljob.operatorSelectorLabels" -}}
{{ include "modeljob.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modeljob.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "modeljob.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modeljob.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modeljob.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The extender's port: settings.extender.port once the Settings tree has that section. */}}
{{- define "modeljob.extenderPort" -}}
{{- dig "extender" "port" 8888 .Values.settings | int }}
{{- end }}

{{- define "modeljob.extenderPath" -}}
{{- dig "extender" "pathPrefix" "/scheduler" .Values.settings }}
{{- end }}

{{- define "modeljob.extenderEnabled" -}}
{{- if dig "extender" "enabled" true .Values.settings }}true{{ end }}
{{- end }}

{{/*
One env entry per non-null value under .Values.settings: settings.<section>.<field> becomes
MODELJOB_<SECTION>__<FIELD> (Helm's snakecase, then upper), the name pydantic-settings reads.
Integral numbers are written without a decimal point or exponent (YAML numbers reach templates
as float64, and `toString 2147483647.0` is "2.147483647e+09", which an int setting refuses).
*/}}
{{- define "modeljob.settingsEnv" -}}
{{- range $section, $fields := .Values.settings }}
{{- range $field, $value := $fields }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ printf "MODELJOB_%s__%s" (snakecase $section) (snakecase $field) | upper }}
  {{- if and (kindIs "float64" $value) (eq $value (floor $value)) }}
  value: {{ int64 $value | toString | quote }}
  {{- else }}
  value: {{ toString $value | quote }}
  {{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
